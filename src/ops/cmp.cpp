// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/cmp.hpp"

#include "../enroll/http_post.hpp"
#include "tokenprov/csr.hpp"
#include "tokenprov/fileio.hpp"
#include "tokenprov/interrupt.hpp"
#include "tokenprov/pickup.hpp"
#include "tokenprov/token_pkey.hpp"

#include <openssl/cmp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <strings.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <thread>

namespace tokenprov::cmp {

namespace {

using CtxPtr = std::unique_ptr<OSSL_CMP_CTX, ossl::Deleter<OSSL_CMP_CTX_free>>;
using MsgPtr = std::unique_ptr<OSSL_CMP_MSG, ossl::Deleter<OSSL_CMP_MSG_free>>;

constexpr int kPollReqBody = 25; // PKIBody pollReq [25] (RFC 4210); OpenSSL 3.0 keeps its names private

// SIGINT, SIGTERM and SIGHUP: the process-wide flag of util/interrupt.cpp (main installs
// the handlers); the polling wait looks at it, so Ctrl-C withdraws the request and the
// caller removes the key instead of the process dying with the key left on the token.

// Everything the callbacks need; they never throw into OpenSSL's C code.
struct Session {
  const Options* opts = nullptr;
  std::exception_ptr error;        // first failure inside a callback
  std::string wrong_key;           // set when the certificate is not for our key
  bool pinned = false;             // trust store built from the fingerprint
  bool signed_answer = false;      // some answer was signature-protected
  bool mac_answer = false;         // some answer was MAC-protected
  const StoreFn* store = nullptr;
  Issued* issued = nullptr;
  std::vector<ossl::X509Ptr> received; // extraCerts of every answer (for the chain check)
};

std::string say_status(OSSL_CMP_CTX* ctx) {
  char buf[OSSL_CMP_PKISI_BUFLEN] = {0};
  if (!OSSL_CMP_CTX_snprint_PKIStatus(ctx, buf, sizeof buf)) return {};
  return buf;
}

// Every certificate inside a PKIMessage's DER (extraCerts, caPubs, the issued
// one): OpenSSL 3.0 has no getters for them before the message is validated,
// and the pinned CA certificate may sit in either place. Each SEQUENCE that
// parses as a certificate is taken; others are searched inside.
void collect_certs(const unsigned char* p, long len, std::vector<ossl::X509Ptr>& out, int depth) {
  const unsigned char* end = p + len;
  while (p < end && depth < 12) {
    const unsigned char* start = p;
    long il = 0;
    int tag = 0, cls = 0;
    int r = ASN1_get_object(&p, &il, &tag, &cls, end - p);
    if (r & 0x80) return;
    if (r & V_ASN1_CONSTRUCTED) {
      if (cls == V_ASN1_UNIVERSAL && tag == V_ASN1_SEQUENCE) {
        const unsigned char* q = start;
        if (X509* c = d2i_X509(nullptr, &q, (p - start) + il)) {
          out.emplace_back(c);
          p += il;
          continue;
        }
      }
      collect_certs(p, il, out, depth + 1);
    }
    p += il;
  }
}

std::vector<ossl::X509Ptr> message_certs(const ossl::Bytes& der) {
  std::vector<ossl::X509Ptr> out;
  collect_certs(der.data(), static_cast<long>(der.size()), out, 0);
  ERR_clear_error(); // the failed d2i_X509 attempts
  return out;
}

bool mac_protected(const ossl::Bytes& der) {
  // PKIHeader.protectionAlg is read back by OpenSSL; here we only need to
  // know whether the answer was MAC-protected: PBM's OID 1.2.840.113533.7.66.13.
  static const unsigned char pbm[] = {0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf6, 0x7d, 0x07, 0x42, 0x0d};
  return std::search(der.begin(), der.end(), std::begin(pbm), std::end(pbm)) != der.end();
}

OSSL_CMP_MSG* transfer(OSSL_CMP_CTX* ctx, const OSSL_CMP_MSG* req) {
  auto* ses = static_cast<Session*>(OSSL_CMP_CTX_get_transfer_cb_arg(ctx));
  try {
    if (OSSL_CMP_MSG_get_bodytype(req) == kPollReqBody) ++ses->issued->polls;
    ossl::BioPtr out(BIO_new(BIO_s_mem()));
    if (!out || i2d_OSSL_CMP_MSG_bio(out.get(), req) <= 0) ossl::fail_ssl(ExitCode::Internal, "Cannot encode the CMP request");
    char* data = nullptr;
    long n = BIO_get_mem_data(out.get(), &data);
    ossl::Bytes body(data, data + n);
    auto a = http_post(ses->opts->url, "application/pkixcmp", body, ses->opts->http_timeout_seconds, "the CMP server");
    if (a.status != 200 && a.body.empty())
      fail(ExitCode::Ca, "The CMP server at " + ses->opts->url + " answered with HTTP status " + std::to_string(a.status) + ".",
           a.status == 404 ? "Check the CMP URL (its path names the CA, e.g. /pkix/ or /ejbca/publicweb/cmp/ALIAS)."
                           : "Check the URL, or ask the CA's operator.");
    OSSL_CMP_MSG* rsp = nullptr;
    {
      ossl::BioPtr in(BIO_new_mem_buf(a.body.data(), static_cast<int>(a.body.size())));
      rsp = in ? d2i_OSSL_CMP_MSG_bio(in.get(), nullptr) : nullptr;
    }
    if (!rsp)
      fail(ExitCode::Ca,
           "The server at " + ses->opts->url + " did not answer with a CMP message (HTTP status " + std::to_string(a.status) +
               (a.content_type.empty() ? "" : ", " + a.content_type) + ").",
           "Check that --cmp-url is the CA's CMP endpoint.");
    auto certs = message_certs(a.body);
    if (mac_protected(a.body)) ses->mac_answer = true;
    else ses->signed_answer = true;
    // --ca-fingerprint: the pinned certificate, found among the answer's
    // extraCerts, becomes the one trust anchor for signed answers.
    if (!ses->opts->ca_fingerprint.empty() && !ses->pinned) {
      for (auto& c : certs) {
        if (ossl::cert_fingerprint_sha256(c.get()) != ses->opts->ca_fingerprint) continue;
        ossl::X509StorePtr st(X509_STORE_new());
        if (!st || X509_STORE_add_cert(st.get(), c.get()) != 1)
          ossl::fail_ssl(ExitCode::Internal, "Cannot build the trust store");
        X509_STORE_set_flags(st.get(), X509_V_FLAG_PARTIAL_CHAIN);
        if (OSSL_CMP_CTX_set0_trustedStore(ctx, st.get()) == 1) st.release(); // CTX took it
        ses->pinned = true;
        break;
      }
    }
    for (auto& c : certs) ses->received.push_back(std::move(c));
    return rsp;
  } catch (...) {
    if (!ses->error) ses->error = std::current_exception();
    return nullptr;
  }
}

// Checks that CERT chains to the trust anchor the user gave, with the
// certificates the CA sent.
void check_chain(const Session& ses, X509* cert, const std::vector<X509*>& pool) {
  const Options& o = *ses.opts;
  ossl::X509StorePtr store(X509_STORE_new());
  if (!store) ossl::fail_ssl(ExitCode::Internal, "Cannot build the trust store");
  std::string anchor;
  if (!o.ca_bundle.empty()) {
    for (auto& c : load_certificate_file(o.ca_bundle)) X509_STORE_add_cert(store.get(), c.get());
    anchor = "the CA certificates in " + o.ca_bundle;
  } else {
    bool found = false;
    for (X509* c : pool)
      if (ossl::cert_fingerprint_sha256(c) == o.ca_fingerprint) {
        X509_STORE_add_cert(store.get(), c);
        found = true;
      }
    if (ossl::cert_fingerprint_sha256(cert) == o.ca_fingerprint) found = true; // pinned the leaf itself
    if (!found)
      fail(ExitCode::Ca,
           "The CA at " + o.url + " sent no certificate with the SHA-256 fingerprint " + o.ca_fingerprint +
               " (--ca-fingerprint) in its answer; the issued certificate cannot be tied to the CA you trust.",
           "Check the fingerprint, or give the CA certificate with --ca-bundle.");
    if (ossl::cert_fingerprint_sha256(cert) == o.ca_fingerprint) return;
    anchor = "the CA certificate with fingerprint " + o.ca_fingerprint;
  }
  X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_NO_CHECK_TIME);
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  ossl::X509StackPtr hold(untrusted);
  for (X509* c : pool)
    if (X509_up_ref(c) == 1) sk_X509_push(untrusted, c);
  ossl::X509StoreCtxPtr vctx(X509_STORE_CTX_new());
  if (!vctx || X509_STORE_CTX_init(vctx.get(), store.get(), cert, untrusted) != 1)
    ossl::fail_ssl(ExitCode::Internal, "Cannot verify the issued certificate");
  if (X509_verify_cert(vctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(vctx.get());
    fail(ExitCode::Ca,
         "The certificate the CA at " + o.url + " issued does not verify against " + anchor + ": " +
             X509_verify_cert_error_string(err) + ".",
         "Check --ca-bundle / --ca-fingerprint against what your CA published.");
  }
}

int cert_conf(OSSL_CMP_CTX* ctx, X509* cert, int fail_info, const char** text) {
  auto* ses = static_cast<Session*>(OSSL_CMP_CTX_get_certConf_cb_arg(ctx));
  if (fail_info != 0) {
    // OpenSSL found the certificate's public key is not our enrollment key.
    ses->wrong_key = "The CA at " + ses->opts->url +
                     " issued a certificate whose public key is not the token key's; it was refused and nothing was written.";
    return fail_info;
  }
  try {
    Issued& is = *ses->issued;
    is.cert = ossl::dup(cert);
    is.chain.clear();
    std::vector<X509*> pool;
    ossl::X509StackPtr ca(OSSL_CMP_CTX_get1_caPubs(ctx));
    for (int i = 0; ca && i < sk_X509_num(ca.get()); ++i) is.chain.push_back(ossl::dup(sk_X509_value(ca.get(), i)));
    ossl::X509StackPtr extra(OSSL_CMP_CTX_get1_extraCertsIn(ctx));
    for (int i = 0; extra && i < sk_X509_num(extra.get()); ++i) {
      X509* c = sk_X509_value(extra.get(), i);
      if (X509_cmp(c, cert) != 0) is.chain.push_back(ossl::dup(c));
    }
    for (auto& c : is.chain) pool.push_back(c.get());
    for (auto& c : ses->received) pool.push_back(c.get());
    check_chain(*ses, cert, pool);
    is.mac_only = ses->mac_answer && !ses->signed_answer;
    (*ses->store)(is); // writes the token; certConf follows only when this returned
    return 0;
  } catch (...) {
    if (!ses->error) ses->error = std::current_exception();
    *text = "the certificate could not be stored or verified by the client";
    return 1 << OSSL_CMP_PKIFAILUREINFO_systemFailure;
  }
}

void set_or_fail(int ok, const std::string& what) {
  if (ok != 1) ossl::fail_ssl(ExitCode::Internal, "Cannot set up the CMP client (" + what + ")");
}

CtxPtr new_ctx(const Options& o, Session& ses, const Secret* secret) {
  if (o.url.rfind("http://", 0) != 0 && o.url.rfind("https://", 0) != 0)
    fail(ExitCode::Usage, "The CMP URL '" + o.url + "' is not an http:// or https:// URL.");
  CtxPtr ctx(OSSL_CMP_CTX_new(nullptr, nullptr));
  if (!ctx) ossl::fail_ssl(ExitCode::Internal, "Cannot make a CMP context");
  OSSL_CMP_CTX_set_log_verbosity(ctx.get(), OSSL_CMP_LOG_EMERG); // OpenSSL's own log stays quiet
  set_or_fail(OSSL_CMP_CTX_set_transfer_cb(ctx.get(), transfer), "transfer");
  set_or_fail(OSSL_CMP_CTX_set_transfer_cb_arg(ctx.get(), &ses), "transfer arg");
  // Error answers and rejections are read even when their protection does not
  // verify (RFC 9483 section 3.6.4): they only ever make the run fail, and they
  // carry the server's words (a wrong secret is answered that way).
  set_or_fail(OSSL_CMP_CTX_set_option(ctx.get(), OSSL_CMP_OPT_UNPROTECTED_ERRORS, 1), "unprotected errors");
  if (secret) {
    if (o.reference.empty())
      fail(ExitCode::Usage, "CMP with a shared secret needs --reference (the reference number from the CA's mail).");
    set_or_fail(OSSL_CMP_CTX_set1_referenceValue(ctx.get(), reinterpret_cast<const unsigned char*>(o.reference.data()),
                                                 static_cast<int>(o.reference.size())),
                "reference");
    auto v = secret->view();
    set_or_fail(OSSL_CMP_CTX_set1_secretValue(ctx.get(), reinterpret_cast<const unsigned char*>(v.data()),
                                              static_cast<int>(v.size())),
                "secret");
  }
  if (!o.ca_bundle.empty()) {
    X509_STORE* st = X509_STORE_new();
    if (!st) ossl::fail_ssl(ExitCode::Internal, "Cannot build the trust store");
    for (auto& c : load_certificate_file(o.ca_bundle)) X509_STORE_add_cert(st, c.get());
    X509_STORE_set_flags(st, X509_V_FLAG_PARTIAL_CHAIN);
    OSSL_CMP_CTX_set0_trustedStore(ctx.get(), st);
  }
  OSSL_CMP_CTX_set_certConf_cb(ctx.get(), cert_conf);
  OSSL_CMP_CTX_set_certConf_cb_arg(ctx.get(), &ses);
  return ctx;
}

// The CA's words for a failed exchange, or OpenSSL's reason.
[[noreturn]] void fail_exchange(OSSL_CMP_CTX* ctx, Session& ses, const std::string& what) {
  if (ses.error) {
    std::exception_ptr e = ses.error;
    ses.error = nullptr;
    ERR_clear_error();
    std::rethrow_exception(e);
  }
  if (!ses.wrong_key.empty()) {
    ERR_clear_error();
    fail(ExitCode::Ca, ses.wrong_key, "Ask the CA's operator; the request named the token key's public key.");
  }
  std::string ossl_reason = ossl::last_error();
  int st = OSSL_CMP_CTX_get_status(ctx);
  std::string status = st >= 0 ? say_status(ctx) : "";
  std::string msg = "The CA at " + ses.opts->url + " did not " + what;
  std::string hint = "Check the reference and the secret from the CA's mail, or ask the CA's operator.";
  if (!status.empty()) {
    msg += ": " + status;
  } else if (ses.signed_answer && !ses.mac_answer && !ses.opts->ca_fingerprint.empty() && !ses.pinned) {
    msg += ": its signed answer carries no certificate with the SHA-256 fingerprint " + ses.opts->ca_fingerprint +
           " (--ca-fingerprint), so its signer cannot be tied to the CA you trust";
    hint = "Pin the issuing CA's fingerprint (CMP servers send the chain without the root), or give the root with --ca-bundle.";
  } else if (ses.signed_answer && !ses.mac_answer) {
    msg += ": its signed answer cannot be trusted (" + ossl_reason + ")";
    hint = "Check --ca-bundle / --ca-fingerprint against what your CA published.";
  } else if (ossl_reason.find("wrong PBM value") != std::string::npos ||
             ossl_reason.find("missing protection") != std::string::npos ||
             ossl_reason.find("error validating protection") != std::string::npos) {
    msg += ": its answer is not protected by the shared secret (" + ossl_reason +
           "); the secret is probably wrong, or the answer did not come from the CA";
  } else if (ossl_reason.find("signature") != std::string::npos || ossl_reason.find("validat") != std::string::npos ||
             ossl_reason.find("trust") != std::string::npos) {
    msg += ": its answer cannot be trusted (" + ossl_reason + ")";
    hint = "Check --ca-bundle / --ca-fingerprint against what your CA published.";
  } else {
    msg += " (" + ossl_reason + ")";
  }
  fail(ExitCode::Ca, msg + ".", hint);
}

void sleep_interruptible(int seconds) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (!interrupted() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

// Sends the request of TYPE and polls while the CA answers "waiting", within
// opts.wait_seconds; the certConf callback stores the certificate.
void run_certreq(OSSL_CMP_CTX* ctx_raw, Session& ses, int type) {
  const Options& opts = *ses.opts;
  Issued& issued = *ses.issued;
  struct {
    OSSL_CMP_CTX* get() const { return p; }
    OSSL_CMP_CTX* p;
  } ctx{ctx_raw};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(std::max(0, opts.wait_seconds));
  int check_after = 0;
  auto give_up = [&](bool interrupted) {
    ERR_clear_error();
    OSSL_CMP_try_certreq(ctx.get(), -1, nullptr, &check_after); // withdraw the request (error message to the CA)
    ERR_clear_error();
    if (interrupted)
      fail(ExitCode::Ca,
           "Interrupted while the CA at " + opts.url + " was considering the request (after " +
               std::to_string(issued.polls) + " poll(s)); the request was withdrawn.",
           "Run the same command again with the same reference and secret to ask again; add --wait SECONDS to wait for the approval.");
    fail(ExitCode::Ca,
         "The CA at " + opts.url + " has not approved the request yet (it asks to check again after " +
             std::to_string(check_after) + " s" +
             (opts.wait_seconds > 0 ? ", beyond --wait " + std::to_string(opts.wait_seconds) + " s" : "") +
             "); the request was withdrawn.",
         "Run the same command again later, or with --wait SECONDS long enough for the CA's approval.");
  };
  for (;;) {
    int res = OSSL_CMP_try_certreq(ctx.get(), type, nullptr, &check_after);
    if (res == 1) break;
    if (res == 0) {
      if (auto e = take_token_error()) std::rethrow_exception(e);
      fail_exchange(ctx.get(), ses, type == OSSL_CMP_KUR ? "renew the certificate" : "issue the certificate");
    }
    // waiting: the CA has the request and has not decided yet
    int wait_for = std::max(1, check_after);
    if (interrupted() || std::chrono::steady_clock::now() + std::chrono::seconds(wait_for) > deadline)
      give_up(interrupted());
    if (opts.progress)
      opts.progress("The CA has not decided yet; asking again in " + std::to_string(wait_for) + " s (poll " +
                    std::to_string(issued.polls + 1) + ")...");
    sleep_interruptible(wait_for);
    if (interrupted()) give_up(true);
  }
}

} // namespace

Issued enroll(const Options& opts, p11::Session& s, const KeyRef& key, const std::string& subject,
              const std::vector<std::string>& sans, const Secret& secret, const StoreFn& store) {
  ERR_clear_error(); // only this exchange's errors are reported
  Session ses;
  ses.opts = &opts;
  ses.store = &store;
  Issued issued;
  ses.issued = &issued;
  auto ctx = new_ctx(opts, ses, &secret);

  bool ir = opts.request == RequestKind::Ir || (opts.request == RequestKind::Auto && key.type == CKK_RSA);
  if (ir && key.type != CKK_RSA)
    fail(ExitCode::Usage, "A CMP ir with the token key's proof of possession needs an RSA key here; '" + key.label + "' is not one.",
         "Use --cmp-request p10cr (a CSR signed on the token) for EC and Ed25519 keys.");
  ossl::EvpPkeyPtr bridge;
  ossl::X509ReqPtr csr;
  if (ir) {
    bridge = token_rsa_pkey(s, key);
    auto name = ossl::parse_dn(subject);
    set_or_fail(OSSL_CMP_CTX_set1_subjectName(ctx.get(), name.get()), "subject");
    if (!sans.empty()) { // the SANs as the CSR code builds them
      auto tmp = make_csr(s, key, {subject, sans, SigScheme::Default, nullptr});
      STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(tmp.get());
      if (exts) OSSL_CMP_CTX_set0_reqExtensions(ctx.get(), exts);
    }
    EVP_PKEY_up_ref(bridge.get());
    set_or_fail(OSSL_CMP_CTX_set0_newPkey(ctx.get(), 1, bridge.get()), "key");
  } else {
    csr = make_csr(s, key, {subject, sans, SigScheme::Default, nullptr});
    set_or_fail(OSSL_CMP_CTX_set1_p10CSR(ctx.get(), csr.get()), "CSR");
  }
  int type = ir ? OSSL_CMP_IR : OSSL_CMP_P10CR;
  if (opts.progress)
    opts.progress("Sending the " + std::string(ir ? "ir" : "p10cr") + " for '" + key.label + "' to " + opts.url +
                  " (reference " + opts.reference + ")...");
  run_certreq(ctx.get(), ses, type);
  if (!issued.cert) fail(ExitCode::Ca, "The CA at " + opts.url + " answered without a certificate.");
  return issued;
}

namespace {
// Signature protection with KEY (through the token-key bridge: RSA or EC) and CERT.
ossl::EvpPkeyPtr sign_with(OSSL_CMP_CTX* ctx, p11::Session& s, const KeyRef& key, X509* cert, const char* what) {
  if (key.type != CKK_RSA && key.type != CKK_EC)
    fail(ExitCode::Usage,
         std::string("CMP ") + what + " signed by the key needs an RSA or EC key here; '" + key.label + "' is neither.",
         "Use the reference number and secret (MAC) from the CA instead, where the CA allows it.");
  auto bridge = token_signing_pkey(s, key, std::string("CMP ") + what);
  set_or_fail(OSSL_CMP_CTX_set1_cert(ctx, cert), "certificate");
  set_or_fail(OSSL_CMP_CTX_set1_pkey(ctx, bridge.get()), "key");
  return bridge;
}
} // namespace

Issued kur(const Options& opts, p11::Session& s, const KeyRef& key, X509* current, const StoreFn& store) {
  ERR_clear_error();
  Session ses;
  ses.opts = &opts;
  ses.store = &store;
  Issued issued;
  ses.issued = &issued;
  auto ctx = new_ctx(opts, ses, nullptr);
  auto bridge = sign_with(ctx.get(), s, key, current, "kur");
  set_or_fail(OSSL_CMP_CTX_set1_oldCert(ctx.get(), current), "old certificate");
  EVP_PKEY_up_ref(bridge.get());
  set_or_fail(OSSL_CMP_CTX_set0_newPkey(ctx.get(), 1, bridge.get()), "key");
  if (opts.progress)
    opts.progress("Sending the kur for '" + key.label + "' (certificate serial " + ossl::serial_hex(current) + ") to " +
                  opts.url + "...");
  run_certreq(ctx.get(), ses, OSSL_CMP_KUR);
  if (!issued.cert) fail(ExitCode::Ca, "The CA at " + opts.url + " answered without a certificate.");
  return issued;
}

void revoke(const Options& opts, p11::Session& s, const KeyRef& key, X509* cert, int reason, const Secret* secret) {
  ERR_clear_error();
  Session ses;
  ses.opts = &opts;
  Issued none;
  ses.issued = &none;
  StoreFn nothing = [](const Issued&) {};
  ses.store = &nothing;
  auto ctx = new_ctx(opts, ses, secret);
  ossl::EvpPkeyPtr bridge;
  if (!secret) bridge = sign_with(ctx.get(), s, key, cert, "rr");
  set_or_fail(OSSL_CMP_CTX_set1_oldCert(ctx.get(), cert), "certificate to revoke");
  set_or_fail(OSSL_CMP_CTX_set_option(ctx.get(), OSSL_CMP_OPT_REVOCATION_REASON, reason), "reason");
  if (opts.progress)
    opts.progress("Asking the CA at " + opts.url + " to revoke the certificate of '" + key.label + "' (serial " +
                  ossl::serial_hex(cert) + ")...");
  if (OSSL_CMP_exec_RR_ses(ctx.get()) != 1) {
    if (auto e = take_token_error()) std::rethrow_exception(e);
    fail_exchange(ctx.get(), ses, "revoke the certificate");
  }
}

} // namespace tokenprov::cmp

namespace tokenprov::cmp {

int parse_revocation_reason(const std::string& reason) {
  static const char* names[] = {"unspecified",         "keyCompromise",        "cACompromise",     "affiliationChanged",
                                "superseded",          "cessationOfOperation", "certificateHold",  "",
                                "removeFromCRL",       "privilegeWithdrawn",   "aACompromise"};
  if (reason.empty()) return -1;
  for (int i = 0; i <= 10; ++i)
    if (i != 7 && (reason == std::to_string(i) || strcasecmp(reason.c_str(), names[i]) == 0)) return i;
  fail(ExitCode::Usage, "Unknown revocation reason '" + reason + "'.",
       "Use one of unspecified, keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation, "
       "certificateHold, removeFromCRL, privilegeWithdrawn, aACompromise (or its number).");
}

} // namespace tokenprov::cmp
