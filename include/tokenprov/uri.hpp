// PKCS#11 URIs (RFC 7512): parse, format, match against tokens and objects.
#pragma once

#include "tokenprov/p11/module.hpp"

#include <map>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace tokenprov {

struct Pkcs11Uri {
  // Path attributes, percent-decoded: token, manufacturer, serial, model,
  // library-manufacturer, library-description, library-version,
  // slot-manufacturer, slot-description, slot-id, object, type, id
  // ("id" holds the raw bytes, e.g. "\x01").
  std::map<std::string, std::string> path;
  // Query attributes, percent-decoded: pin-source, pin-value, module-name,
  // module-path, and any vendor ones.
  std::map<std::string, std::string> query;

  // Throws Error(ExitCode::Usage) with a sentence naming the offending part.
  static Pkcs11Uri parse(std::string_view text);
  static bool looks_like_uri(std::string_view text) { return text.rfind("pkcs11:", 0) == 0; }

  // Canonical form: path attributes in RFC order, values percent-encoded
  // where needed (id always fully %XX-encoded, lower-case hex).
  std::string format() const;

  std::optional<std::string> get(const std::string& key) const;

  // True when every token-level path attribute present (token, manufacturer,
  // serial, model, slot-id) equals the token's.
  bool matches_token(const p11::TokenInfo& token) const;
  // True when every object-level attribute present (object, id, type) equals.
  // type is one of: public, private, cert, secret-key, data.
  bool matches_object(const std::string& type, const std::string& label, const std::string& id_bytes) const;
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
