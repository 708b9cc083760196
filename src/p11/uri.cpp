// SPDX-License-Identifier: Apache-2.0
// PKCS#11 URIs (RFC 7512): parse, format, match.
//
// Character classes follow the RFC's ABNF (section 2.3): a path value may
// hold unreserved characters, pk11-res-avail and "&" unencoded; a query value
// unreserved, pk11-res-avail, "/", "?" and "|". Everything else has to be
// percent-encoded. Vendor attributes are any other pk11-v-attr-nm
// (letters, digits, '-', '_'), as the grammar has it (pk11-v-pattr,
// pk11-v-qattr; the RFC's own example is "vendor-aaa"): they parse and
// format; vendor query attributes may repeat (section 2.3). Selecting with a
// URI is stricter (require_evaluable): section 2.5 has an unrecognized path
// attribute match nothing, and tokenprov refuses it by name instead, so a URI
// meant for another consumer never quietly selects or misses.
#include "tokenprov/uri.hpp"

#include "tokenprov/error.hpp"
#include "uri_detail.hpp"

#include <array>
#include <charconv>
#include <cstdint>

namespace tokenprov {

namespace {

constexpr std::string_view kScheme = "pkcs11:";

// Path attributes in the order format() writes them.
constexpr std::array<std::string_view, 13> kPathAttrs = {"token",
                                                         "manufacturer",
                                                         "serial",
                                                         "model",
                                                         "library-manufacturer",
                                                         "library-description",
                                                         "library-version",
                                                         "slot-manufacturer",
                                                         "slot-description",
                                                         "slot-id",
                                                         "object",
                                                         "type",
                                                         "id"};

constexpr std::array<std::string_view, 4> kQueryAttrs = {"pin-source", "pin-value", "module-name", "module-path"};

constexpr std::array<std::string_view, 5> kObjectTypes = {"public", "private", "cert", "secret-key", "data"};

template <std::size_t N> bool contains(const std::array<std::string_view, N>& set, std::string_view s) {
  for (auto v : set)
    if (v == s) return true;
  return false;
}

bool is_alnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool is_digit(unsigned char c) {
  return c >= '0' && c <= '9';
}

// RFC 3986 unreserved.
bool is_unreserved(unsigned char c) {
  return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

// RFC 7512 pk11-res-avail.
bool is_res_avail(unsigned char c) {
  switch (c) {
  case ':':
  case '[':
  case ']':
  case '@':
  case '!':
  case '$':
  case '\'':
  case '(':
  case ')':
  case '*':
  case '+':
  case ',':
  case '=':
    return true;
  default:
    return false;
  }
}

// pk11-pchar / pk11-qchar without pct-encoded.
bool is_path_char(unsigned char c) {
  return is_unreserved(c) || is_res_avail(c) || c == '&';
}
bool is_query_char(unsigned char c) {
  return is_unreserved(c) || is_res_avail(c) || c == '/' || c == '?' || c == '|';
}

// pk11-v-attr-nm-char: the characters an attribute name may have.
bool is_attr_name(std::string_view name) {
  if (name.empty()) return false;
  for (unsigned char c : name)
    if (!is_alnum(c) && c != '-' && c != '_') return false;
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

constexpr char kHexDigits[] = "0123456789abcdef";

void append_pct(std::string& out, unsigned char c) {
  out += '%';
  out += kHexDigits[c >> 4];
  out += kHexDigits[c & 0x0f];
}

// A character as a person reads it in a message.
std::string describe_char(unsigned char c) {
  if (c == ' ') return "a space";
  if (c < 0x20 || c >= 0x7f) {
    std::string s = "the byte 0x";
    s += kHexDigits[c >> 4];
    s += kHexDigits[c & 0x0f];
    return s;
  }
  return std::string("'") + static_cast<char>(c) + "'";
}

// Percent-decodes VALUE of attribute NAME; QUERY selects the character set.
std::string decode(std::string_view value, std::string_view name, bool query) {
  std::string out;
  out.reserve(value.size());
  for (std::size_t i = 0; i < value.size(); ++i) {
    auto c = static_cast<unsigned char>(value[i]);
    if (c == '%') {
      int hi = i + 1 < value.size() ? hex_value(value[i + 1]) : -1;
      int lo = i + 2 < value.size() ? hex_value(value[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        std::string esc(value.substr(i, 3));
        fail(ExitCode::Usage,
             "The PKCS#11 URI attribute '" + std::string(name) + "' has a bad percent escape '" + esc +
                 "': '%' must be followed by two hexadecimal digits.",
             "Write a literal '%' as %25.");
      }
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (query ? is_query_char(c) : is_path_char(c)) {
      out += static_cast<char>(c);
    } else {
      fail(ExitCode::Usage,
           "The PKCS#11 URI attribute '" + std::string(name) + "' contains " + describe_char(c) +
               ", which RFC 7512 only allows percent-encoded in the " + (query ? "query" : "path") + " part.",
           "Percent-encode it (a space is %20, ';' is %3b), or copy the URI from 'tokenprov list'.");
    }
  }
  return out;
}

// '&' may stand unencoded in a path value (pk11-pchar), but libp11's engine
// (0.4.12, Debian 12) splits the path at it, so tokenprov writes it as %26.
std::string encode(std::string_view value, bool query) {
  std::string out;
  out.reserve(value.size());
  for (unsigned char c : value) {
    if (query ? is_query_char(c) : is_path_char(c) && c != '&')
      out += static_cast<char>(c);
    else
      append_pct(out, c);
  }
  return out;
}

std::string encode_all(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 3);
  for (unsigned char c : bytes)
    append_pct(out, c);
  return out;
}

// The URI with any pin-value replaced, for messages.
std::string redacted(std::string_view text) {
  std::string out(text);
  std::size_t pos = 0;
  while ((pos = out.find("pin-value=", pos)) != std::string::npos) {
    std::size_t start = pos + 10;
    std::size_t end = out.find_first_of(";&#", start);
    if (end == std::string::npos) end = out.size();
    out.replace(start, end - start, "***");
    pos = start + 3;
  }
  return out;
}

} // namespace

namespace uri_detail {

bool parse_ulong(std::string_view s, std::uint64_t& out) {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!is_digit(c)) return false;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

} // namespace uri_detail

using uri_detail::parse_ulong;

namespace {

void check_value(const std::string& name, const std::string& value) {
  if (name == "type" && !contains(kObjectTypes, value))
    fail(ExitCode::Usage, "The PKCS#11 URI attribute 'type' is '" + value +
                              "', which is not one of public, private, cert, "
                              "secret-key, data.");
  if (name == "slot-id") {
    std::uint64_t v = 0;
    if (!parse_ulong(value, v))
      fail(ExitCode::Usage, "The PKCS#11 URI attribute 'slot-id' is '" + value + "', which is not a decimal number.",
           "Write the slot number in decimal, e.g. slot-id=0.");
  }
  if (name == "library-version") {
    auto dot = value.find('.');
    std::uint64_t v = 0;
    bool ok = dot == std::string::npos ? parse_ulong(value, v)
                                       : parse_ulong(std::string_view(value).substr(0, dot), v) &&
                                             parse_ulong(std::string_view(value).substr(dot + 1), v);
    if (!ok)
      fail(ExitCode::Usage, "The PKCS#11 URI attribute 'library-version' is '" + value +
                                "', which is not a version of the form MAJOR or MAJOR.MINOR.");
  }
}

std::string_view trim_scheme_check(std::string_view text) {
  if (text.empty())
    fail(ExitCode::Usage, "The PKCS#11 URI is empty.", "A PKCS#11 URI looks like pkcs11:token=alice;object=auth.");
  if (text.size() < kScheme.size() || [&] {
        for (std::size_t i = 0; i < kScheme.size(); ++i) {
          char c = text[i];
          if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
          if (c != kScheme[i]) return true;
        }
        return false;
      }())
    fail(ExitCode::Usage, "'" + redacted(text) + "' is not a PKCS#11 URI: it does not start with 'pkcs11:'.",
         "A PKCS#11 URI looks like pkcs11:token=alice;object=auth.");
  return text.substr(kScheme.size());
}

} // namespace

Pkcs11Uri Pkcs11Uri::parse(std::string_view text) {
  std::string_view rest = trim_scheme_check(text);
  if (rest.find('#') != std::string_view::npos)
    fail(ExitCode::Usage,
         "The PKCS#11 URI '" + redacted(text) + "' has a fragment ('#'), which RFC 7512 does not allow.",
         "Percent-encode a '#' inside a value as %23.");

  std::string_view path_part = rest;
  std::string_view query_part;
  bool has_query = false;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    path_part = rest.substr(0, q);
    query_part = rest.substr(q + 1);
    has_query = true;
  }

  Pkcs11Uri uri;
  auto split = [&](std::string_view part, char sep, bool in_query) {
    if (part.empty()) return;
    std::size_t start = 0;
    while (true) {
      std::size_t end = part.find(sep, start);
      std::string_view attr = part.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
      const char* where = in_query ? "query" : "path";
      if (attr.empty())
        fail(ExitCode::Usage,
             "The PKCS#11 URI '" + redacted(text) + "' has an empty attribute in its " + where + " part (a stray '" +
                 std::string(1, sep) + "').",
             std::string("Separate ") + where + " attributes with exactly one '" + std::string(1, sep) + "'.");
      auto eq = attr.find('=');
      if (eq == std::string_view::npos)
        fail(ExitCode::Usage,
             "The PKCS#11 URI attribute '" + redacted(attr) + "' has no '=': every attribute is written name=value.",
             "For example pkcs11:token=alice.");
      std::string name(attr.substr(0, eq));
      std::string_view raw = attr.substr(eq + 1);
      if (!is_attr_name(name))
        fail(ExitCode::Usage, "The PKCS#11 URI attribute name '" + redacted(name) +
                                  "' is not valid: names consist of letters, digits, '-' and '_'.");
      if (in_query) {
        if (contains(kPathAttrs, name))
          fail(ExitCode::Usage,
               "The PKCS#11 URI attribute '" + name + "' belongs in the path part, not in the query after '?'.",
               "Move it before the '?', separated by ';'.");
      } else {
        if (contains(kQueryAttrs, name))
          fail(ExitCode::Usage, "The PKCS#11 URI attribute '" + name + "' belongs in the query part, after '?'.",
               "Write it as pkcs11:...?" + name + "=VALUE.");
      }
      // Section 2.3: no path attribute twice; in the query only vendor
      // attributes may repeat ("it is up to the URI consumer to decide").
      bool repeated = in_query ? contains(kQueryAttrs, name) && uri.query.count(name) : uri.path.count(name) != 0;
      if (repeated)
        fail(ExitCode::Usage, "The PKCS#11 URI has the attribute '" + name + "' more than once.",
             "Give each attribute once.");
      std::string value = decode(raw, name, in_query);
      if (in_query) {
        uri.query.emplace(std::move(name), std::move(value));
      } else {
        check_value(name, value);
        uri.path.emplace(std::move(name), std::move(value));
      }
      if (end == std::string_view::npos) break;
      start = end + 1;
    }
  };
  split(path_part, ';', false);
  if (has_query) split(query_part, '&', true);
  return uri;
}

std::string Pkcs11Uri::format() const {
  std::string out(kScheme);
  bool first = true;
  auto add_path = [&](const std::string& name, const std::string& value) {
    if (!first) out += ';';
    first = false;
    out += name;
    out += '=';
    out += name == "id" ? encode_all(value) : encode(value, false);
  };
  for (auto name : kPathAttrs)
    if (auto it = path.find(std::string(name)); it != path.end()) add_path(it->first, it->second);
  for (const auto& [name, value] : path)
    if (!contains(kPathAttrs, name)) add_path(name, value);

  first = true;
  auto add_query = [&](const std::string& name, const std::string& value) {
    out += first ? '?' : '&';
    first = false;
    out += name;
    out += '=';
    out += encode(value, true);
  };
  for (auto name : kQueryAttrs)
    if (auto it = query.lower_bound(std::string(name)); it != query.end() && it->first == name)
      add_query(it->first, it->second);
  for (const auto& [name, value] : query)
    if (!contains(kQueryAttrs, name)) add_query(name, value);
  return out;
}

std::optional<std::string> Pkcs11Uri::get(const std::string& key) const {
  if (auto it = path.find(key); it != path.end()) return it->second;
  if (auto it = query.lower_bound(key); it != query.end() && it->first == key) return it->second;
  return std::nullopt;
}

std::vector<std::string> Pkcs11Uri::vendor_path_attributes() const {
  std::vector<std::string> out;
  for (const auto& [name, value] : path)
    if (!contains(kPathAttrs, name)) out.push_back(name);
  return out;
}

bool Pkcs11Uri::is_standard_path_attribute(std::string_view name) { return contains(kPathAttrs, name); }
bool Pkcs11Uri::is_standard_query_attribute(std::string_view name) { return contains(kQueryAttrs, name); }
std::string Pkcs11Uri::redact(std::string_view text) { return redacted(text); }

void Pkcs11Uri::require_evaluable(std::string_view what) const {
  auto vendor = vendor_path_attributes();
  if (!vendor.empty())
    fail(ExitCode::Usage,
         "The PKCS#11 URI of " + std::string(what) + " has the path attribute '" + vendor.front() +
             "', which tokenprov cannot evaluate: it knows token, manufacturer, serial, model, library-manufacturer, "
             "library-description, library-version, slot-manufacturer, slot-description, slot-id, object, type and id.",
         "RFC 7512 section 2.5 has a URI with an unrecognized path attribute match nothing; remove the attribute "
         "if it is meant for another program.");
  if (query.count("pin-value"))
    fail(ExitCode::Usage,
         "The PKCS#11 URI of " + std::string(what) +
             " carries a PIN (pin-value); tokenprov takes no PIN from a URI, which ends up in shell history, "
             "process lists and logs.",
         "Remove pin-value and give the PIN with pin-source=file:/PATH in the URI or --pin-source.");
}

std::string token_uri(const p11::TokenInfo& token) {
  Pkcs11Uri uri;
  uri.path["token"] = token.label;
  uri.path["manufacturer"] = token.manufacturer;
  uri.path["serial"] = token.serial;
  uri.path["model"] = token.model;
  return uri.format();
}

std::string object_uri(const p11::TokenInfo& token, const std::string& type, const std::string& label,
                       const std::string& id_bytes) {
  Pkcs11Uri uri;
  uri.path["token"] = token.label;
  uri.path["manufacturer"] = token.manufacturer;
  uri.path["serial"] = token.serial;
  uri.path["model"] = token.model;
  if (!label.empty()) uri.path["object"] = label;
  if (!type.empty()) uri.path["type"] = type;
  if (!id_bytes.empty()) uri.path["id"] = id_bytes;
  return uri.format();
}

std::string to_hex(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kHexDigits[c >> 4];
    out += kHexDigits[c & 0x0f];
  }
  return out;
}

std::string from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0)
    fail(ExitCode::Usage,
         "'" + std::string(hex) + "' is not a hexadecimal byte string: it has an odd number of digits.",
         "Write each byte as two hex digits, e.g. 01 or a0b1.");
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int hi = hex_value(hex[i]);
    int lo = hex_value(hex[i + 1]);
    if (hi < 0 || lo < 0) {
      unsigned char bad = static_cast<unsigned char>(hi < 0 ? hex[i] : hex[i + 1]);
      fail(ExitCode::Usage,
           "'" + std::string(hex) + "' is not a hexadecimal byte string: it contains " + describe_char(bad) + ".",
           "Use only the digits 0-9 and a-f, two per byte.");
    }
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

Pkcs11Uri parse_selector_uri(std::string_view text) {
  auto uri = Pkcs11Uri::parse(text);
  if (uri.query.count("pin-value"))
    // Deliberate (docs/key-policy.md): a PIN in a URI lands in shell history, ps, manifests, state
    // files and logs. Refused; the message shows the URI with the value masked.
    fail(ExitCode::Usage,
         "The PKCS#11 URI '" + redacted(text) + "' carries a PIN (pin-value); tokenprov never takes a PIN from a URI.",
         "Remove '?pin-value=...' and give the PIN with --pin-source (env:VAR, file:PATH, fd:N or prompt).");
  return uri;
}

} // namespace tokenprov
