// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the PKCS#12 reader of `restore` (tokenprov::pkcs12::parse
// in src/crypto/pkcs12.cpp).
//
// Each input is read twice:
//  1. the whole input as DER with the fixed password "fuzz" (the password of
//     the seed files), key not required;
//  2. with a password taken from the input itself: the low four bits of the
//     first byte give its length N, the next N bytes are the password, the
//     rest is the DER; bit 0x10 of the first byte asks for a key. This
//     reaches empty and non-ASCII passwords.
// Bad input must end in tokenprov::Error.
#include "tokenprov/error.hpp"
#include "tokenprov/pkcs12.hpp"
#include "tokenprov/secret.hpp"

#include <openssl/err.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace {

void read_one(std::span<const std::uint8_t> der, const std::string& password, bool require_key) {
  tokenprov::Secret pw(password);
  try {
    auto contents = tokenprov::pkcs12::parse(der, pw, "fuzz-input.p12", require_key);
    (void)contents;
  } catch (const tokenprov::Error&) {
  }
  ERR_clear_error();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> in(data, size);
  read_one(in, "fuzz", false);
  if (size >= 1) {
    const std::size_t n = data[0] & 0x0f;
    const bool require_key = (data[0] & 0x10) != 0;
    if (size >= 1 + n)
      read_one(in.subspan(1 + n), std::string(reinterpret_cast<const char*>(data + 1), n), require_key);
  }
  return 0;
}
