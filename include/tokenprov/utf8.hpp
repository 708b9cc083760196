// SPDX-License-Identifier: Apache-2.0
// UTF-8: checking input that must be text, cutting labels at a character
// boundary, showing foreign bytes escaped, and JSON text that never throws.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace tokenprov {

// Whether S is well-formed UTF-8 (no overlong forms, surrogates or code
// points above U+10FFFF).
bool valid_utf8(std::string_view s);

// Error(BadInput) naming FIELD ("the subject", "the label") unless VALUE is
// valid UTF-8: DN strings and labels are text, and a byte string in another
// encoding (Latin-1) would be stored as garbage and break every JSON reader.
void require_utf8(std::string_view value, const std::string& field);

// The longest prefix of S (valid UTF-8) that fits in MAX bytes without
// cutting a character: token labels are 32 bytes.
std::string utf8_prefix(std::string_view s, std::size_t max);

// S with every byte that is not part of a valid UTF-8 character written as
// \xNN: what tokenprov shows of a label another tool wrote in another
// encoding. Valid UTF-8 comes back unchanged, so escaping twice is harmless.
std::string escape_invalid_utf8(std::string_view s);

// J as compact JSON text; never throws: strings (and keys) that are not valid
// UTF-8 are escaped first with escape_invalid_utf8().
std::string json_text(const nlohmann::json& j);

} // namespace tokenprov
