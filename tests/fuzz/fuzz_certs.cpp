// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the certificate bundle loader of `pickup`
// (tokenprov::load_certificates in src/crypto/certs.cpp): PEM with any number of
// CERTIFICATE / PKCS7 blocks, DER certificates, DER PKCS#7.
//
// Bad input must end in tokenprov::Error. What loads then goes through what
// pickup does next with it without a token: a label for each certificate,
// and the chain ordering from the first one.
#include "tokenprov/error.hpp"
#include "tokenprov/pickup.hpp"

#include <openssl/err.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<tokenprov::ossl::X509Ptr> certs;
  try {
    certs = tokenprov::load_certificates(std::span<const std::uint8_t>(data, size), "fuzz-input");
  } catch (const tokenprov::Error&) {
    ERR_clear_error();
    return 0;
  }
  for (auto& c : certs)
    (void)tokenprov::cert_label(c.get());
  if (!certs.empty()) {
    tokenprov::ossl::X509Ptr leaf = std::move(certs.front());
    certs.erase(certs.begin());
    auto chain = tokenprov::order_chain(leaf.get(), certs);
    (void)chain;
  }
  ERR_clear_error();
  return 0;
}
