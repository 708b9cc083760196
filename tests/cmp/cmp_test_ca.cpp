// SPDX-License-Identifier: Apache-2.0
// A CMP test CA for the end-to-end tests: OpenSSL's server framework
// (OSSL_CMP_SRV_CTX) with callbacks of our own that really issue a
// certificate for the key the request names (the CRMF template's public key
// of an ir, or the PKCS#10 of a p10cr), served over HTTP/1.0 on 127.0.0.1.
//
//   cmp_test_ca --port-file F --ca-cert C --ca-key K [--chain FILE] [--capubs FILE]
//               --ref REF --secret-file S [--protect mac|signature --srv-cert C --srv-key K]
//               [--mode ok|reject|wrong-cert] [--polls N --check-after S] [--log FILE]
//
// It listens on an ephemeral port (written to F once it listens) until
// SIGTERM. Each line of --log records what it did ("issued SERIAL",
// "pollRep", "certConf accepted|rejected", "rr SERIAL", "error ...").
// With --protect signature the answers are signed with --srv-cert/--srv-key
// (requests are still checked with the shared secret).
#include <openssl/cmp.h>
#include <openssl/crmf.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

struct Ca {
  X509* cert = nullptr;
  EVP_PKEY* key = nullptr;
  STACK_OF(X509)* chain = nullptr;  // extraCerts of issued certificates
  STACK_OF(X509)* capubs = nullptr; // caPubs of ip
  std::string mode = "ok";
  int polls = 0;       // pollReq to answer "waiting" before the certificate
  int check_after = 1;
  int polls_left = 0;
  bool polling = false;
  OSSL_CMP_MSG* stored = nullptr; // the request that is waiting
  bool sign_answers = false;
  std::string secret, ref;
  FILE* log = stderr;
};

volatile std::sig_atomic_t g_stop = 0;
void on_term(int) { g_stop = 1; }

void logf(Ca& ca, const std::string& line) {
  std::fprintf(ca.log, "%s\n", line.c_str());
  std::fflush(ca.log);
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "cmp_test_ca: %s\n", what.c_str());
  ERR_print_errors_fp(stderr);
  std::exit(2);
}

STACK_OF(X509) * read_certs(const std::string& path) {
  STACK_OF(X509)* sk = sk_X509_new_null();
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) die("cannot read " + path);
  while (X509* c = PEM_read_X509(f, nullptr, nullptr, nullptr)) sk_X509_push(sk, c);
  ERR_clear_error();
  std::fclose(f);
  return sk;
}

EVP_PKEY* read_key(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) die("cannot read " + path);
  EVP_PKEY* k = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (!k) die("no key in " + path);
  return k;
}

// The CRMF template's publicKey ([6] IMPLICIT SubjectPublicKeyInfo): OpenSSL
// 3.0 has no getter, so it is read from the DER of the CertReqMsg.
EVP_PKEY* template_key(const OSSL_CRMF_MSG* crm) {
  unsigned char* der = nullptr;
  int n = i2d_OSSL_CRMF_MSG(const_cast<OSSL_CRMF_MSG*>(crm), &der);
  if (n <= 0) return nullptr;
  EVP_PKEY* out = nullptr;
  const unsigned char* p = der;
  long len;
  int tag, cls;
  // CertReqMsg SEQUENCE -> CertRequest SEQUENCE -> certReqId, CertTemplate SEQUENCE
  for (int depth = 0; depth < 2; ++depth)
    if (ASN1_get_object(&p, &len, &tag, &cls, der + n - p) & 0x80) goto done;
  {
    long l2; // skip certReqId
    const unsigned char* q = p;
    if (ASN1_get_object(&q, &l2, &tag, &cls, der + n - q) & 0x80) goto done;
    p = q + l2;
    if (ASN1_get_object(&p, &len, &tag, &cls, der + n - p) & 0x80) goto done; // CertTemplate
    const unsigned char* end = p + len;
    while (p < end) {
      const unsigned char* start = p;
      long il;
      if (ASN1_get_object(&p, &il, &tag, &cls, end - p) & 0x80) goto done;
      if (cls == V_ASN1_CONTEXT_SPECIFIC && tag == 6) {
        std::vector<unsigned char> spki(start, p + il);
        spki[0] = 0x30; // [6] IMPLICIT -> SEQUENCE
        const unsigned char* s = spki.data();
        out = d2i_PUBKEY(nullptr, &s, static_cast<long>(spki.size()));
        break;
      }
      p += il;
    }
  }
done:
  OPENSSL_free(der);
  return out;
}

X509* issue(Ca& ca, EVP_PKEY* pub, const X509_NAME* subject) {
  X509* c = X509_new();
  X509_set_version(c, 2);
  unsigned char rnd[16];
  RAND_bytes(rnd, sizeof rnd);
  rnd[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(rnd, sizeof rnd, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c));
  BN_free(bn);
  X509_set_issuer_name(c, X509_get_subject_name(ca.cert));
  X509_set_subject_name(c, const_cast<X509_NAME*>(subject));
  X509_gmtime_adj(X509_getm_notBefore(c), -60);
  X509_gmtime_adj(X509_getm_notAfter(c), 30L * 86400);
  X509_set_pubkey(c, pub);
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, ca.cert, c, nullptr, nullptr, 0);
  for (auto [nid, val] : std::vector<std::pair<int, const char*>>{{NID_basic_constraints, "CA:FALSE"},
                                                                   {NID_key_usage, "critical,digitalSignature"},
                                                                   {NID_authority_key_identifier, "keyid"}}) {
    X509_EXTENSION* e = X509V3_EXT_nconf_nid(nullptr, &v3, nid, val);
    if (e) {
      X509_add_ext(c, e, -1);
      X509_EXTENSION_free(e);
    }
  }
  if (X509_sign(c, ca.key, EVP_sha256()) <= 0) die("cannot sign");
  return c;
}

// With --protect signature the server's context holds no secret (OpenSSL
// would MAC its answers otherwise): main() checks each request's MAC with a
// context of its own first, and the framework is told to take the request's
// protection as checked.
void for_answer(OSSL_CMP_SRV_CTX*, Ca&) {}

OSSL_CMP_PKISI* cert_request(OSSL_CMP_SRV_CTX* srv, const OSSL_CMP_MSG* req, int, const OSSL_CRMF_MSG* crm,
                             const X509_REQ* p10cr, X509** certOut, STACK_OF(X509)** chainOut,
                             STACK_OF(X509)** caPubs) {
  Ca& ca = *static_cast<Ca*>(OSSL_CMP_SRV_CTX_get0_custom_ctx(srv));
  for_answer(srv, ca);
  if (ca.mode == "reject") {
    logf(ca, "rejected");
    return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_rejection, 1 << OSSL_CMP_PKIFAILUREINFO_badCertTemplate,
                                   "the RA did not approve this request");
  }
  if (ca.polls > 0 && !ca.polling && ca.polls_left == 0) {
    ca.polling = true;
    ca.polls_left = ca.polls - 1; // the POLLS-th pollReq gets the certificate
    OSSL_CMP_MSG_free(ca.stored);
    ca.stored = OSSL_CMP_MSG_dup(req);
    logf(ca, "waiting");
    return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_waiting, 0, "awaiting approval");
  }
  ca.polling = false;
  EVP_PKEY* pub = nullptr;
  const X509_NAME* subject = nullptr;
  if (p10cr) {
    pub = X509_REQ_get_pubkey(const_cast<X509_REQ*>(p10cr));
    subject = X509_REQ_get_subject_name(p10cr);
  } else if (crm) {
    pub = template_key(crm);
    subject = OSSL_CRMF_CERTTEMPLATE_get0_subject(OSSL_CRMF_MSG_get0_tmpl(crm));
  }
  if (!pub || !subject) {
    EVP_PKEY_free(pub);
    logf(ca, "error no key or subject in the request");
    return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_rejection, 1 << OSSL_CMP_PKIFAILUREINFO_badCertTemplate,
                                   "no public key or subject in the request");
  }
  if (ca.mode == "wrong-cert") { // a certificate for a key the requester does not have
    EVP_PKEY_free(pub);
    pub = EVP_EC_gen("P-256");
  }
  *certOut = issue(ca, pub, subject);
  EVP_PKEY_free(pub);
  *chainOut = X509_chain_up_ref(ca.chain);
  *caPubs = ca.capubs ? X509_chain_up_ref(ca.capubs) : nullptr;
  char* hex = nullptr;
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(*certOut), nullptr);
  hex = BN_bn2hex(bn);
  logf(ca, std::string("issued ") + hex + (p10cr ? " p10cr" : " crmf"));
  OPENSSL_free(hex);
  BN_free(bn);
  return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_accepted, 0, nullptr);
}

int poll_req(OSSL_CMP_SRV_CTX* srv, const OSSL_CMP_MSG* req, int, OSSL_CMP_MSG** certReq, int64_t* check_after) {
  Ca& ca = *static_cast<Ca*>(OSSL_CMP_SRV_CTX_get0_custom_ctx(srv));
  for_answer(srv, ca);
  if (!ca.polling) {
    logf(ca, "error pollReq outside polling");
    return 0;
  }
  if (ca.polls_left > 0) {
    --ca.polls_left;
    *certReq = nullptr;
    *check_after = ca.check_after;
    logf(ca, "pollRep");
    return 1;
  }
  (void)req;
  *certReq = OSSL_CMP_MSG_dup(ca.stored); // approved now: the framework answers it as a new request
  logf(ca, "approved after polling");
  return *certReq != nullptr;
}

OSSL_CMP_PKISI* rr(OSSL_CMP_SRV_CTX* srv, const OSSL_CMP_MSG*, const X509_NAME*, const ASN1_INTEGER* serial) {
  Ca& ca = *static_cast<Ca*>(OSSL_CMP_SRV_CTX_get0_custom_ctx(srv));
  for_answer(srv, ca);
  BIGNUM* bn = ASN1_INTEGER_to_BN(serial, nullptr);
  char* hex = BN_bn2hex(bn);
  logf(ca, std::string("rr ") + hex);
  OPENSSL_free(hex);
  BN_free(bn);
  if (ca.mode == "reject")
    return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_rejection, 1 << OSSL_CMP_PKIFAILUREINFO_badRequest,
                                   "revocation refused");
  return OSSL_CMP_STATUSINFO_new(OSSL_CMP_PKISTATUS_accepted, 0, nullptr);
}

void error_cb(OSSL_CMP_SRV_CTX* srv, const OSSL_CMP_MSG*, const OSSL_CMP_PKISI* si, const ASN1_INTEGER*,
              const OSSL_CMP_PKIFREETEXT*) {
  Ca& ca = *static_cast<Ca*>(OSSL_CMP_SRV_CTX_get0_custom_ctx(srv));
  for_answer(srv, ca);
  char buf[OSSL_CMP_PKISI_BUFLEN];
  logf(ca, std::string("error from client: ") + (OSSL_CMP_snprint_PKIStatusInfo(si, buf, sizeof buf) ? buf : "?"));
  ca.polling = false;
  ca.polls_left = 0;
}

int cert_conf(OSSL_CMP_SRV_CTX* srv, const OSSL_CMP_MSG*, int, const ASN1_OCTET_STRING*, const OSSL_CMP_PKISI* si) {
  Ca& ca = *static_cast<Ca*>(OSSL_CMP_SRV_CTX_get0_custom_ctx(srv));
  for_answer(srv, ca);
  char buf[OSSL_CMP_PKISI_BUFLEN];
  bool ok = si == nullptr || (OSSL_CMP_snprint_PKIStatusInfo(si, buf, sizeof buf) &&
                              std::strncmp(buf, "PKIStatus: accepted", 19) == 0);
  logf(ca, ok ? "certConf accepted" : "certConf rejected");
  return 1;
}

std::string arg(std::map<std::string, std::string>& a, const std::string& k, const std::string& def = "") {
  auto it = a.find(k);
  return it == a.end() ? def : it->second;
}

bool read_request(int fd, std::string& body) {
  std::string in;
  char buf[4096];
  std::size_t hdr_end = std::string::npos;
  while ((hdr_end = in.find("\r\n\r\n")) == std::string::npos) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0 || in.size() > (1u << 20)) return false;
    in.append(buf, static_cast<std::size_t>(n));
  }
  std::size_t len = 0;
  std::string head = in.substr(0, hdr_end);
  for (auto& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  auto pos = head.find("content-length:");
  if (pos == std::string::npos) return false;
  len = std::strtoul(head.c_str() + pos + 15, nullptr, 10);
  body = in.substr(hdr_end + 4);
  while (body.size() < len) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return false;
    body.append(buf, static_cast<std::size_t>(n));
  }
  return true;
}

} // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> a;
  for (int i = 1; i + 1 < argc; i += 2) a[argv[i]] = argv[i + 1];
  Ca ca;
  STACK_OF(X509)* cac = read_certs(arg(a, "--ca-cert"));
  if (sk_X509_num(cac) < 1) die("no CA certificate");
  ca.cert = sk_X509_value(cac, 0);
  ca.key = read_key(arg(a, "--ca-key"));
  ca.chain = arg(a, "--chain").empty() ? sk_X509_new_null() : read_certs(arg(a, "--chain"));
  if (!arg(a, "--capubs").empty()) ca.capubs = read_certs(arg(a, "--capubs"));
  ca.mode = arg(a, "--mode", "ok");
  ca.polls = std::atoi(arg(a, "--polls", "0").c_str());
  ca.check_after = std::atoi(arg(a, "--check-after", "1").c_str());
  ca.ref = arg(a, "--ref");
  {
    std::ifstream f(arg(a, "--secret-file"));
    std::getline(f, ca.secret);
  }
  if (!arg(a, "--log").empty()) ca.log = std::fopen(arg(a, "--log").c_str(), "a");
  ca.sign_answers = arg(a, "--protect", "mac") == "signature";

  // One server context per transaction (OpenSSL 3.0's OSSL_CMP_SRV_CTX follows one
  // transaction at a time, and the polling state below is per request), so that
  // concurrent clients (a fleet with several workers) each get their own.
  struct Transaction {
    Ca state;
    OSSL_CMP_SRV_CTX* srv = nullptr;
  };
  std::map<std::string, std::unique_ptr<Transaction>> transactions;
  auto make_srv = [&](Transaction& tr) {
    Ca& t = tr.state;
    OSSL_CMP_SRV_CTX* srv = OSSL_CMP_SRV_CTX_new(nullptr, nullptr);
    OSSL_CMP_SRV_CTX_init(srv, &t, cert_request, rr, nullptr, error_cb, cert_conf, poll_req);
    OSSL_CMP_CTX* ctx = OSSL_CMP_SRV_CTX_get0_cmp_ctx(srv);
    OSSL_CMP_CTX_set_log_verbosity(ctx, OSSL_CMP_LOG_ERR);
    if (ca.sign_answers) {
      STACK_OF(X509)* sc = read_certs(arg(a, "--srv-cert"));
      EVP_PKEY* sk = read_key(arg(a, "--srv-key"));
      OSSL_CMP_CTX_set1_cert(ctx, sk_X509_value(sc, 0));
      OSSL_CMP_CTX_set1_pkey(ctx, sk);
      // extraCerts of signed answers: the signer and its chain (RFC 9483 section 3.3)
      STACK_OF(X509)* up = X509_chain_up_ref(ca.chain);
      if (ca.capubs)
        for (int i = 0; i < sk_X509_num(ca.capubs); ++i) {
          X509_up_ref(sk_X509_value(ca.capubs, i));
          sk_X509_push(up, sk_X509_value(ca.capubs, i));
        }
      OSSL_CMP_CTX_set1_untrusted(ctx, up);
      sk_X509_pop_free(up, X509_free);
    }
    OSSL_CMP_SRV_CTX_set_send_unprotected_errors(srv, 0);
    // Signed requests (rr, kur) are checked against the root and the chain.
    X509_STORE* trusted = X509_STORE_new();
    for (STACK_OF(X509)* sk : {ca.capubs, ca.chain})
      for (int i = 0; sk && i < sk_X509_num(sk); ++i) X509_STORE_add_cert(trusted, sk_X509_value(sk, i));
    OSSL_CMP_CTX_set0_trustedStore(ctx, trusted);
    OSSL_CMP_CTX_set_option(ctx, OSSL_CMP_OPT_IGNORE_KEYUSAGE, 1);
    if (!ca.sign_answers) {
      OSSL_CMP_CTX_set1_referenceValue(ctx, reinterpret_cast<const unsigned char*>(ca.ref.data()),
                                       static_cast<int>(ca.ref.size()));
      OSSL_CMP_CTX_set1_secretValue(ctx, reinterpret_cast<const unsigned char*>(ca.secret.data()),
                                    static_cast<int>(ca.secret.size()));
    }
    tr.srv = srv;
  };
  auto server_for = [&](OSSL_CMP_MSG* req) -> OSSL_CMP_SRV_CTX* {
    const ASN1_OCTET_STRING* tid = OSSL_CMP_HDR_get0_transactionID(OSSL_CMP_MSG_get0_header(req));
    std::string key = tid ? std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(tid)),
                                        static_cast<std::size_t>(ASN1_STRING_length(tid)))
                          : std::string();
    auto& tr = transactions[key];
    if (!tr) {
      tr = std::make_unique<Transaction>();
      tr->state = ca;
      make_srv(*tr);
    }
    return tr->srv;
  };

  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sa.sin_port = 0;
  if (::bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(s, 16) != 0) die("cannot listen");
  socklen_t sl = sizeof sa;
  getsockname(s, reinterpret_cast<sockaddr*>(&sa), &sl);
  {
    std::string tmp = arg(a, "--port-file") + ".tmp";
    std::ofstream(tmp) << ntohs(sa.sin_port) << "\n";
    std::rename(tmp.c_str(), arg(a, "--port-file").c_str());
  }
  struct sigaction term {};
  term.sa_handler = on_term;
  sigaction(SIGTERM, &term, nullptr);
  while (!g_stop) {
    int c = ::accept(s, nullptr, nullptr);
    if (c < 0) continue;
    std::string body;
    if (read_request(c, body)) {
      const unsigned char* p = reinterpret_cast<const unsigned char*>(body.data());
      BIO* in = BIO_new_mem_buf(p, static_cast<int>(body.size()));
      OSSL_CMP_MSG* req = d2i_OSSL_CMP_MSG_bio(in, nullptr);
      BIO_free(in);
      if (req && ca.sign_answers) {
        OSSL_CMP_CTX* check = OSSL_CMP_CTX_new(nullptr, nullptr);
        OSSL_CMP_CTX_set_log_verbosity(check, OSSL_CMP_LOG_EMERG);
        OSSL_CMP_CTX_set1_secretValue(check, reinterpret_cast<const unsigned char*>(ca.secret.data()),
                                      static_cast<int>(ca.secret.size()));
        bool mac_ok = OSSL_CMP_validate_msg(check, req) == 1;
        OSSL_CMP_CTX_free(check);
        ERR_clear_error();
        if (!mac_ok) logf(ca, "error request MAC does not verify");
        OSSL_CMP_SRV_CTX_set_accept_unprotected(server_for(req), mac_ok ? 1 : 0);
      }
      OSSL_CMP_MSG* rsp = req ? OSSL_CMP_SRV_process_request(server_for(req), req) : nullptr;
      if (!rsp) {
        unsigned long e = ERR_peek_last_error();
        logf(ca, std::string("error processing: ") + (e ? ERR_reason_error_string(e) : "?"));
      }
      ERR_clear_error();
      std::string out;
      if (rsp) {
        BIO* mem = BIO_new(BIO_s_mem());
        i2d_OSSL_CMP_MSG_bio(mem, rsp);
        char* d = nullptr;
        long n = BIO_get_mem_data(mem, &d);
        out.assign(d, static_cast<std::size_t>(n));
        BIO_free(mem);
      }
      std::string head = rsp ? "HTTP/1.0 200 OK\r\nContent-Type: application/pkixcmp\r\nContent-Length: " +
                                   std::to_string(out.size()) + "\r\n\r\n"
                             : "HTTP/1.0 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n";
      std::string all = head + out;
      std::size_t off = 0;
      while (off < all.size()) {
        ssize_t n = ::write(c, all.data() + off, all.size() - off);
        if (n <= 0) break;
        off += static_cast<std::size_t>(n);
      }
      OSSL_CMP_MSG_free(req);
      OSSL_CMP_MSG_free(rsp);
    }
    ::close(c);
  }
  ::close(s);
  for (auto& kv : transactions)
    OSSL_CMP_SRV_CTX_free(kv.second->srv);
  return 0;
}
