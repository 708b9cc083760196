// SPDX-License-Identifier: Apache-2.0
// ossl::spki_der(EVP_PKEY*) builds RSA, EC and Ed25519 SubjectPublicKeyInfo
// itself (no OpenSSL encoder, see docs/performance.md): the bytes must be
// exactly i2d_PUBKEY's, because they are compared with certificates' keys.
#include "tokenprov/ossl.hpp"

#include <catch2/catch.hpp>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <string>

using tokenprov::ossl::Bytes;

namespace {

Bytes reference(EVP_PKEY* k) {
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(k, &der);
  REQUIRE(n > 0);
  Bytes out(der, der + n);
  OPENSSL_free(der);
  return out;
}

// The key, and its public half as a provider key read back from DER.
void check_same(EVP_PKEY* k) {
  REQUIRE(k != nullptr);
  Bytes want = reference(k);
  CHECK(tokenprov::ossl::spki_der(k) == want);
  const unsigned char* p = want.data();
  EVP_PKEY* pub = d2i_PUBKEY(nullptr, &p, static_cast<long>(want.size()));
  REQUIRE(pub != nullptr);
  CHECK(tokenprov::ossl::spki_der(pub) == want);
  EVP_PKEY_free(pub);
  EVP_PKEY_free(k);
}

} // namespace

TEST_CASE("spki_der matches i2d_PUBKEY byte for byte") {
  SECTION("EC on named curves") {
    for (const char* curve : {"P-256", "P-384", "P-521", "secp256k1"}) {
      INFO(curve);
      check_same(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", curve));
    }
  }
  SECTION("RSA, with F4 and a small exponent") {
    check_same(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048)));
    EVP_PKEY_CTX* c = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
    REQUIRE(EVP_PKEY_keygen_init(c) == 1);
    REQUIRE(EVP_PKEY_CTX_set_rsa_keygen_bits(c, 1024) == 1);
    BIGNUM* e = BN_new();
    BN_set_word(e, 3);
    REQUIRE(EVP_PKEY_CTX_set1_rsa_keygen_pubexp(c, e) == 1);
    EVP_PKEY* k = nullptr;
    REQUIRE(EVP_PKEY_keygen(c, &k) == 1);
    BN_free(e);
    EVP_PKEY_CTX_free(c);
    check_same(k);
  }
  SECTION("Ed25519, and Ed448 through i2d_PUBKEY") {
    check_same(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
    check_same(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED448"));
  }
}
