// SPDX-License-Identifier: Apache-2.0
// The one certificate-bundle reader and chain orderer (src/crypto/certs.cpp)
// that pickup, backup, the PKCS#12 reader and SCEP share.
#include "tokenprov/certs.hpp"

#include "support/testutil.hpp"

#include <catch2/catch.hpp>

#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>

#include <string>

using namespace tokenprov;
using namespace tokenprov::test;

namespace {

std::string pem(X509* c) {
  ossl::BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(b.get(), c);
  char* p = nullptr;
  long n = BIO_get_mem_data(b.get(), &p);
  return std::string(p, static_cast<std::size_t>(n));
}

ossl::Bytes der(X509* c) {
  unsigned char* p = nullptr;
  int n = i2d_X509(c, &p);
  ossl::Bytes out(p, p + n);
  OPENSSL_free(p);
  return out;
}

std::span<const std::uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

bool same(X509* a, X509* b) { return X509_cmp(a, b) == 0; }

CertOptions ca_options() {
  CertOptions o;
  o.ca = true;
  return o;
}

} // namespace

TEST_CASE("order_chain takes the leaf's chain out of any pool order and leaves the rest", "[certs]") {
  auto pki = make_pki(KeyAlg::EcP256);
  auto other_key = make_key(KeyAlg::EcP256);
  auto unrelated = issue_cert("/CN=Unrelated CA", other_key.get(), nullptr, other_key.get(), ca_options());
  std::vector<ossl::X509Ptr> pool;
  pool.push_back(ossl::dup(pki.root.get()));
  pool.push_back(std::move(unrelated));
  pool.push_back(ossl::dup(pki.intermediate.get()));
  auto chain = order_chain(pki.leaf.get(), pool);
  REQUIRE(chain.size() == 2);
  CHECK(same(chain[0].get(), pki.intermediate.get()));
  CHECK(same(chain[1].get(), pki.root.get()));
  REQUIRE(pool.size() == 1);
  CHECK(ossl::name_oneline(X509_get_subject_name(pool[0].get())).find("Unrelated") != std::string::npos);
}

TEST_CASE("order_chain stops where no issuer is in the pool", "[certs]") {
  auto pki = make_pki(KeyAlg::EcP256);
  std::vector<ossl::X509Ptr> pool;
  pool.push_back(ossl::dup(pki.root.get())); // the intermediate is missing
  auto chain = order_chain(pki.leaf.get(), pool);
  CHECK(chain.empty());
  CHECK(pool.size() == 1);
}

TEST_CASE("order_chain prefers the issuer whose key verifies the signature", "[certs]") {
  // Two CA certificates with the same name and no key identifiers that tell
  // them apart: only the signature does (a re-keyed CA).
  auto good_key = make_key(KeyAlg::EcP256);
  auto bad_key = make_key(KeyAlg::EcP256);
  auto leaf_key = make_key(KeyAlg::EcP256);
  auto good = issue_cert("/CN=Same CA", good_key.get(), nullptr, good_key.get(), ca_options());
  auto bad = issue_cert("/CN=Same CA", bad_key.get(), nullptr, bad_key.get(), ca_options());
  auto leaf = issue_cert("/CN=Leaf", leaf_key.get(), good.get(), good_key.get());
  // Strip the key identifiers so that X509_check_issued cannot choose.
  for (X509* c : {good.get(), bad.get(), leaf.get()}) {
    for (int nid : {NID_subject_key_identifier, NID_authority_key_identifier}) {
      int i = X509_get_ext_by_NID(c, nid, -1);
      if (i >= 0) X509_EXTENSION_free(X509_delete_ext(c, i));
    }
  }
  // Re-sign the leaf without its AKID (deleting it changed the signed bytes).
  REQUIRE(X509_sign(leaf.get(), good_key.get(), EVP_sha256()) > 0);
  // Both pass OpenSSL's name and key-identifier check: the choice is order_chain's.
  REQUIRE(X509_check_issued(bad.get(), leaf.get()) == X509_V_OK);
  REQUIRE(X509_check_issued(good.get(), leaf.get()) == X509_V_OK);
  std::vector<ossl::X509Ptr> pool;
  pool.push_back(ossl::dup(bad.get())); // first in the pool: the old rule took it
  pool.push_back(ossl::dup(good.get()));
  auto chain = order_chain(leaf.get(), pool);
  REQUIRE(chain.size() == 1);
  CHECK(X509_verify(leaf.get(), X509_get0_pubkey(chain[0].get())) == 1);
}

TEST_CASE("load_certificates reads PEM, DER and PKCS#7 the same", "[certs]") {
  auto pki = make_pki(KeyAlg::EcP256);
  auto two = pem(pki.leaf.get()) + pem(pki.intermediate.get());
  CHECK(load_certificates(bytes(two), "two.pem").size() == 2);
  auto d = der(pki.leaf.get());
  auto one = load_certificates(d, "leaf.der");
  REQUIRE(one.size() == 1);
  CHECK(same(one[0].get(), pki.leaf.get()));
  ossl::Pkcs7Ptr p7(PKCS7_new());
  REQUIRE(PKCS7_set_type(p7.get(), NID_pkcs7_signed) == 1);
  REQUIRE(PKCS7_content_new(p7.get(), NID_pkcs7_data) == 1);
  PKCS7_add_certificate(p7.get(), pki.leaf.get());
  PKCS7_add_certificate(p7.get(), pki.root.get());
  unsigned char* p = nullptr;
  int n = i2d_PKCS7(p7.get(), &p);
  REQUIRE(n > 0);
  ossl::Bytes p7der(p, p + n);
  OPENSSL_free(p);
  CHECK(load_certificates(p7der, "chain.p7b").size() == 2);
  CHECK(certs_of_pkcs7(p7.get()).size() == 2);
  CHECK_THROWS_AS(load_certificates(bytes("not a certificate"), "junk.txt"), Error);
}
