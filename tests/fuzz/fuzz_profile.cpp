// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the token profile parser (tokenprov::parse_profile in
// src/flows/profile.cpp: toml++, then the checks of every field).
//
// Bad input must end in tokenprov::Error. A profile that passes must keep
// its promises: every label template expands with the placeholders the
// documentation lists, and every fixed id is hex.
#include "tokenprov/error.hpp"
#include "tokenprov/profile.hpp"
#include "tokenprov/uri.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  tokenprov::Profile p;
  try {
    p = tokenprov::parse_profile(text, "fuzz.toml");
  } catch (const tokenprov::Error&) {
    return 0;
  }
  const std::map<std::string, std::string> vars = {{"role", "r"}, {"user", "u"}, {"serial", "s"}, {"cn", "c"}};
  try {
    (void)tokenprov::expand_template(p.token_label_template, vars);
    for (const auto& k : p.keys) {
      (void)tokenprov::expand_template(k.label_template, vars);
      if (!k.id.empty()) (void)tokenprov::from_hex(k.id);
    }
  } catch (const tokenprov::Error& e) {
    std::fprintf(stderr, "parse_profile accepted a profile its users then refuse: %s\n", e.what());
    std::abort();
  }
  return 0;
}
