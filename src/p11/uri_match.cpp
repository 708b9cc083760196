// SPDX-License-Identifier: Apache-2.0
// PKCS#11 URIs (RFC 7512): matching a URI's path attributes against what a
// module says of its library, slots, tokens and objects (section 2.5).
#include "tokenprov/uri.hpp"

#include "uri_detail.hpp"

#include <cstdint>

namespace tokenprov {

using uri_detail::parse_ulong;

namespace {
// True when the path attribute KEY is absent or equals ACTUAL.
bool attr_equal(const std::map<std::string, std::string>& path, const char* key, const std::string& actual) {
  auto it = path.find(key);
  return it == path.end() || it->second == actual;
}

// A CK_TOKEN_INFO, CK_SLOT_INFO or CK_INFO text field is padded with spaces
// (trim_field takes them off): trailing spaces in the URI value are that padding.
bool field_equal(const std::map<std::string, std::string>& path, const char* key, const std::string& actual) {
  auto it = path.find(key);
  if (it == path.end()) return true;
  std::string_view v = it->second;
  while (!v.empty() && v.back() == ' ')
    v.remove_suffix(1);
  return v == actual;
}

bool slot_id_equal(const std::map<std::string, std::string>& path, CK_SLOT_ID actual) {
  auto it = path.find("slot-id");
  if (it == path.end()) return true;
  std::uint64_t slot = 0;
  return parse_ulong(it->second, slot) && slot == static_cast<std::uint64_t>(actual);
}
} // namespace

bool Pkcs11Uri::matches_library(const p11::LibraryInfo& library) const {
  if (!field_equal(path, "library-manufacturer", library.manufacturer) ||
      !field_equal(path, "library-description", library.description))
    return false;
  auto it = path.find("library-version");
  if (it == path.end()) return true;
  // Section 2.3: "M.N", and "M" is major M, minor 0. Both are one byte in CK_INFO.
  std::string_view v = it->second;
  auto dot = v.find('.');
  std::uint64_t major = 0, minor = 0;
  if (!parse_ulong(v.substr(0, dot), major)) return false;
  if (dot != std::string_view::npos && !parse_ulong(v.substr(dot + 1), minor)) return false;
  return major == library.version_major && minor == library.version_minor;
}

bool Pkcs11Uri::matches_slot(const p11::SlotInfo& slot) const {
  return field_equal(path, "slot-description", slot.description) &&
         field_equal(path, "slot-manufacturer", slot.manufacturer) && slot_id_equal(path, slot.slot_id);
}

bool Pkcs11Uri::matches_token(const p11::TokenInfo& token) const {
  return field_equal(path, "token", token.label) && field_equal(path, "manufacturer", token.manufacturer) &&
         field_equal(path, "serial", token.serial) && field_equal(path, "model", token.model) &&
         slot_id_equal(path, token.slot_id);
}

bool Pkcs11Uri::matches_object(const std::string& type, const std::string& label, const std::string& id_bytes) const {
  return attr_equal(path, "object", label) && attr_equal(path, "id", id_bytes) && attr_equal(path, "type", type);
}

bool Pkcs11Uri::names_library() const {
  return path.count("library-manufacturer") || path.count("library-description") || path.count("library-version");
}

bool Pkcs11Uri::names_slot() const {
  return path.count("slot-description") || path.count("slot-manufacturer") || path.count("slot-id");
}

} // namespace tokenprov
