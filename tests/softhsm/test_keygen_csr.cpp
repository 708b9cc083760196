// SPDX-License-Identifier: Apache-2.0
// Key generation with an explicit policy, and CSRs signed on the token.
#include "support/softhsm_fixture.hpp"

#include "tokenprov/csr.hpp"
#include "tokenprov/inventory.hpp"
#include "tokenprov/keys.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/uri.hpp"

#include <catch2/catch.hpp>

#include <openssl/err.h>
#include <openssl/pem.h>

using namespace tokenprov;
using namespace tokenprov::test;

namespace {
struct Opened {
  SoftHsm hsm;
  Secret pin{std::string(kUserPin)};
  TokenContext ctx;
  explicit Opened(const std::string& label) {
    hsm.create_token(label);
    ctx = open_token({kSoftHsmModule, label, TokenState::Initialized, true, &pin});
  }
};
} // namespace

TEST_CASE("every algorithm generates with the policy asked for, and its CSR verifies", "[softhsm]") {
  auto alg = GENERATE(as<std::string>{}, "rsa2048", "ec-p256", "ec-p384", "ed25519");
  Opened o("keys");
  auto& s = *o.ctx.session;
  Algorithm a = parse_algorithm(alg);
  bool exportable = alg != "ec-p384";
  KeyPolicy pol{"k-" + alg, {}, exportable, 0};
  auto k = generate_key(s, a, pol);
  CHECK(k.id.size() == 20); // SHA-1 of the public key
  CHECK(s.attr_bool(k.priv, CKA_SENSITIVE) == true);
  CHECK(s.attr_bool(k.priv, CKA_PRIVATE) == true);
  CHECK(s.attr_bool(k.priv, CKA_TOKEN) == true);
  CHECK(s.attr_bool(k.priv, CKA_EXTRACTABLE) == exportable);
  CHECK(s.attr_bool(k.priv, CKA_SIGN) == true);
  CHECK(s.attr_bytes(k.pub, CKA_ID) == k.id);
  CHECK(s.attr_string(k.pub, CKA_LABEL) == pol.label);
  // The derived id is the documented one.
  auto pub = public_key(s, k);
  CHECK(derive_key_id(pub.get()) == k.id);

  // The CSR verifies with openssl (independent reader) and carries the token's public key.
  CsrRequest req{"/CN=Alice " + alg + "/O=Example",
                 {"email:alice@example.org", "dns:alice.example.org", "upn:alice@EXAMPLE.ORG"},
                 SigScheme::Default,
                 nullptr};
  auto csr = make_csr(s, k, req);
  auto path = o.hsm.write_file("req.pem", ossl::to_pem(csr.get()));
  std::string out;
  CHECK(run("openssl req -in " + shell_quote(path) + " -noout -verify 2>&1", &out) == 0);
  CHECK(out.find("verify OK") != std::string::npos);
  CHECK(run("openssl req -in " + shell_quote(path) + " -noout -text 2>&1", &out) == 0);
  CHECK(out.find("alice@example.org") != std::string::npos);
  CHECK(out.find("alice.example.org") != std::string::npos);
  std::string pubpem;
  REQUIRE(run("openssl req -in " + shell_quote(path) + " -noout -pubkey", &pubpem) == 0);
  ossl::BioPtr b(BIO_new_mem_buf(pubpem.data(), static_cast<int>(pubpem.size())));
  ossl::EvpPkeyPtr csrpub(PEM_read_bio_PUBKEY(b.get(), nullptr, nullptr, nullptr));
  REQUIRE(csrpub);
  CHECK(ossl::spki_der(csrpub.get()) == ossl::spki_der(pub.get()));

  // The write-only request (provision --csr-dir) sets its key without OpenSSL's
  // encoder: the body it signs is byte for byte the one X509_REQ_set_pubkey
  // gives, and openssl verifies it.
  CsrRequest wreq = req;
  wreq.write_only = true;
  auto wcsr = make_csr(s, k, wreq);
  auto tbs = [](X509_REQ* r) {
    unsigned char* der = nullptr;
    int n = i2d_re_X509_REQ_tbs(r, &der);
    REQUIRE(n > 0);
    std::vector<unsigned char> body(der, der + n);
    OPENSSL_free(der);
    return body;
  };
  CHECK(tbs(wcsr.get()) == tbs(csr.get()));
  CHECK(X509_REQ_get0_pubkey(wcsr.get()) == nullptr); // the direct path was taken: no EVP_PKEY kept
  ERR_clear_error();
  auto wpath = o.hsm.write_file("req-write-only.pem", ossl::to_pem(wcsr.get()));
  CHECK(run("openssl req -in " + shell_quote(wpath) + " -noout -verify 2>&1", &out) == 0);
  CHECK(out.find("verify OK") != std::string::npos);
}

TEST_CASE("RSA-PSS and RSA-4096 requests verify", "[softhsm]") {
  Opened o("pss");
  auto& s = *o.ctx.session;
  auto k = generate_key(s, Algorithm::Rsa3072, {"pss", {}, false, 0});
  auto csr = make_csr(s, k, {"/CN=PSS", {}, SigScheme::RsaPss, nullptr});
  auto path = o.hsm.write_file("pss.pem", ossl::to_pem(csr.get()));
  std::string out;
  CHECK(run("openssl req -in " + shell_quote(path) + " -noout -verify -text 2>&1", &out) == 0);
  CHECK(out.find("rsassaPss") != std::string::npos);
}

TEST_CASE("a label or id in use is refused and nothing is generated", "[softhsm]") {
  Opened o("dup");
  auto& s = *o.ctx.session;
  generate_key(s, Algorithm::EcP256, {"same", {0x01}, false, 0});
  auto count = [&] {
    p11::Attributes all;
    return s.find(all).size();
  };
  auto before = count();
  try {
    generate_key(s, Algorithm::EcP256, {"same", {}, false, 0});
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::Exists);
  }
  try {
    generate_key(s, Algorithm::EcP256, {"other", {0x01}, false, 0});
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::Exists);
  }
  CHECK(count() == before);
}

TEST_CASE("usage flags are exactly those asked for", "[softhsm]") {
  Opened o("usage");
  auto& s = *o.ctx.session;
  auto k = generate_key(s, Algorithm::Rsa2048, {"dec", {}, true, UsageDecrypt});
  CHECK(s.attr_bool(k.priv, CKA_SIGN) == false);
  CHECK(s.attr_bool(k.priv, CKA_DECRYPT) == true);
  CHECK(s.attr_bool(k.priv, CKA_UNWRAP) == false);
  CHECK(s.attr_bool(k.pub, CKA_ENCRYPT) == true);
  CHECK(s.attr_bool(k.pub, CKA_VERIFY) == false);
  CHECK_THROWS_AS(parse_usage({"decrypt"}, Algorithm::EcP256), Error);
  CHECK_THROWS_AS(parse_usage({"fly"}, Algorithm::Rsa2048), Error);
}

TEST_CASE("find_key accepts a URI, id:HEX and a label", "[softhsm]") {
  Opened o("find");
  auto& s = *o.ctx.session;
  auto k = generate_key(s, Algorithm::EcP256, {"findme", {0xa1, 0x02}, false, 0});
  CHECK(find_key(s, "findme").priv == k.priv);
  CHECK(find_key(s, "id:a102").priv == k.priv);
  CHECK(find_key(s, "pkcs11:object=findme;id=%a1%02;type=private").priv == k.priv);
  try {
    find_key(s, "absent");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::BadInput);
  }
  auto pub = public_key(s, k);
  auto found = find_key_by_public(s, pub.get());
  REQUIRE(found);
  CHECK(found->priv == k.priv);
}
