// SPDX-License-Identifier: Apache-2.0
// PKCS#12 backup files: build/parse round trips for both profiles ("[unit]"),
// and files checked by and taken from the real tools ("[interop]": openssl,
// NSS pk12util/certutil, Java keytool; these start processes and FAIL when a
// tool is missing).
//
// Facts the interop tests pin down (OpenSSL 3.0.x, NSS 3.87, OpenJDK 17):
//  - `openssl pkcs12` reads the legacy profile (PBE-SHA1-3DES, SHA-1 MAC)
//    without -legacy: 3DES and the PKCS#12 KDF are in the default provider.
//    Only RC2 (`openssl pkcs12 -export -legacy` certificate safes) needs it.
//  - pk12util imports both profiles; the leaf gets the friendlyName as its
//    nickname, the CA certificates (no friendlyName) "CN - O" nicknames.
//    `pk12util -o` writes AES-256 (key) / AES-128 (certs), PBKDF2-SHA256 and
//    a SHA-256 MAC, all at 600,000 iterations, friendlyName on every
//    certificate, and the leaf after its CAs.
//  - keytool lists one PrivateKeyEntry with a chain of 3 and lower-cases the
//    alias; a PKCS12 it writes has the key bag first, localKeyID "Time <ms>"
//    and the CA certificates named by their DN. keytool refuses non-ASCII
//    PKCS#12 passwords ("Password is not ASCII"); openssl and NSS accept them
//    and agree with tokenprov.
#include "tokenprov/pkcs12.hpp"

#include "support/testutil.hpp"

#include <catch2/catch.hpp>

#include <openssl/err.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <sys/stat.h>
#include <utility>
#include <vector>

using namespace tokenprov;
using Catch::Matchers::Contains;
using pkcs12::Compat;
using test::KeyAlg;

namespace {

const char kPassword[] = "correct horse battery staple";
const char kFriendlyName[] = "Alice Example (tokenprov)";
const std::vector<std::uint8_t> kKeyId{0x4b, 0x01, 0x7a, 0xc3, 0x00, 0xff, 0x10, 0x20};

ossl::EvpPkeyPtr share(EVP_PKEY* k) {
  EVP_PKEY_up_ref(k);
  return ossl::EvpPkeyPtr(k);
}

pkcs12::Contents contents_of(const test::TestPki& pki, bool with_key = true) {
  pkcs12::Contents c;
  if (with_key) c.key = share(pki.leaf_key.get());
  c.leaf = ossl::dup(pki.leaf.get());
  c.chain.push_back(ossl::dup(pki.intermediate.get()));
  c.chain.push_back(ossl::dup(pki.root.get()));
  c.friendly_name = kFriendlyName;
  c.local_key_id = kKeyId;
  return c;
}

template <class F> std::pair<ExitCode, std::string> error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return {e.code(), e.what()};
  }
  return {ExitCode::Ok, "(no error)"};
}

bool same_cert(X509* a, X509* b) {
  return a && b && X509_cmp(a, b) == 0;
}

std::string subject_of(X509* c) {
  return ossl::name_oneline(X509_get_subject_name(c));
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return s;
}

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto p = text.find(what); p != std::string::npos; p = text.find(what, p + what.size()))
    ++n;
  return n;
}

// ---- what a file holds, read with OpenSSL directly ----------------------

std::string pbe_text(const X509_ALGOR* alg) {
  int nid = OBJ_obj2nid(alg->algorithm);
  if (nid == NID_pbes2) {
    PBE2PARAM* p2 = static_cast<PBE2PARAM*>(ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBE2PARAM), alg->parameter));
    REQUIRE(p2);
    PBKDF2PARAM* kdf =
        static_cast<PBKDF2PARAM*>(ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBKDF2PARAM), p2->keyfunc->parameter));
    REQUIRE(kdf);
    std::string out = std::string("PBES2/") + OBJ_nid2sn(OBJ_obj2nid(p2->keyfunc->algorithm)) + "/" +
                      (kdf->prf ? OBJ_nid2sn(OBJ_obj2nid(kdf->prf->algorithm)) : "hmacWithSHA1") + "/" +
                      OBJ_nid2sn(OBJ_obj2nid(p2->encryption->algorithm)) + "/" +
                      std::to_string(ASN1_INTEGER_get(kdf->iter)) + "/salt" +
                      std::to_string(kdf->salt->value.octet_string->length);
    PBKDF2PARAM_free(kdf);
    PBE2PARAM_free(p2);
    return out;
  }
  PBEPARAM* pp = static_cast<PBEPARAM*>(ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBEPARAM), alg->parameter));
  REQUIRE(pp);
  std::string out = std::string(OBJ_nid2sn(nid)) + "/" + std::to_string(ASN1_INTEGER_get(pp->iter));
  PBEPARAM_free(pp);
  return out;
}

std::string attr_id(PKCS12_SAFEBAG* bag) {
  const ASN1_TYPE* t = PKCS12_get_attr_gen(PKCS12_SAFEBAG_get0_attrs(bag), NID_localKeyID);
  if (!t) return "-";
  return test::hex({ASN1_STRING_get0_data(t->value.octet_string),
                    static_cast<std::size_t>(ASN1_STRING_length(t->value.octet_string))});
}

std::string attr_name(PKCS12_SAFEBAG* bag) {
  char* n = PKCS12_get_friendlyname(bag);
  if (!n) return "-";
  std::string s(n);
  OPENSSL_free(n);
  return s;
}

struct Layout {
  std::string mac;                // "SHA256/200000/salt16"
  std::vector<std::string> safes; // "encrypted PBES2/..." or "data"
  std::string key_pbe;            // the shrouded key bag's encryption
  int key_bags = 0;
  struct Bag {
    std::string subject, name, id;
  };
  std::vector<Bag> certs; // in file order
  int key_attrs = 0;
  std::string key_name, key_id;
};

Layout inspect(std::span<const std::uint8_t> der, const std::string& password) {
  const unsigned char* p = der.data();
  ossl::Pkcs12Ptr p12(d2i_PKCS12(nullptr, &p, static_cast<long>(der.size())));
  REQUIRE(p12);
  Layout l;
  const ASN1_OCTET_STRING* salt = nullptr;
  const ASN1_INTEGER* iter = nullptr;
  const X509_ALGOR* macalg = nullptr;
  PKCS12_get0_mac(nullptr, &macalg, &salt, &iter, p12.get());
  REQUIRE(macalg);
  l.mac = std::string(OBJ_nid2sn(OBJ_obj2nid(macalg->algorithm))) + "/" + std::to_string(ASN1_INTEGER_get(iter)) +
          "/salt" + std::to_string(ASN1_STRING_length(salt));
  STACK_OF(PKCS7)* safes = PKCS12_unpack_authsafes(p12.get());
  REQUIRE(safes);
  for (int i = 0; i < sk_PKCS7_num(safes); ++i) {
    PKCS7* p7 = sk_PKCS7_value(safes, i);
    STACK_OF(PKCS12_SAFEBAG)* bags = nullptr;
    if (OBJ_obj2nid(p7->type) == NID_pkcs7_encrypted) {
      l.safes.push_back("encrypted " + pbe_text(p7->d.encrypted->enc_data->algorithm));
      bags = PKCS12_unpack_p7encdata(p7, password.c_str(), static_cast<int>(password.size()));
    } else {
      l.safes.push_back("data");
      bags = PKCS12_unpack_p7data(p7);
    }
    REQUIRE(bags);
    for (int j = 0; j < sk_PKCS12_SAFEBAG_num(bags); ++j) {
      PKCS12_SAFEBAG* bag = sk_PKCS12_SAFEBAG_value(bags, j);
      if (PKCS12_SAFEBAG_get_nid(bag) == NID_certBag) {
        ossl::X509Ptr c(PKCS12_SAFEBAG_get1_cert(bag));
        l.certs.push_back({subject_of(c.get()), attr_name(bag), attr_id(bag)});
      } else if (PKCS12_SAFEBAG_get_nid(bag) == NID_pkcs8ShroudedKeyBag) {
        const X509_ALGOR* alg = nullptr;
        X509_SIG_get0(PKCS12_SAFEBAG_get0_pkcs8(bag), &alg, nullptr);
        l.key_pbe = pbe_text(alg);
        ++l.key_bags;
        l.key_name = attr_name(bag);
        l.key_id = attr_id(bag);
        l.key_attrs = sk_X509_ATTRIBUTE_num(PKCS12_SAFEBAG_get0_attrs(bag));
      }
    }
    sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
  }
  sk_PKCS7_pop_free(safes, PKCS7_free);
  ERR_clear_error();
  return l;
}

// A PKCS#12 assembled with OpenSSL's own helpers, for shapes build() never
// writes (several keys, a key without its certificate).
std::vector<std::uint8_t> raw_p12(const std::vector<EVP_PKEY*>& keys, const std::vector<X509*>& certs,
                                  const std::string& pw) {
  STACK_OF(PKCS12_SAFEBAG)* cbags = nullptr;
  STACK_OF(PKCS12_SAFEBAG)* kbags = nullptr;
  STACK_OF(PKCS7)* safes = nullptr;
  for (X509* c : certs)
    REQUIRE(PKCS12_add_cert(&cbags, c));
  for (EVP_PKEY* k : keys)
    REQUIRE(PKCS12_add_key(&kbags, k, 0, 2048, NID_aes_256_cbc, pw.c_str()));
  if (cbags) REQUIRE(PKCS12_add_safe(&safes, cbags, NID_aes_256_cbc, 2048, pw.c_str()));
  if (kbags) REQUIRE(PKCS12_add_safe(&safes, kbags, -1, 0, nullptr));
  ossl::Pkcs12Ptr p12(PKCS12_add_safes(safes, 0));
  REQUIRE(p12);
  REQUIRE(PKCS12_set_mac(p12.get(), pw.c_str(), -1, nullptr, 0, 2048, EVP_sha256()));
  sk_PKCS12_SAFEBAG_pop_free(cbags, PKCS12_SAFEBAG_free);
  sk_PKCS12_SAFEBAG_pop_free(kbags, PKCS12_SAFEBAG_free);
  sk_PKCS7_pop_free(safes, PKCS7_free);
  int n = i2d_PKCS12(p12.get(), nullptr);
  std::vector<std::uint8_t> out(static_cast<std::size_t>(n));
  unsigned char* q = out.data();
  i2d_PKCS12(p12.get(), &q);
  return out;
}

void check_parsed(const pkcs12::Contents& got, const test::TestPki& pki, bool with_key = true) {
  if (with_key) {
    REQUIRE(got.key);
    CHECK(test::same_private_key(got.key.get(), pki.leaf_key.get()));
  } else {
    CHECK_FALSE(got.key);
  }
  REQUIRE(got.leaf);
  CHECK(same_cert(got.leaf.get(), pki.leaf.get()));
  REQUIRE(got.chain.size() == 2);
  CHECK(same_cert(got.chain[0].get(), pki.intermediate.get()));
  CHECK(same_cert(got.chain[1].get(), pki.root.get()));
}

std::vector<std::uint8_t> sha1_of(X509* c) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  REQUIRE(X509_digest(c, EVP_sha1(), md, &n));
  return std::vector<std::uint8_t>(md, md + n);
}

} // namespace

// ===========================================================================
// unit

TEST_CASE("parse_compat takes modern and legacy only", "[unit][pkcs12]") {
  CHECK(pkcs12::parse_compat("modern") == Compat::Modern);
  CHECK(pkcs12::parse_compat("legacy") == Compat::Legacy);
  CHECK(std::string(pkcs12::compat_name(Compat::Legacy)) == "legacy");
  for (const char* bad : {"", "Modern", "aes", "3des"}) {
    auto [code, msg] = error_of([&] { pkcs12::parse_compat(bad); });
    CHECK(code == ExitCode::Usage);
    CHECK_THAT(msg, Contains(std::string("'") + bad + "'"));
  }
}

TEST_CASE("build and parse round-trip key, leaf, chain, friendlyName and localKeyID", "[unit][pkcs12]") {
  const Compat compat = GENERATE(Compat::Modern, Compat::Legacy);
  const KeyAlg alg = GENERATE(KeyAlg::Rsa2048, KeyAlg::EcP256);
  INFO(pkcs12::compat_name(compat) << " profile, " << test::key_alg_name(alg) << " leaf");
  auto pki = test::make_pki(alg);
  auto in = contents_of(pki);
  Secret pw(kPassword);
  auto der = pkcs12::build(in, pw, compat);

  auto got = pkcs12::parse(der, pw, "backup.p12", true);
  check_parsed(got, pki);
  CHECK(got.friendly_name == kFriendlyName);
  CHECK(got.local_key_id == kKeyId);
  CHECK_NOTHROW(pkcs12::verify_roundtrip(der, pw, in));

  // The layout the profile promises, read with OpenSSL directly.
  auto l = inspect(der, kPassword);
  const bool modern = compat == Compat::Modern;
  const std::string pbe = modern ? "PBES2/PBKDF2/hmacWithSHA256/AES-256-CBC/200000/salt16" : "PBE-SHA1-3DES/2048";
  CHECK(l.mac == (modern ? "SHA256/200000/salt16" : "SHA1/2048/salt8"));
  REQUIRE(l.safes.size() == 2);
  CHECK(l.safes[0] == "encrypted " + pbe); // certificates: encrypted like the key
  CHECK(l.safes[1] == "data");             // the key safe holds a shrouded bag
  CHECK(l.key_bags == 1);
  CHECK(l.key_pbe == pbe);
  CHECK(l.key_name == kFriendlyName);
  CHECK(l.key_id == test::hex(kKeyId));
  CHECK(l.key_attrs == 2);
  REQUIRE(l.certs.size() == 3);
  CHECK(l.certs[0].subject == subject_of(pki.leaf.get()));
  CHECK(l.certs[0].name == kFriendlyName);
  CHECK(l.certs[0].id == test::hex(kKeyId));
  for (std::size_t i = 1; i < 3; ++i) {
    INFO("CA certificate " << l.certs[i].subject);
    CHECK(l.certs[i].name == "-");
    CHECK(l.certs[i].id == "-");
  }
}

TEST_CASE("an Ed25519 leaf and a non-ASCII friendlyName round-trip", "[unit][pkcs12]") {
  auto pki = test::make_pki(KeyAlg::Ed25519);
  auto in = contents_of(pki);
  in.friendly_name = "Ålice Ω \xe2\x9c\x93";
  Secret pw(kPassword);
  auto der = pkcs12::build(in, pw, Compat::Modern);
  auto got = pkcs12::parse(der, pw, "ed.p12", true);
  check_parsed(got, pki);
  CHECK(got.friendly_name == in.friendly_name);
  CHECK_NOTHROW(pkcs12::verify_roundtrip(der, pw, in));
}

TEST_CASE("a wrong password is BadInput naming the file", "[unit][pkcs12]") {
  const Compat compat = GENERATE(Compat::Modern, Compat::Legacy);
  INFO(pkcs12::compat_name(compat));
  auto pki = test::make_pki(KeyAlg::EcP256);
  auto der = pkcs12::build(contents_of(pki), Secret(kPassword), compat);
  for (const char* wrong : {"correct horse battery stapl", "Correct horse battery staple", ""}) {
    auto [code, msg] = error_of([&] { pkcs12::parse(der, Secret(wrong), "/backups/alice.p12", true); });
    CHECK(code == ExitCode::BadInput);
    CHECK_THAT(msg, Contains("The password for '/backups/alice.p12' is wrong"));
  }
}

TEST_CASE("a truncated, empty or foreign file is BadInput naming the file", "[unit][pkcs12]") {
  auto pki = test::make_pki(KeyAlg::EcP256);
  Secret pw(kPassword);
  auto der = pkcs12::build(contents_of(pki), pw, Compat::Modern);
  for (std::size_t keep :
       {der.size() - 1, der.size() - 40, der.size() / 2, std::size_t{16}, std::size_t{1}, std::size_t{0}}) {
    INFO("first " << keep << " of " << der.size() << " bytes");
    std::vector<std::uint8_t> cut(der.begin(), der.begin() + static_cast<long>(keep));
    auto [code, msg] = error_of([&] { pkcs12::parse(cut, pw, "cut.p12", true); });
    CHECK(code == ExitCode::BadInput);
    CHECK_THAT(msg, Contains("'cut.p12'"));
  }
  std::vector<std::uint8_t> noise(2000);
  RAND_bytes(noise.data(), static_cast<int>(noise.size()));
  noise[0] = 0x30; // looks like a SEQUENCE
  auto [code, msg] = error_of([&] { pkcs12::parse(noise, pw, "noise.p12", true); });
  CHECK(code == ExitCode::BadInput);
  CHECK_THAT(msg, Contains("'noise.p12'"));

  std::string pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  std::vector<std::uint8_t> pem_bytes(pem.begin(), pem.end());
  auto [pcode, pmsg] = error_of([&] { pkcs12::parse(pem_bytes, pw, "cert.pem", true); });
  CHECK(pcode == ExitCode::BadInput);
  CHECK_THAT(pmsg, Contains("'cert.pem'") && Contains("PEM"));
}

TEST_CASE("a file changed after it was made is damaged, not a wrong password", "[unit][pkcs12]") {
  auto pki = test::make_pki(KeyAlg::EcP256);
  Secret pw(kPassword);
  auto der = pkcs12::build(contents_of(pki), pw, Compat::Modern);
  // Flip a bit of the MAC value itself.
  const unsigned char* p = der.data();
  ossl::Pkcs12Ptr p12(d2i_PKCS12(nullptr, &p, static_cast<long>(der.size())));
  REQUIRE(p12);
  const ASN1_OCTET_STRING* mac = nullptr;
  PKCS12_get0_mac(&mac, nullptr, nullptr, nullptr, p12.get());
  REQUIRE(mac);
  auto at = std::search(der.begin(), der.end(), ASN1_STRING_get0_data(mac),
                        ASN1_STRING_get0_data(mac) + ASN1_STRING_length(mac));
  REQUIRE(at != der.end());
  *at ^= 0x01;
  auto [code, msg] = error_of([&] { pkcs12::parse(der, pw, "changed.p12", true); });
  CHECK(code == ExitCode::BadInput);
  CHECK_THAT(msg, Contains("'changed.p12' is damaged"));
}

TEST_CASE("certificate-only files: no key, leaf and chain kept, refused when a key is required", "[unit][pkcs12]") {
  const Compat compat = GENERATE(Compat::Modern, Compat::Legacy);
  INFO(pkcs12::compat_name(compat));
  auto pki = test::make_pki(KeyAlg::Rsa2048);
  auto in = contents_of(pki, false);
  Secret pw(kPassword);
  auto der = pkcs12::build(in, pw, compat);

  auto got = pkcs12::parse(der, pw, "certs.p12", false);
  check_parsed(got, pki, false);
  CHECK(got.friendly_name == kFriendlyName);
  CHECK(got.local_key_id == kKeyId);
  CHECK_NOTHROW(pkcs12::verify_roundtrip(der, pw, in));

  auto l = inspect(der, kPassword);
  CHECK(l.safes.size() == 1);
  CHECK(l.key_bags == 0);
  CHECK(l.certs.size() == 3);

  auto [code, msg] = error_of([&] { pkcs12::parse(der, pw, "certs.p12", true); });
  CHECK(code == ExitCode::BadInput);
  CHECK_THAT(msg, Contains("'certs.p12'") && Contains("no private key"));
}

TEST_CASE("parse orders the chain from the leaf whatever order the file has", "[unit][pkcs12]") {
  auto pki = test::make_pki(KeyAlg::EcP256);
  // An unrelated CA in the file comes after the chain.
  auto other_key = test::make_key(KeyAlg::EcP256);
  test::CertOptions ca;
  ca.ca = true;
  auto other = test::issue_cert("/CN=Unrelated CA", other_key.get(), nullptr, other_key.get(), ca);
  pkcs12::Contents in;
  in.key = share(pki.leaf_key.get());
  in.leaf = ossl::dup(pki.leaf.get());
  in.chain.push_back(ossl::dup(pki.root.get()));
  in.chain.push_back(ossl::dup(other.get()));
  in.chain.push_back(ossl::dup(pki.intermediate.get()));
  in.friendly_name = "k";
  Secret pw(kPassword);
  auto got = pkcs12::parse(pkcs12::build(in, pw, Compat::Legacy), pw, "x.p12", true);
  REQUIRE(got.chain.size() == 3);
  CHECK(same_cert(got.chain[0].get(), pki.intermediate.get()));
  CHECK(same_cert(got.chain[1].get(), pki.root.get()));
  CHECK(same_cert(got.chain[2].get(), other.get()));

  SECTION("CA certificates only: no leaf, chain from the lowest CA") {
    pkcs12::Contents cas;
    cas.chain.push_back(ossl::dup(pki.root.get()));
    cas.chain.push_back(ossl::dup(pki.intermediate.get()));
    auto der = pkcs12::build(cas, pw, Compat::Modern);
    auto g = pkcs12::parse(der, pw, "cas.p12", false);
    CHECK_FALSE(g.key);
    CHECK_FALSE(g.leaf);
    REQUIRE(g.chain.size() == 2);
    CHECK(same_cert(g.chain[0].get(), pki.intermediate.get()));
    CHECK(same_cert(g.chain[1].get(), pki.root.get()));
  }
}

TEST_CASE("an empty local_key_id becomes the SHA-1 of the leaf, on key and leaf", "[unit][pkcs12]") {
  auto pki = test::make_pki(KeyAlg::EcP256);
  auto in = contents_of(pki);
  in.local_key_id.clear();
  Secret pw(kPassword);
  auto der = pkcs12::build(in, pw, Compat::Modern);
  auto got = pkcs12::parse(der, pw, "x.p12", true);
  CHECK(got.local_key_id == sha1_of(pki.leaf.get()));
  auto l = inspect(der, kPassword);
  CHECK(l.key_id == test::hex(sha1_of(pki.leaf.get())));
  CHECK(l.certs.at(0).id == l.key_id);
}

TEST_CASE("an empty password works both ways", "[unit][pkcs12]") {
  auto pki = test::make_pki(KeyAlg::EcP256);
  auto in = contents_of(pki);
  auto der = pkcs12::build(in, Secret(""), Compat::Legacy);
  check_parsed(pkcs12::parse(der, Secret(""), "x.p12", true), pki);
  auto [code, msg] = error_of([&] { pkcs12::parse(der, Secret("x"), "x.p12", true); });
  CHECK(code == ExitCode::BadInput);
}

TEST_CASE("build refuses contents that make no backup", "[unit][pkcs12]") {
  auto pki = test::make_pki(KeyAlg::EcP256);
  Secret pw(kPassword);
  SECTION("a key without its certificate") {
    auto in = contents_of(pki);
    in.leaf.reset();
    CHECK(error_of([&] { pkcs12::build(in, pw, Compat::Modern); }).first == ExitCode::Internal);
  }
  SECTION("a certificate of another key") {
    auto in = contents_of(pki);
    in.leaf = ossl::dup(pki.intermediate.get());
    CHECK(error_of([&] { pkcs12::build(in, pw, Compat::Modern); }).first == ExitCode::Internal);
  }
  SECTION("nothing at all") {
    CHECK(error_of([&] { pkcs12::build(pkcs12::Contents{}, pw, Compat::Modern); }).first == ExitCode::Internal);
  }
}

TEST_CASE("parse refuses several keys and a key without its certificate", "[unit][pkcs12]") {
  auto pki = test::make_pki(KeyAlg::EcP256);
  auto other = test::make_key(KeyAlg::EcP256);
  Secret pw(kPassword);
  {
    auto der = raw_p12({pki.leaf_key.get(), other.get()}, {pki.leaf.get()}, kPassword);
    auto [code, msg] = error_of([&] { pkcs12::parse(der, pw, "two.p12", true); });
    CHECK(code == ExitCode::BadInput);
    CHECK_THAT(msg, Contains("'two.p12' holds 2 private keys"));
  }
  {
    auto der = raw_p12({other.get()}, {pki.leaf.get(), pki.intermediate.get()}, kPassword);
    auto [code, msg] = error_of([&] { pkcs12::parse(der, pw, "lonely.p12", false); });
    CHECK(code == ExitCode::BadInput);
    CHECK_THAT(msg, Contains("'lonely.p12'") && Contains("no certificate for it"));
  }
  {
    // No localKeyID or friendlyName anywhere: the leaf is still found by its key.
    auto der = raw_p12({pki.leaf_key.get()}, {pki.root.get(), pki.leaf.get(), pki.intermediate.get()}, kPassword);
    auto got = pkcs12::parse(der, pw, "plain.p12", true);
    check_parsed(got, pki);
    CHECK(got.friendly_name.empty());
    CHECK(got.local_key_id.empty());
  }
}

TEST_CASE("verify_roundtrip reports a file that does not hold what was meant as Internal", "[unit][pkcs12]") {
  auto pki = test::make_pki(KeyAlg::EcP256);
  auto other = test::make_pki(KeyAlg::EcP256, "/CN=Bob");
  Secret pw(kPassword);
  auto der = pkcs12::build(contents_of(pki), pw, Compat::Modern);
  CHECK_NOTHROW(pkcs12::verify_roundtrip(der, pw, contents_of(pki)));
  CHECK(error_of([&] { pkcs12::verify_roundtrip(der, pw, contents_of(other)); }).first == ExitCode::Internal);
  auto renamed = contents_of(pki);
  renamed.friendly_name = "other";
  CHECK(error_of([&] { pkcs12::verify_roundtrip(der, pw, renamed); }).first == ExitCode::Internal);
  CHECK(error_of([&] { pkcs12::verify_roundtrip(der, Secret("nope"), contents_of(pki)); }).first == ExitCode::Internal);
  std::vector<std::uint8_t> cut(der.begin(), der.begin() + 100);
  CHECK(error_of([&] { pkcs12::verify_roundtrip(cut, pw, contents_of(pki)); }).first == ExitCode::Internal);
}

// ===========================================================================
// interop: the real tools

namespace {

std::string require_tool(const std::string& name, const std::string& package) {
  std::string p = test::find_program(name);
  if (p.empty()) FAIL(name << " is not installed (Debian package " << package << "); this interop test needs it.");
  return p;
}

std::string describe(const std::vector<std::string>& argv, const test::ProcessResult& r) {
  std::string cmd;
  for (const auto& a : argv)
    cmd += (cmd.empty() ? "" : " ") + a;
  return cmd + "\n-> exit " + std::to_string(r.status) + "\n" + r.all();
}

// Runs ARGV; REQUIREs exit status 0 and returns stdout + stderr.
std::string run_ok(const std::vector<std::string>& argv) {
  auto r = test::run_program(argv);
  INFO(describe(argv, r));
  REQUIRE(r.status == 0);
  return r.all();
}

// A fresh NSS database in DIR/NAME with an empty password; returns "sql:PATH".
std::string nss_db(const test::TempDir& dir, const std::string& name) {
  require_tool("certutil", "libnss3-tools");
  std::string path = dir.file(name);
  REQUIRE(::mkdir(path.c_str(), 0700) == 0);
  run_ok({"certutil", "-N", "-d", "sql:" + path, "--empty-password"});
  return "sql:" + path;
}

struct Written {
  std::string p12, pw, empty;
};

Written write_backup(const test::TempDir& dir, std::span<const std::uint8_t> der, const std::string& pw,
                     const std::string& name = "backup.p12") {
  return {dir.write(name, der), dir.write(name + ".pw", pw), dir.write("empty.pw", std::string_view())};
}

const std::vector<std::pair<Compat, KeyAlg>> kAllCombos{{Compat::Modern, KeyAlg::Rsa2048},
                                                        {Compat::Modern, KeyAlg::EcP256},
                                                        {Compat::Legacy, KeyAlg::Rsa2048},
                                                        {Compat::Legacy, KeyAlg::EcP256}};

std::string spaced_hex(const std::vector<std::uint8_t>& id) {
  std::string h = test::hex(id), out;
  for (std::size_t i = 0; i < h.size(); i += 2)
    out += std::string(1, static_cast<char>(std::toupper(h[i]))) + static_cast<char>(std::toupper(h[i + 1])) + " ";
  return out;
}

} // namespace

TEST_CASE("openssl pkcs12 reads both profiles, and 3DES needs no -legacy", "[interop][pkcs12]") {
  require_tool("openssl", "openssl");
  for (auto [compat, alg] : kAllCombos) {
    INFO(pkcs12::compat_name(compat) << " profile, " << test::key_alg_name(alg) << " leaf");
    auto pki = test::make_pki(alg);
    test::TempDir dir("tokenprov-p12");
    auto f = write_backup(dir, pkcs12::build(contents_of(pki), Secret(kPassword), compat), kPassword);

    std::string info = run_ok({"openssl", "pkcs12", "-info", "-noout", "-in", f.p12, "-passin", "file:" + f.pw});
    INFO(info);
    if (compat == Compat::Modern) {
      CHECK_THAT(info, Contains("MAC: sha256, Iteration 200000"));
      CHECK(count(info, "PBES2, PBKDF2, AES-256-CBC, Iteration 200000, PRF hmacWithSHA256") == 2);
    } else {
      CHECK_THAT(info, Contains("MAC: sha1, Iteration 2048"));
      CHECK(count(info, "pbeWithSHA1And3-KeyTripleDES-CBC, Iteration 2048") == 2);
    }
    CHECK(count(info, "Certificate bag") == 3);
    CHECK(count(info, "Shrouded Keybag") == 1);

    // The bags' attributes as OpenSSL prints them.
    std::string dump = run_ok({"openssl", "pkcs12", "-in", f.p12, "-passin", "file:" + f.pw, "-nodes"});
    CHECK(count(dump, std::string("friendlyName: ") + kFriendlyName) == 2);
    CHECK(count(dump, "localKeyID: " + spaced_hex(kKeyId)) == 2);
    CHECK(count(dump, "Bag Attributes: <No Attributes>") == 2); // the CA certificates
    CHECK(count(dump, "-----BEGIN PRIVATE KEY-----") == 1);
  }
}

TEST_CASE("NSS pk12util imports both profiles into a fresh database", "[interop][pkcs12]") {
  require_tool("pk12util", "libnss3-tools");
  for (auto [compat, alg] : kAllCombos) {
    INFO(pkcs12::compat_name(compat) << " profile, " << test::key_alg_name(alg) << " leaf");
    auto pki = test::make_pki(alg);
    test::TempDir dir("tokenprov-p12");
    auto f = write_backup(dir, pkcs12::build(contents_of(pki), Secret(kPassword), compat), kPassword);
    std::string db = nss_db(dir, "nssdb");
    run_ok({"pk12util", "-i", f.p12, "-d", db, "-w", f.pw, "-K", ""});

    std::string certs = run_ok({"certutil", "-L", "-d", db});
    INFO(certs);
    CHECK_THAT(certs, Contains(kFriendlyName));
    CHECK_THAT(certs, Contains("tokenprov Test Intermediate CA - tokenprov tests"));
    CHECK_THAT(certs, Contains("tokenprov Test Root CA - tokenprov tests"));
    CHECK(count(certs, "u,u,u") == 1); // the leaf, with its key
    CHECK(count(certs, ",,") == 2);    // the CA certificates, no trust given

    std::string keys = run_ok({"certutil", "-K", "-d", db, "-f", f.empty});
    INFO(keys);
    CHECK(count(keys, "> ") == 1);
    CHECK_THAT(keys, Contains(kFriendlyName));
    CHECK_THAT(keys, Contains(alg == KeyAlg::Rsa2048 ? "rsa" : "ec"));
  }
}

TEST_CASE("keytool lists both profiles and converts them to JKS and PKCS12", "[interop][pkcs12]") {
  require_tool("keytool", "default-jre-headless");
  for (auto [compat, alg] : kAllCombos) {
    INFO(pkcs12::compat_name(compat) << " profile, " << test::key_alg_name(alg) << " leaf");
    auto pki = test::make_pki(alg);
    test::TempDir dir("tokenprov-p12");
    auto f = write_backup(dir, pkcs12::build(contents_of(pki), Secret(kPassword), compat), kPassword);

    std::string list =
        run_ok({"keytool", "-list", "-v", "-storetype", "PKCS12", "-keystore", f.p12, "-storepass:file", f.pw});
    INFO(list);
    CHECK_THAT(list, Contains("Your keystore contains 1 entry"));
    CHECK_THAT(list, Contains("Entry type: PrivateKeyEntry"));
    CHECK_THAT(list, Contains("Certificate chain length: 3"));
    CHECK_THAT(list, Contains("Alias name: " + lower(kFriendlyName))); // keytool lower-cases aliases

    // Conversions (a JVM start costs ~2 s here, so each combination does one):
    // RSA into JKS, EC into a PKCS12 that Java writes and tokenprov reads.
    const bool to_jks = alg == KeyAlg::Rsa2048;
    std::string dest = dir.file(to_jks ? "dest.jks" : "java.p12");
    std::string conv = run_ok({"keytool", "-importkeystore", "-noprompt", "-srckeystore", f.p12, "-srcstoretype",
                               "PKCS12", "-srcstorepass:file", f.pw, "-destkeystore", dest, "-deststoretype",
                               to_jks ? "JKS" : "PKCS12", "-deststorepass:file", f.pw});
    CHECK_THAT(conv, Contains("1 entries successfully imported, 0 entries failed"));
    if (to_jks) continue;
    auto got = pkcs12::parse(test::read_bytes(dest), Secret(kPassword), dest, true);
    check_parsed(got, pki);
    CHECK(got.friendly_name == lower(kFriendlyName));
    CHECK_FALSE(got.local_key_id.empty());
  }
}

TEST_CASE("parse reads files made by openssl pkcs12 -export, default and -legacy (RC2)", "[interop][pkcs12]") {
  require_tool("openssl", "openssl");
  for (KeyAlg alg : {KeyAlg::Rsa2048, KeyAlg::EcP256}) {
    for (bool legacy : {false, true}) {
      INFO(test::key_alg_name(alg) << (legacy ? ", -legacy" : ", default options"));
      auto pki = test::make_pki(alg);
      test::TempDir dir("tokenprov-p12");
      auto pem = pki.write_pem(dir);
      std::string pw = dir.write("pw", std::string_view(kPassword));
      std::string out = dir.file("openssl.p12");
      std::vector<std::string> argv{"openssl",      "pkcs12",     "-export",    "-in",     pem.leaf,
                                    "-inkey",       pem.leaf_key, "-certfile",  pem.chain, "-name",
                                    "From OpenSSL", "-passout",   "file:" + pw, "-out",    out};
      if (legacy) argv.push_back("-legacy");
      run_ok(argv);
      if (legacy) {
        std::string info =
            run_ok({"openssl", "pkcs12", "-info", "-noout", "-legacy", "-in", out, "-passin", "file:" + pw});
        REQUIRE_THAT(info, Contains("pbeWithSHA1And40BitRC2-CBC")); // the case the legacy provider is for
      }
      auto got = pkcs12::parse(test::read_bytes(out), Secret(kPassword), out, true);
      check_parsed(got, pki);
      CHECK(got.friendly_name == "From OpenSSL");
      CHECK(got.local_key_id == sha1_of(pki.leaf.get()));
      auto [code, msg] = error_of([&] { pkcs12::parse(test::read_bytes(out), Secret("wrong"), out, true); });
      CHECK(code == ExitCode::BadInput);
      CHECK_THAT(msg, Contains("is wrong"));
    }
  }
}

TEST_CASE("parse reads a file exported by NSS pk12util -o", "[interop][pkcs12]") {
  require_tool("pk12util", "libnss3-tools");
  for (KeyAlg alg : {KeyAlg::Rsa2048, KeyAlg::EcP256}) {
    INFO(test::key_alg_name(alg));
    auto pki = test::make_pki(alg);
    test::TempDir dir("tokenprov-p12");
    auto f = write_backup(dir, pkcs12::build(contents_of(pki), Secret(kPassword), Compat::Modern), kPassword);
    std::string db = nss_db(dir, "nssdb");
    run_ok({"pk12util", "-i", f.p12, "-d", db, "-w", f.pw, "-K", ""});
    std::string out = dir.file("nss.p12");
    run_ok({"pk12util", "-o", out, "-n", kFriendlyName, "-d", db, "-w", f.pw, "-k", f.empty});

    auto got = pkcs12::parse(test::read_bytes(out), Secret(kPassword), out, true);
    check_parsed(got, pki);
    CHECK(got.friendly_name == kFriendlyName);
    CHECK_FALSE(got.local_key_id.empty());
  }
}

TEST_CASE("non-ASCII passwords: openssl and NSS agree with tokenprov", "[interop][pkcs12]") {
  require_tool("openssl", "openssl");
  require_tool("pk12util", "libnss3-tools");
  // (Java keytool is left out: it refuses non-ASCII PKCS#12 passwords.)
  const std::string pw = "p\xc3\xa4sswo\xcc\x88rd \xce\xa9 \xe2\x9c\x93"; // pässwörd Ω ✓ (UTF-8, one combining mark)
  for (Compat compat : {Compat::Modern, Compat::Legacy}) {
    INFO(pkcs12::compat_name(compat));
    auto pki = test::make_pki(KeyAlg::EcP256);
    test::TempDir dir("tokenprov-p12");
    auto f = write_backup(dir, pkcs12::build(contents_of(pki), Secret(pw), compat), pw);
    run_ok({"openssl", "pkcs12", "-info", "-noout", "-in", f.p12, "-passin", "file:" + f.pw});
    std::string db = nss_db(dir, "nssdb");
    run_ok({"pk12util", "-i", f.p12, "-d", db, "-w", f.pw, "-K", ""});
    // And back: NSS's export with the same password reads with tokenprov.
    std::string out = dir.file("nss.p12");
    run_ok({"pk12util", "-o", out, "-n", kFriendlyName, "-d", db, "-w", f.pw, "-k", f.empty});
    check_parsed(pkcs12::parse(test::read_bytes(out), Secret(pw), out, true), pki);
  }
}
