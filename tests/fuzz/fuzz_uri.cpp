// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the PKCS#11 URI parser (src/p11/uri.cpp).
//
// Bad input must end in tokenprov::Error. A URI that parses must also
// survive a round trip: format() gives a URI that parses to the same
// attributes. Anything else (a crash, a sanitizer report, another exception,
// a broken round trip) is a finding.
#include "tokenprov/error.hpp"
#include "tokenprov/uri.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  tokenprov::Pkcs11Uri uri;
  try {
    uri = tokenprov::Pkcs11Uri::parse(text);
  } catch (const tokenprov::Error&) {
    return 0;
  }
  const std::string canonical = uri.format();
  tokenprov::Pkcs11Uri again;
  try {
    again = tokenprov::Pkcs11Uri::parse(canonical);
  } catch (const tokenprov::Error& e) {
    std::fprintf(stderr, "format() wrote a URI parse() refuses: %s\n  %s\n", canonical.c_str(), e.what());
    std::abort();
  }
  if (again.path != uri.path || again.query != uri.query) {
    std::fprintf(stderr, "URI round trip changed the attributes: %s\n", canonical.c_str());
    std::abort();
  }
  // The hex helpers, on the decoded id.
  if (auto id = uri.get("id")) {
    if (tokenprov::from_hex(tokenprov::to_hex(*id)) != *id) {
      std::fprintf(stderr, "to_hex/from_hex round trip failed\n");
      std::abort();
    }
  }
  return 0;
}
