// SPDX-License-Identifier: Apache-2.0
// PKCS#11 URIs (RFC 7512): parse, format, match against tokens and objects.
#pragma once

#include "tokenprov/p11/module.hpp"

#include <map>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tokenprov {

struct Pkcs11Uri {
  // Path attributes, percent-decoded: token, manufacturer, serial, model,
  // library-manufacturer, library-description, library-version,
  // slot-manufacturer, slot-description, slot-id, object, type, id
  // ("id" holds the raw bytes, e.g. "\x01"), and vendor ones (any other
  // name of RFC 7512's pk11-v-attr-nm, e.g. the RFC's "vendor-aaa").
  std::map<std::string, std::string> path;
  // Query attributes, percent-decoded: pin-source, pin-value, module-name,
  // module-path (each at most once), and vendor ones, which RFC 7512
  // section 2.3 lets repeat (hence a multimap; equal names keep their order).
  std::multimap<std::string, std::string> query;

  // Throws Error(ExitCode::Usage) with a sentence naming the offending part.
  static Pkcs11Uri parse(std::string_view text);
  static bool looks_like_uri(std::string_view text) { return text.rfind("pkcs11:", 0) == 0; }

  // Canonical form: path attributes in RFC order, values percent-encoded
  // where needed (id always fully %XX-encoded, lower-case hex).
  std::string format() const;

  // A path attribute, else the first query attribute of that name.
  std::optional<std::string> get(const std::string& key) const;

  // RFC 7512 section 2.5: an attribute present restricts the match, one
  // absent matches everything. Each level compares only its own attributes.
  // Library: library-manufacturer, library-description, library-version
  // ("M" is M.0).
  bool matches_library(const p11::LibraryInfo& library) const;
  // Slot: slot-description, slot-manufacturer, slot-id.
  bool matches_slot(const p11::SlotInfo& slot) const;
  // Token: token, manufacturer, serial, model, and slot-id (TokenInfo knows
  // its slot).
  bool matches_token(const p11::TokenInfo& token) const;
  // Object: object, id, type. type is one of public, private, cert,
  // secret-key, data.
  bool matches_object(const std::string& type, const std::string& label, const std::string& id_bytes) const;
  bool names_library() const;
  bool names_slot() const;

  // Refuses, with Error(Usage) naming it, an attribute tokenprov cannot
  // evaluate when it selects with this URI: a vendor path attribute (RFC
  // 7512 section 2.5 would have it match nothing; tokenprov says so instead
  // of reporting "not found") and pin-value (no PIN is taken from a URI).
  // WHAT names the URI's role in the message ("--token", "--key").
  void require_evaluable(std::string_view what) const;
  // Vendor path attributes: names no RFC 7512 path attribute has.
  std::vector<std::string> vendor_path_attributes() const;
  static bool is_standard_path_attribute(std::string_view name);
  static bool is_standard_query_attribute(std::string_view name);
  // The URI with any pin-value value replaced by "***", for messages.
  static std::string redact(std::string_view text);
};

// Builds the URI of a token, and of an object on it.
// A URI given to select a token or key (--token, --key, a manifest's token):
// Pkcs11Uri::parse, and Error(Usage) for a pin-value, which tokenprov never
// takes (the message masks the value; docs/key-policy.md).
Pkcs11Uri parse_selector_uri(std::string_view text);

std::string token_uri(const p11::TokenInfo& token);
std::string object_uri(const p11::TokenInfo& token, const std::string& type, const std::string& label,
                       const std::string& id_bytes);

// Lower-case hex of bytes, and back (throws Error(Usage) on bad hex).
std::string to_hex(std::string_view bytes);
inline std::string to_hex(std::span<const std::uint8_t> bytes) {
  return to_hex(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}
std::string from_hex(std::string_view hex);

} // namespace tokenprov
