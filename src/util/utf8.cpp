// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/utf8.hpp"

#include "tokenprov/error.hpp"

namespace tokenprov {

namespace {

// The length of the valid UTF-8 character at S[I], or 0 if the bytes there are not one.
std::size_t char_len(std::string_view s, std::size_t i) {
  auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  if (c < 0x80) return 1;
  std::size_t n;
  unsigned lo = 0x80, hi = 0xBF; // the allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF)
    n = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;           // no overlong forms
    if (c == 0xED) hi = 0x9F;           // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;           // no overlong forms
    if (c == 0xF4) hi = 0x8F;           // nothing above U+10FFFF
  } else
    return 0;
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  return n;
}

nlohmann::json escaped(const nlohmann::json& j) {
  if (j.is_string()) {
    const auto& s = j.get_ref<const std::string&>();
    return valid_utf8(s) ? j : nlohmann::json(escape_invalid_utf8(s));
  }
  if (j.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (auto& e : j)
      out.push_back(escaped(e));
    return out;
  }
  if (j.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (auto it = j.begin(); it != j.end(); ++it)
      out[valid_utf8(it.key()) ? it.key() : escape_invalid_utf8(it.key())] = escaped(it.value());
    return out;
  }
  return j;
}

bool needs_escaping(const nlohmann::json& j) {
  if (j.is_string()) return !valid_utf8(j.get_ref<const std::string&>());
  if (j.is_array())
    for (auto& e : j)
      if (needs_escaping(e)) return true;
  if (j.is_object())
    for (auto it = j.begin(); it != j.end(); ++it)
      if (!valid_utf8(it.key()) || needs_escaping(it.value())) return true;
  return false;
}

} // namespace

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = char_len(s, i);
    if (!n) return false;
    i += n;
  }
  return true;
}

void require_utf8(std::string_view value, const std::string& field) {
  if (valid_utf8(value)) return;
  fail(ExitCode::BadInput,
       "The " + field + " '" + escape_invalid_utf8(value) + "' is not valid UTF-8 (bytes shown as \\xNN).",
       "Give it in UTF-8 (a Latin-1 file or terminal sends other bytes; convert with iconv -f latin1 -t utf-8).");
}

std::string utf8_prefix(std::string_view s, std::size_t max) {
  std::size_t end = 0;
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = char_len(s, i);
    if (!n || i + n > max) break;
    i += n;
    end = i;
  }
  return std::string(s.substr(0, end));
}

std::string escape_invalid_utf8(std::string_view s) {
  static const char* hexd = "0123456789abcdef";
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = char_len(s, i);
    if (n) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      auto c = static_cast<unsigned char>(s[i]);
      out += "\\x";
      out += hexd[c >> 4];
      out += hexd[c & 15];
      ++i;
    }
  }
  return out;
}

std::string json_text(const nlohmann::json& j) {
  if (needs_escaping(j)) return escaped(j).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace tokenprov
