// SPDX-License-Identifier: Apache-2.0
// What uri.cpp and uri_match.cpp share (private to src/p11/).
#pragma once

#include <cstdint>
#include <string_view>

namespace tokenprov::uri_detail {

// S as a decimal number (digits only, no sign, no space); false when it is not one.
bool parse_ulong(std::string_view s, std::uint64_t& out);

} // namespace tokenprov::uri_detail
