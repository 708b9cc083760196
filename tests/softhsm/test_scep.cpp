// The SCEP client against a real CA (scepserver on 127.0.0.1).
#define OPENSSL_SUPPRESS_DEPRECATED // RSA_METHOD: the token-backed key stand-in
#include "support/scep_server.hpp"
#include "tokenprov/error.hpp"
#include "tokenprov/ossl.hpp"
#include "tokenprov/scep.hpp"

#include <catch2/catch.hpp>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <atomic>
#include <fstream>
#include <string>
#include <vector>

using tokenprov::Error;
using tokenprov::ExitCode;
using tokenprov::test::ScepServer;
namespace scep = tokenprov::scep;
namespace ossl = tokenprov::ossl;

namespace {

ossl::EvpPkeyPtr rsa_key() {
  ossl::EvpPkeyPtr k(EVP_RSA_gen(2048));
  REQUIRE(k);
  return k;
}

ossl::X509ReqPtr make_csr(EVP_PKEY* key, const std::string& cn, const std::string& challenge) {
  ossl::X509ReqPtr req(X509_REQ_new());
  REQUIRE(req);
  X509_REQ_set_version(req.get(), 0);
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>("tokenprov-test"), -1,
                             -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                             0);
  REQUIRE(X509_REQ_set_pubkey(req.get(), key) == 1);
  if (!challenge.empty())
    REQUIRE(X509_REQ_add1_attr_by_NID(req.get(), NID_pkcs9_challengePassword, MBSTRING_UTF8,
                                      reinterpret_cast<const unsigned char*>(challenge.c_str()),
                                      static_cast<int>(challenge.size())) == 1);
  REQUIRE(X509_REQ_sign(req.get(), key, EVP_sha256()) > 0);
  return req;
}

scep::Options options_for(const ScepServer& srv, std::vector<std::string>* log = nullptr) {
  scep::Options o;
  o.url = srv.url();
  o.ca_fingerprint = srv.ca_fingerprint();
  if (log) o.progress = [log](const std::string& m) { log->push_back(m); };
  return o;
}

ossl::X509Ptr load_pem_cert(const std::string& path) {
  auto der = ossl::read_file(path);
  ossl::BioPtr b(BIO_new_mem_buf(der.data(), static_cast<int>(der.size())));
  ossl::X509Ptr c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  REQUIRE(c);
  return c;
}

// X509_verify_cert of LEAF with the depot's CA as the only trust anchor.
bool verifies_under(X509* leaf, X509* ca) {
  ossl::X509StorePtr store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), ca);
  ossl::X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf, nullptr);
  bool ok = X509_verify_cert(ctx.get()) == 1;
  if (!ok) UNSCOPED_INFO("verify: " << X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get())));
  return ok;
}

// Runs F, which must throw tokenprov::Error; returns it.
template <class F> Error expect_error(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  FAIL("no tokenprov::Error was thrown");
  throw std::logic_error("unreachable");
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

// ---- a key whose private half lives outside OpenSSL ----------------------------
// Mimics the token-backed key: a legacy RSA key holding only n and e, with an
// RSA_METHOD whose priv_enc/priv_dec forward to a separate software key.
struct ForeignKey {
  static inline std::atomic<int> signs{0};
  static inline std::atomic<int> decrypts{0};
  static int index() {
    static int idx = RSA_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return idx;
  }
  static RSA* backend(RSA* rsa) { return static_cast<RSA*>(RSA_get_ex_data(rsa, index())); }
  static int priv_enc(int flen, const unsigned char* from, unsigned char* to, RSA* rsa, int padding) {
    ++signs;
    return RSA_private_encrypt(flen, from, to, backend(rsa), padding);
  }
  static int priv_dec(int flen, const unsigned char* from, unsigned char* to, RSA* rsa, int padding) {
    ++decrypts;
    return RSA_private_decrypt(flen, from, to, backend(rsa), padding);
  }

  ossl::EvpPkeyPtr soft = rsa_key(); // the "token"
  std::unique_ptr<RSA_METHOD, ossl::Deleter<RSA_meth_free>> meth{RSA_meth_dup(RSA_get_default_method())};
  ossl::EvpPkeyPtr pkey; // what enroll() gets

  ForeignKey() {
    REQUIRE(meth);
    RSA_meth_set1_name(meth.get(), "tokenprov-test-foreign");
    RSA_meth_set_priv_enc(meth.get(), priv_enc);
    RSA_meth_set_priv_dec(meth.get(), priv_dec);
    const RSA* real = EVP_PKEY_get0_RSA(soft.get());
    const BIGNUM *n = nullptr, *e = nullptr;
    RSA_get0_key(real, &n, &e, nullptr);
    RSA* pub = RSA_new();
    REQUIRE(pub);
    REQUIRE(RSA_set0_key(pub, BN_dup(n), BN_dup(e), nullptr) == 1);
    REQUIRE(RSA_set_method(pub, meth.get()) == 1);
    RSA_set_ex_data(pub, index(), const_cast<RSA*>(real));
    pkey.reset(EVP_PKEY_new());
    REQUIRE(EVP_PKEY_assign_RSA(pkey.get(), pub) == 1);
  }
  ~ForeignKey() { pkey.reset(); } // before meth
};

} // namespace

TEST_CASE("SCEP fingerprint normalization", "[scep]") {
  std::string fp(64, 'a');
  CHECK(scep::normalize_fingerprint("") == "");
  CHECK(scep::normalize_fingerprint(std::string(64, 'A')) == fp);
  std::string colons;
  for (int i = 0; i < 32; ++i) colons += (i ? ":" : "") + std::string("AA");
  CHECK(scep::normalize_fingerprint(colons) == fp);
  CHECK(expect_error([] { scep::normalize_fingerprint("abcd"); }).code() == ExitCode::Usage);
  CHECK(expect_error([] { scep::normalize_fingerprint(std::string(63, 'a') + "g"); }).code() == ExitCode::Usage);
  CHECK(scep::has_cap({"Renewal", "postpkioperation"}, "POSTPKIOperation"));
  CHECK_FALSE(scep::has_cap({"Renewal"}, "AES"));
}

TEST_CASE("SCEP enrollment against scepserver", "[scep]") {
  ScepServer srv;
  auto ca_cert = load_pem_cert(srv.ca_cert_path());
  auto key = rsa_key();

  SECTION("GetCACaps and GetCACert with a pinned fingerprint") {
    auto o = options_for(srv);
    // Pins are accepted in any case and with colons.
    std::string pin;
    for (std::size_t i = 0; i < srv.ca_fingerprint().size(); i += 2)
      pin += (i ? ":" : "") + srv.ca_fingerprint().substr(i, 2);
    for (auto& c : pin) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    o.ca_fingerprint = pin;
    auto info = scep::get_ca(o);
    REQUIRE(info.certs.size() == 1);
    CHECK(X509_cmp(info.ca.get(), ca_cert.get()) == 0);
    CHECK(X509_cmp(info.ra_encrypt.get(), ca_cert.get()) == 0);
    CHECK(scep::has_cap(info.caps, "POSTPKIOperation"));
    CHECK(scep::has_cap(info.caps, "AES"));
  }

  SECTION("success: the issued certificate carries the key and verifies under the CA") {
    std::vector<std::string> steps;
    auto csr = make_csr(key.get(), "alice", srv.challenge());
    auto issued = scep::enroll(options_for(srv, &steps), csr.get(), key.get());
    REQUIRE(issued.cert);
    CHECK(ossl::spki_der(issued.cert.get()) == ossl::spki_der(key.get()));
    CHECK(verifies_under(issued.cert.get(), ca_cert.get()));
    CHECK(contains(ossl::name_oneline(X509_get_subject_name(issued.cert.get())), "CN=alice"));
    REQUIRE(issued.chain.size() == 1);
    CHECK(X509_cmp(issued.chain[0].get(), ca_cert.get()) == 0);
    CHECK(srv.issued_count() == 1);
    CHECK_FALSE(steps.empty());
    for (auto& s : steps) CHECK_FALSE(contains(s, srv.challenge())); // never echoed

    // allowrenew 0: the same subject may enroll again (a re-run after a failure).
    auto key2 = rsa_key();
    auto csr2 = make_csr(key2.get(), "alice", srv.challenge());
    auto again = scep::enroll(options_for(srv), csr2.get(), key2.get());
    CHECK(ossl::spki_der(again.cert.get()) == ossl::spki_der(key2.get()));
  }

  SECTION("a wrong challenge is a CA failure with a readable reason") {
    auto csr = make_csr(key.get(), "mallory", "not-the-challenge");
    auto e = expect_error([&] { scep::enroll(options_for(srv), csr.get(), key.get()); });
    CHECK(e.code() == ExitCode::Ca);
    INFO(e.what());
    CHECK(contains(e.what(), "rejected"));
    CHECK(contains(e.what(), "badRequest"));
    CHECK(contains(e.what(), srv.url()));
    CHECK_FALSE(contains(e.what(), "not-the-challenge"));
    CHECK_FALSE(e.hint().empty());
    CHECK(srv.issued_count() == 0);
  }

  SECTION("a CSR without a challenge is rejected too") {
    auto csr = make_csr(key.get(), "nochallenge", "");
    auto e = expect_error([&] { scep::enroll(options_for(srv), csr.get(), key.get()); });
    CHECK(e.code() == ExitCode::Ca);
    CHECK(contains(e.what(), "badRequest"));
  }

  SECTION("a wrong pinned fingerprint stops before any PKCSReq") {
    auto o = options_for(srv);
    o.ca_fingerprint = std::string(64, '0');
    auto csr = make_csr(key.get(), "alice", srv.challenge());
    auto e = expect_error([&] { scep::enroll(o, csr.get(), key.get()); });
    CHECK(e.code() == ExitCode::Ca);
    INFO(e.what());
    CHECK(contains(e.what(), "does not match"));
    CHECK(contains(e.what(), srv.ca_fingerprint()));
    CHECK(contains(e.hint(), "--ca-fingerprint"));
    CHECK(srv.issued_count() == 0);
    CHECK(contains(srv.log(), "GetCACert"));
    CHECK_FALSE(contains(srv.log(), "PKIOperation"));
  }

  SECTION("no fingerprint and no terminal: refused, printing the fingerprint") {
    auto o = options_for(srv);
    o.ca_fingerprint.clear();
    o.interactive = false;
    bool asked = false;
    o.confirm_ca = [&](const std::string&, const std::string&) { return asked = true; };
    auto csr = make_csr(key.get(), "alice", srv.challenge());
    auto e = expect_error([&] { scep::enroll(o, csr.get(), key.get()); });
    CHECK(e.code() == ExitCode::Ca);
    INFO(e.what());
    CHECK(contains(e.what(), "fingerprint"));
    CHECK(contains(e.what(), srv.ca_fingerprint()));
    CHECK(contains(e.hint(), "--ca-fingerprint " + srv.ca_fingerprint()));
    CHECK_FALSE(asked);
    CHECK_FALSE(contains(srv.log(), "PKIOperation"));
  }

  SECTION("no fingerprint, interactive: the callback decides") {
    auto o = options_for(srv);
    o.ca_fingerprint.clear();
    o.interactive = true;
    std::string seen_fp, seen_subject;
    bool answer = false;
    o.confirm_ca = [&](const std::string& fp, const std::string& subject) {
      seen_fp = fp;
      seen_subject = subject;
      return answer;
    };
    auto csr = make_csr(key.get(), "alice", srv.challenge());
    auto e = expect_error([&] { scep::enroll(o, csr.get(), key.get()); });
    CHECK(e.code() == ExitCode::Ca);
    CHECK(seen_fp == srv.ca_fingerprint());
    CHECK(contains(seen_subject, "tokenprov-test"));
    CHECK(srv.issued_count() == 0);

    answer = true;
    auto issued = scep::enroll(o, csr.get(), key.get());
    CHECK(ossl::spki_der(issued.cert.get()) == ossl::spki_der(key.get()));
  }

  SECTION("a key behind a custom RSA_METHOD (no private parts in OpenSSL)") {
    ForeignKey fk;
    {
      // Its RSA structure really holds no private exponent.
      const BIGNUM* d = nullptr;
      RSA_get0_key(EVP_PKEY_get0_RSA(fk.pkey.get()), nullptr, nullptr, &d);
      REQUIRE(d == nullptr);
    }
    auto csr = make_csr(fk.pkey.get(), "token-user", srv.challenge());
    int signs_before = ForeignKey::signs, decrypts_before = ForeignKey::decrypts;
    auto issued = scep::enroll(options_for(srv), csr.get(), fk.pkey.get());
    CHECK(ossl::spki_der(issued.cert.get()) == ossl::spki_der(fk.soft.get()));
    CHECK(verifies_under(issued.cert.get(), ca_cert.get()));
    CHECK(ForeignKey::signs - signs_before >= 2);      // signer certificate + PKCSReq
    CHECK(ForeignKey::decrypts - decrypts_before >= 1); // the CertRep envelope
  }

  SECTION("a CSR whose key is not the given key is refused") {
    auto other = rsa_key();
    auto csr = make_csr(other.get(), "alice", srv.challenge());
    auto e = expect_error([&] { scep::enroll(options_for(srv), csr.get(), key.get()); });
    CHECK(e.code() == ExitCode::Internal);
    CHECK_FALSE(contains(srv.log(), "PKIOperation"));
  }
}

TEST_CASE("SCEP errors that name the URL", "[scep]") {
  auto key = rsa_key();
  auto csr = make_csr(key.get(), "alice", "whatever");

  SECTION("unreachable: a closed port on 127.0.0.1") {
    scep::Options o;
    o.url = "http://127.0.0.1:" + std::to_string(ScepServer::free_port()) + "/scep";
    o.ca_fingerprint = std::string(64, 'a');
    auto e = expect_error([&] { scep::enroll(o, csr.get(), key.get()); });
    CHECK(e.code() == ExitCode::Ca);
    INFO(e.what());
    CHECK(contains(e.what(), o.url));
    CHECK(contains(e.what(), "Cannot reach"));
    CHECK_FALSE(e.hint().empty());
  }

  SECTION("not an http URL") {
    scep::Options o;
    o.url = "ftp://127.0.0.1/scep";
    auto e = expect_error([&] { scep::get_ca(o); });
    CHECK(e.code() == ExitCode::Usage);
  }

  SECTION("a malformed pin is a usage error") {
    scep::Options o;
    o.url = "http://127.0.0.1:1/scep";
    o.ca_fingerprint = "12:34";
    auto e = expect_error([&] { scep::get_ca(o); });
    CHECK(e.code() == ExitCode::Usage);
  }

  SECTION("HTTP 404 from a wrong path") {
    ScepServer srv;
    scep::Options o = options_for(srv);
    o.url = "http://127.0.0.1:" + std::to_string(srv.port()) + "/wrong";
    auto e = expect_error([&] { scep::get_ca(o); });
    CHECK(e.code() == ExitCode::Ca);
    INFO(e.what());
    CHECK(contains(e.what(), o.url));
    CHECK(contains(e.what(), "404"));
  }
}

TEST_CASE("SCEP enrollment that needs approval (csrverifierexec)", "[scep]") {
  // The verifier accepts only once the file "approved" exists beside it.
  ScepServer::Config cfg;
  cfg.verifier_script = "#!/bin/sh\ncat >/dev/null\nexec test -e \"$(dirname \"$0\")/approved\"\n";
  ScepServer srv(cfg);
  auto key = rsa_key();
  auto csr = make_csr(key.get(), "bob", srv.challenge());

  auto e = expect_error([&] { scep::enroll(options_for(srv), csr.get(), key.get()); });
  CHECK(e.code() == ExitCode::Ca);
  CHECK(static_cast<int>(e.code()) == 7);
  INFO(e.what());
  CHECK(contains(e.what(), "rejected"));
  CHECK(srv.issued_count() == 0);

  std::ofstream(srv.dir() + "/approved") << "yes\n";
  auto issued = scep::enroll(options_for(srv), csr.get(), key.get());
  REQUIRE(issued.cert);
  CHECK(ossl::spki_der(issued.cert.get()) == ossl::spki_der(key.get()));
  CHECK(srv.issued_count() == 1);
}
