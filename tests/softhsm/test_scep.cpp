// SPDX-License-Identifier: Apache-2.0
// The SCEP client against a real CA (scepserver on 127.0.0.1).
#define OPENSSL_SUPPRESS_DEPRECATED // RSA_METHOD: the token-backed key stand-in
#include "support/scep_server.hpp"
#include "tokenprov/error.hpp"
#include "tokenprov/fileio.hpp"
#include "tokenprov/ossl.hpp"
#include "tokenprov/scep.hpp"

#include <catch2/catch.hpp>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
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
  auto der = tokenprov::read_input_file(path, tokenprov::input::certificate);
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
  // The signatures are what is checked here. scepserver stamps a certificate it
  // has just issued with the second it issued it in, and once, on a loaded
  // machine, verification saw it as "not yet valid": check a minute later.
  X509_STORE_CTX_set_time(ctx.get(), 0, std::time(nullptr) + 60);
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


// ---- a scripted SCEP server, for what scepserver never does -----------------------
// (PENDING, a CertRep signed by a stranger, a wrong recipientNonce). It speaks
// just enough HTTP/1.1 on 127.0.0.1 and answers with CertReps it builds itself.
int scep_nid(const char* oid) {
  int nid = OBJ_txt2nid(oid);
  if (nid == NID_undef) nid = OBJ_create(oid, nullptr, nullptr);
  return nid;
}

ossl::X509Ptr self_signed_ca(EVP_PKEY* key, const char* cn) {
  ossl::X509Ptr c(X509_new());
  X509_set_version(c.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(c.get()), 1);
  X509_NAME* n = X509_get_subject_name(c.get());
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509_set_issuer_name(c.get(), n);
  X509_gmtime_adj(X509_getm_notBefore(c.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(c.get()), 86400);
  X509_set_pubkey(c.get(), key);
  X509_EXTENSION* bc = X509V3_EXT_conf_nid(nullptr, nullptr, NID_basic_constraints, "critical,CA:TRUE");
  X509_add_ext(c.get(), bc, -1);
  X509_EXTENSION_free(bc);
  X509_sign(c.get(), key, EVP_sha256());
  return c;
}

std::string attr(PKCS7_SIGNER_INFO* si, int nid) {
  ASN1_TYPE* t = PKCS7_get_signed_attribute(si, nid);
  if (!t || t->type == V_ASN1_BOOLEAN || t->type == V_ASN1_NULL || t->type == V_ASN1_OBJECT) return {};
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(t->value.asn1_string)),
                     static_cast<std::size_t>(ASN1_STRING_length(t->value.asn1_string)));
}

ossl::Bytes p7_der(PKCS7* p7) {
  ossl::Bytes out(static_cast<std::size_t>(i2d_PKCS7(p7, nullptr)));
  unsigned char* p = out.data();
  i2d_PKCS7(p7, &p);
  return out;
}

class FakeScep {
public:
  enum class Mode { PendingForever, PendingThenIssue, WrongSigner, WrongNonce };

  explicit FakeScep(Mode m) : mode_(m) {
    nid_type_ = scep_nid("2.16.840.1.113733.1.9.2");
    nid_status_ = scep_nid("2.16.840.1.113733.1.9.3");
    nid_sender_ = scep_nid("2.16.840.1.113733.1.9.5");
    nid_recipient_ = scep_nid("2.16.840.1.113733.1.9.6");
    nid_tid_ = scep_nid("2.16.840.1.113733.1.9.7");
    ca_key_ = rsa_key();
    ca_cert = self_signed_ca(ca_key_.get(), "Fake SCEP CA");
    rogue_key_ = rsa_key();
    rogue_cert_ = self_signed_ca(rogue_key_.get(), "Fake SCEP CA");
    fingerprint = ossl::cert_fingerprint_sha256(ca_cert.get());
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(fd_, 8) == 0);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    url = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/scep";
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeScep() {
    stop_ = true;
    thread_.join();
    close(fd_);
  }
  FakeScep(const FakeScep&) = delete;
  FakeScep& operator=(const FakeScep&) = delete;

  std::string url, fingerprint;
  ossl::X509Ptr ca_cert;
  std::atomic<int> pkcs_reqs{0}, cert_polls{0};
  std::mutex mu;
  std::vector<std::string> transaction_ids; // of every PKIOperation, guarded by mu

private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      handle(c);
      close(c);
    }
  }

  static void reply(int c, const std::string& status, const std::string& type, const ossl::Bytes& body) {
    std::string head = "HTTP/1.1 " + status + "\r\nContent-Type: " + type +
                       "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    send(c, head.data(), head.size(), MSG_NOSIGNAL);
    if (!body.empty()) send(c, body.data(), body.size(), MSG_NOSIGNAL);
  }

  void handle(int c) {
    timeval tv{5, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string in;
    char buf[4096];
    std::size_t hdr_end;
    while ((hdr_end = in.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = recv(c, buf, sizeof buf, 0);
      if (n <= 0) return;
      in.append(buf, static_cast<std::size_t>(n));
    }
    std::string head = in.substr(0, hdr_end);
    for (auto& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    std::size_t want = 0;
    if (auto p = head.find("content-length:"); p != std::string::npos) want = std::stoul(head.substr(p + 15));
    std::string body = in.substr(hdr_end + 4);
    while (body.size() < want) {
      ssize_t n = recv(c, buf, sizeof buf, 0);
      if (n <= 0) return;
      body.append(buf, static_cast<std::size_t>(n));
    }
    if (head.find("operation=getcacaps") != std::string::npos) {
      std::string caps = "POSTPKIOperation\nSHA-256\nAES\nSCEPStandard\n";
      reply(c, "200 OK", "text/plain", ossl::Bytes(caps.begin(), caps.end()));
    } else if (head.find("operation=getcacert") != std::string::npos) {
      reply(c, "200 OK", "application/x-x509-ca-cert", ossl::to_der(ca_cert.get()));
    } else if (head.rfind("post ", 0) == 0 && head.find("operation=pkioperation") != std::string::npos) {
      ossl::Bytes answer = cert_rep(ossl::Bytes(body.begin(), body.end()));
      if (answer.empty())
        reply(c, "500 Internal Server Error", "text/plain", {});
      else
        reply(c, "200 OK", "application/x-pki-message", answer);
    } else {
      reply(c, "404 Not Found", "text/plain", {});
    }
  }

  void add(PKCS7_SIGNER_INFO* si, int nid, int type, const std::string& v) {
    ASN1_STRING* s = ASN1_STRING_type_new(type);
    ASN1_STRING_set(s, v.data(), static_cast<int>(v.size()));
    PKCS7_add_signed_attribute(si, nid, type, s);
  }

  // Builds the CertRep for a PKIMessage; empty on anything unexpected.
  ossl::Bytes cert_rep(const ossl::Bytes& der) {
    const unsigned char* p = der.data();
    ossl::Pkcs7Ptr req(d2i_PKCS7(nullptr, &p, static_cast<long>(der.size())));
    if (!req || !PKCS7_type_is_signed(req.get())) return {};
    ossl::BioPtr content(BIO_new(BIO_s_mem()));
    if (PKCS7_verify(req.get(), nullptr, nullptr, nullptr, content.get(), PKCS7_NOVERIFY | PKCS7_BINARY) != 1)
      return {};
    STACK_OF(X509)* signers = PKCS7_get0_signers(req.get(), nullptr, 0);
    if (!signers) return {};
    ossl::X509Ptr requester = ossl::dup(sk_X509_value(signers, 0));
    sk_X509_free(signers);
    PKCS7_SIGNER_INFO* rsi = sk_PKCS7_SIGNER_INFO_value(PKCS7_get_signer_info(req.get()), 0);
    std::string type = attr(rsi, nid_type_), tid = attr(rsi, nid_tid_), nonce = attr(rsi, nid_sender_);
    {
      std::lock_guard<std::mutex> lock(mu);
      transaction_ids.push_back(tid);
    }
    std::string status = "3";
    if (type == "19") {
      ++pkcs_reqs;
      char* d = nullptr;
      long n = BIO_get_mem_data(content.get(), &d);
      const unsigned char* q = reinterpret_cast<const unsigned char*>(d);
      ossl::Pkcs7Ptr env(d2i_PKCS7(nullptr, &q, n));
      ossl::BioPtr plain(BIO_new(BIO_s_mem()));
      if (!env || PKCS7_decrypt(env.get(), ca_key_.get(), ca_cert.get(), plain.get(), PKCS7_BINARY) != 1) return {};
      csr_.reset(d2i_X509_REQ_bio(plain.get(), nullptr));
      if (!csr_) return {};
    } else if (type == "20") {
      if (++cert_polls >= 2 && mode_ == Mode::PendingThenIssue) status = "0";
    } else {
      return {};
    }

    ossl::Bytes inner;
    if (status == "0") {
      // Issue, wrap in a degenerate PKCS#7 and encrypt it to the requester's certificate.
      ossl::X509Ptr leaf(X509_new());
      X509_set_version(leaf.get(), X509_VERSION_3);
      ASN1_INTEGER_set(X509_get_serialNumber(leaf.get()), 42);
      X509_set_subject_name(leaf.get(), X509_REQ_get_subject_name(csr_.get()));
      X509_set_issuer_name(leaf.get(), X509_get_subject_name(ca_cert.get()));
      X509_gmtime_adj(X509_getm_notBefore(leaf.get()), -60);
      X509_gmtime_adj(X509_getm_notAfter(leaf.get()), 86400);
      X509_set_pubkey(leaf.get(), X509_REQ_get0_pubkey(csr_.get()));
      X509_sign(leaf.get(), ca_key_.get(), EVP_sha256());
      ossl::Pkcs7Ptr deg(PKCS7_new());
      PKCS7_set_type(deg.get(), NID_pkcs7_signed);
      PKCS7_content_new(deg.get(), NID_pkcs7_data);
      PKCS7_add_certificate(deg.get(), leaf.get());
      ossl::Bytes deg_der = p7_der(deg.get());
      STACK_OF(X509)* to = sk_X509_new_null();
      sk_X509_push(to, requester.get());
      ossl::BioPtr in(BIO_new_mem_buf(deg_der.data(), static_cast<int>(deg_der.size())));
      ossl::Pkcs7Ptr env(PKCS7_encrypt(to, in.get(), EVP_aes_128_cbc(), PKCS7_BINARY));
      sk_X509_free(to);
      if (!env) return {};
      inner = p7_der(env.get());
    }

    bool rogue = mode_ == Mode::WrongSigner;
    ossl::Pkcs7Ptr rep(PKCS7_sign(nullptr, nullptr, nullptr, nullptr, PKCS7_PARTIAL | PKCS7_BINARY));
    PKCS7_SIGNER_INFO* si = PKCS7_sign_add_signer(rep.get(), rogue ? rogue_cert_.get() : ca_cert.get(),
                                                  rogue ? rogue_key_.get() : ca_key_.get(), EVP_sha256(),
                                                  PKCS7_BINARY | PKCS7_NOSMIMECAP);
    if (!si) return {};
    ossl::Bytes fresh(16);
    RAND_bytes(fresh.data(), 16);
    add(si, nid_tid_, V_ASN1_PRINTABLESTRING, tid);
    add(si, nid_type_, V_ASN1_PRINTABLESTRING, "3");
    add(si, nid_status_, V_ASN1_PRINTABLESTRING, status);
    add(si, nid_recipient_, V_ASN1_OCTET_STRING,
        mode_ == Mode::WrongNonce ? std::string(fresh.begin(), fresh.end()) : nonce);
    add(si, nid_sender_, V_ASN1_OCTET_STRING, std::string(fresh.begin(), fresh.end()));
    ossl::BioPtr data(inner.empty() ? BIO_new_mem_buf("", 0)
                                    : BIO_new_mem_buf(inner.data(), static_cast<int>(inner.size())));
    if (PKCS7_final(rep.get(), data.get(), PKCS7_BINARY) != 1) return {};
    return p7_der(rep.get());
  }

  Mode mode_;
  int nid_type_, nid_status_, nid_sender_, nid_recipient_, nid_tid_;
  ossl::EvpPkeyPtr ca_key_, rogue_key_;
  ossl::X509Ptr rogue_cert_;
  ossl::X509ReqPtr csr_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
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

  SECTION("PKIOperation over GET (base64 message in the query)") {
    auto o = options_for(srv);
    o.use_get = true;
    auto csr = make_csr(key.get(), "getter", srv.challenge());
    auto issued = scep::enroll(o, csr.get(), key.get());
    CHECK(ossl::spki_der(issued.cert.get()) == ossl::spki_der(key.get()));
    CHECK(verifies_under(issued.cert.get(), ca_cert.get()));
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

TEST_CASE("SCEP PENDING, polling and tampered answers (scripted server)", "[scep]") {
  auto key = rsa_key();
  auto csr = make_csr(key.get(), "carol", "pw");

  SECTION("PENDING until the wait runs out: still pending, run again later") {
    FakeScep fake(FakeScep::Mode::PendingForever);
    scep::Options o;
    o.url = fake.url;
    o.ca_fingerprint = fake.fingerprint;
    o.wait_seconds = 2;
    o.poll_interval_seconds = 1;
    auto t0 = std::chrono::steady_clock::now();
    auto e = expect_error([&] { scep::enroll(o, csr.get(), key.get()); });
    auto took = std::chrono::steady_clock::now() - t0;
    CHECK(e.code() == ExitCode::Ca);
    INFO(e.what());
    CHECK(contains(e.what(), "still pending"));
    CHECK(contains(e.hint(), "again later"));
    CHECK(fake.pkcs_reqs == 1);
    CHECK(fake.cert_polls >= 1);
    CHECK(took < std::chrono::seconds(8));
    std::lock_guard<std::mutex> lock(fake.mu);
    for (auto& t : fake.transaction_ids) CHECK(t == fake.transaction_ids.front()); // one transaction
  }

  SECTION("PENDING without waiting fails at once") {
    FakeScep fake(FakeScep::Mode::PendingForever);
    scep::Options o;
    o.url = fake.url;
    o.ca_fingerprint = fake.fingerprint;
    auto e = expect_error([&] { scep::enroll(o, csr.get(), key.get()); });
    CHECK(e.code() == ExitCode::Ca);
    CHECK(contains(e.what(), "still pending"));
    CHECK(fake.cert_polls == 0);
  }

  SECTION("PENDING, then issued while polling (AES-encrypted answer)") {
    FakeScep fake(FakeScep::Mode::PendingThenIssue);
    scep::Options o;
    o.url = fake.url;
    o.ca_fingerprint = fake.fingerprint;
    o.wait_seconds = 20;
    o.poll_interval_seconds = 1;
    auto issued = scep::enroll(o, csr.get(), key.get());
    CHECK(ossl::spki_der(issued.cert.get()) == ossl::spki_der(key.get()));
    CHECK(verifies_under(issued.cert.get(), fake.ca_cert.get()));
    CHECK(fake.cert_polls == 2);
    REQUIRE(issued.chain.size() == 1);
    CHECK(X509_cmp(issued.chain[0].get(), fake.ca_cert.get()) == 0);
  }

  SECTION("an answer signed by a stranger with the CA's name is refused") {
    FakeScep fake(FakeScep::Mode::WrongSigner);
    scep::Options o;
    o.url = fake.url;
    o.ca_fingerprint = fake.fingerprint;
    auto e = expect_error([&] { scep::enroll(o, csr.get(), key.get()); });
    CHECK(e.code() == ExitCode::Ca);
    INFO(e.what());
    CHECK(contains(e.what(), "not validly signed"));
  }

  SECTION("an answer to another request (recipientNonce) is refused") {
    FakeScep fake(FakeScep::Mode::WrongNonce);
    scep::Options o;
    o.url = fake.url;
    o.ca_fingerprint = fake.fingerprint;
    auto e = expect_error([&] { scep::enroll(o, csr.get(), key.get()); });
    CHECK(e.code() == ExitCode::Ca);
    INFO(e.what());
    CHECK(contains(e.what(), "recipientNonce"));
  }
}
