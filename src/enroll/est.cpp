// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/est.hpp"

#include "curl_common.hpp"

#include "tokenprov/certs.hpp"
#include "tokenprov/fileio.hpp"

#include <curl/curl.h>
#include <openssl/asn1t.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#ifndef TOKENPROV_VERSION
#define TOKENPROV_VERSION "dev"
#endif

namespace tokenprov::est {

using ossl::Bytes;

namespace {

using curl::CurlPtr;
using curl::kMaxBody;
using curl::Sink;
using curl::SlistPtr;

// What the SSL_CTX callback puts into curl's OpenSSL context: our trust store
// (replacing whatever curl loaded) and the client certificate and key.
struct TlsSetup {
  X509_STORE* store = nullptr;
  const ClientAuth* auth = nullptr;
  bool called = false;
  std::string error;
};

CURLcode est_ssl_ctx(CURL*, void* sslctx, void* parm) {
  auto* t = static_cast<TlsSetup*>(parm);
  auto* ctx = static_cast<SSL_CTX*>(sslctx);
  t->called = true;
  X509_STORE_up_ref(t->store);
  SSL_CTX_set_cert_store(ctx, t->store); // the --ca-bundle and nothing else
  if (t->auth && t->auth->key) {
    if (SSL_CTX_use_certificate(ctx, t->auth->cert) != 1 || SSL_CTX_use_PrivateKey(ctx, t->auth->key) != 1) {
      t->error = ossl::last_error();
      return CURLE_SSL_CERTPROBLEM;
    }
  }
  return CURLE_OK;
}

struct Response {
  long status = 0;
  Bytes body;
  long long retry_after = -1;
  std::string content_type;
};

struct Trust {
  ossl::X509StorePtr store;
  std::string pem; // for a libcurl whose TLS is not OpenSSL (CURLOPT_CAINFO_BLOB)
};

Trust load_trust(const Options& opts) {
  if (opts.ca_bundle.empty())
    fail(ExitCode::Usage, "EST needs --ca-bundle: the CA certificates the EST server's TLS certificate must chain to.",
         "Pass the file your CA published for its EST server; tokenprov does not use the system's CA store for EST.");
  auto certs = load_certificate_file(opts.ca_bundle, input::ca_bundle); // the one bundle reader (crypto/certs.cpp)
  Trust t;
  t.store.reset(X509_STORE_new());
  for (auto& c : certs) {
    X509_STORE_add_cert(t.store.get(), c.get());
    t.pem += ossl::to_pem(c.get());
  }
  ERR_clear_error();
  return t;
}

std::string join(const std::string& base, const std::string& op) {
  std::string b = base;
  while (!b.empty() && b.back() == '/') b.pop_back();
  return b + "/" + op;
}

// POST: BODY (a CSR) base64-encoded into B64, with the headers EST asks for.
void set_post_body(CURL* c, const Bytes& body, std::string& b64, SlistPtr& headers) {
  int n = 4 * static_cast<int>((body.size() + 2) / 3);
  b64.resize(static_cast<std::size_t>(n) + 1);
  EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), body.data(), static_cast<int>(body.size()));
  b64.resize(static_cast<std::size_t>(n));
  curl_slist* h = curl_slist_append(nullptr, "Content-Type: application/pkcs10");
  curl_slist* h2 = h ? curl_slist_append(h, "Content-Transfer-Encoding: base64") : nullptr;
  curl_slist* h3 = h2 ? curl_slist_append(h2, "Expect:") : nullptr;
  headers.reset(h3 ? h3 : h2 ? h2 : h);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_POST, 1L);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, b64.data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(b64.size()));
}

// The sentence for a transfer that failed with RC: the answer too big, the
// client certificate, the server's certificate, the client certificate
// refused, a timeout, else unreachable.
[[noreturn]] void transfer_failed(const Options& opts, const std::string& op, CURLcode rc, const char* errbuf,
                                  const Sink& sink, const TlsSetup& tls, const ClientAuth* auth) {
  std::string why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  if (sink.too_big)
    fail(ExitCode::Ca, "The EST server at " + opts.url + " sent an answer to " + op + " larger than 4 MiB.");
  if (!tls.error.empty())
    fail(ExitCode::Ca, "The TLS client certificate could not be used for " + op + ": " + tls.error + ".");
  if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE
#if LIBCURL_VERSION_NUM < 0x073e00
      || rc == CURLE_SSL_CACERT
#endif
  )
    fail(ExitCode::Ca,
         "The EST server at " + opts.url + " presented a TLS certificate that does not verify against --ca-bundle '" +
             opts.ca_bundle + "' (" + why + "); no request was sent.",
         "Check that --ca-bundle holds the CA that issued the EST server's TLS certificate, and the URL's host name.");
  if (auth && auth->cert && rc != CURLE_COULDNT_CONNECT && rc != CURLE_COULDNT_RESOLVE_HOST &&
      rc != CURLE_OPERATION_TIMEDOUT)
    fail(ExitCode::Ca,
         "The EST server at " + opts.url + " closed the TLS connection of " + op + " (" + why +
             "): it does not accept the client certificate '" +
             ossl::name_oneline(X509_get_subject_name(auth->cert)) + "' issued by '" +
             ossl::name_oneline(X509_get_issuer_name(auth->cert)) + "'.",
         "Re-enrollment needs a current certificate from the CA behind this EST server; enroll the key again "
         "(tokenprov enroll --protocol est --key ...) if this one is from another CA.");
  if (rc == CURLE_OPERATION_TIMEDOUT)
    fail(ExitCode::Ca, "The EST server at " + opts.url + " did not answer " + op + " in time (" + why + ").",
         "Check that the server is running and reachable, then run the command again.");
  fail(ExitCode::Ca, "Cannot reach the EST server at " + opts.url + " (" + op + "): " + why + ".",
       "Check the URL and that the EST server is running and reachable from here.");
}

Response exchange(const Options& opts, const Trust& trust, const std::string& op, const Bytes* post,
                  const ClientAuth* auth) {
  if (opts.url.rfind("https://", 0) != 0)
    fail(ExitCode::Usage, "The EST URL '" + opts.url + "' is not an https:// URL; EST runs over TLS.",
         "Give --est-url as https://HOST[:PORT]/.well-known/est.");
  curl::init_once();
  CurlPtr c(curl_easy_init());
  if (!c) fail(ExitCode::Internal, "Cannot start an HTTP client (curl_easy_init failed).");
  std::string url = join(opts.url, op);
  Sink sink;
  char errbuf[CURL_ERROR_SIZE] = {0};
  long timeout = opts.http_timeout_seconds > 0 ? opts.http_timeout_seconds : 60;
  curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c.get(), CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c.get(), CURLOPT_CONNECTTIMEOUT, std::min(timeout, 15L));
  curl_easy_setopt(c.get(), CURLOPT_TIMEOUT, timeout);
  curl_easy_setopt(c.get(), CURLOPT_FOLLOWLOCATION, 0L); // credentials never follow a redirect
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(c.get(), CURLOPT_PROTOCOLS_STR, "https");
#endif
  curl_easy_setopt(c.get(), CURLOPT_USERAGENT, "tokenprov/" TOKENPROV_VERSION);
  curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, curl::sink_write);
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &sink);
  // Trust: the bundle only. No CA file, no CA path, no default verify paths.
  curl_easy_setopt(c.get(), CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c.get(), CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(c.get(), CURLOPT_CAINFO, static_cast<const char*>(nullptr));
  curl_easy_setopt(c.get(), CURLOPT_CAPATH, static_cast<const char*>(nullptr));
  curl_blob blob{const_cast<char*>(trust.pem.data()), trust.pem.size(), CURL_BLOB_COPY};
  curl_easy_setopt(c.get(), CURLOPT_CAINFO_BLOB, &blob);
  TlsSetup tls;
  tls.store = trust.store.get();
  tls.auth = auth;
  bool ctx_fn = curl_easy_setopt(c.get(), CURLOPT_SSL_CTX_FUNCTION, est_ssl_ctx) == CURLE_OK &&
                curl_easy_setopt(c.get(), CURLOPT_SSL_CTX_DATA, &tls) == CURLE_OK;
  if (auth && auth->key && !ctx_fn)
    fail(ExitCode::Ca, "The libcurl on this machine is not built with OpenSSL; EST re-enrollment needs it for the token key.",
         "Install Debian's libcurl4 (OpenSSL), not only libcurl3-gnutls.");
  std::string user_pass;
  if (opts.password && !auth) {
    curl_easy_setopt(c.get(), CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
    curl_easy_setopt(c.get(), CURLOPT_USERNAME, opts.user.c_str());
    curl_easy_setopt(c.get(), CURLOPT_PASSWORD, opts.password->str().c_str());
  }
  SlistPtr headers;
  std::string b64;
  if (post) set_post_body(c.get(), *post, b64, headers);
  CURLcode rc = curl_easy_perform(c.get());
  if (rc != CURLE_OK) transfer_failed(opts, op, rc, errbuf, sink, tls, auth);
  Response r;
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &r.status);
  curl_off_t ra = -1;
  if (curl_easy_getinfo(c.get(), CURLINFO_RETRY_AFTER, &ra) == CURLE_OK) r.retry_after = static_cast<long long>(ra);
  char* ct = nullptr;
  if (curl_easy_getinfo(c.get(), CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct) r.content_type = ct;
  r.body = std::move(sink.body);
  return r;
}

std::string snippet(const Bytes& b) {
  std::string s;
  for (std::size_t i = 0; i < b.size() && s.size() < 160; ++i) {
    unsigned char ch = b[i];
    if (ch == '\n' || ch == '\r' || ch == '\t') ch = ' ';
    if (ch < 0x20 || ch > 0x7e) return {};
    s.push_back(static_cast<char>(ch));
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

[[noreturn]] void http_failure(const Options& opts, const std::string& op, const Response& r) {
  std::string snip = snippet(r.body);
  std::string msg = "The EST server at " + opts.url + " answered " + op + " with HTTP status " +
                    std::to_string(r.status) + (snip.empty() ? std::string(".") : ": " + snip + ".");
  if (r.status == 401)
    fail(ExitCode::Ca, msg,
         op == "simpleenroll" ? "Check --est-user and the password from --secret-source (they are not retried)."
                              : "The server did not accept the TLS client certificate; check it is the CA's and current.");
  if (r.status == 403)
    fail(ExitCode::Ca, msg, "The CA refused the request; ask its operator why.");
  if (r.status == 404)
    fail(ExitCode::Ca, msg, "Check the EST URL (the base is usually https://HOST/.well-known/est).");
  fail(ExitCode::Ca, msg, "The CA refused or failed to process the request; check its logs or ask its operator.");
}

std::vector<ossl::X509Ptr> certs_of(const Options& opts, const std::string& op, const Bytes& body) {
  auto der = decode_base64(std::string_view(reinterpret_cast<const char*>(body.data()), body.size()),
                           "the EST server's answer to " + op);
  const unsigned char* p = der.data();
  ossl::Pkcs7Ptr p7(d2i_PKCS7(nullptr, &p, static_cast<long>(der.size())));
  ERR_clear_error();
  if (!p7 || OBJ_obj2nid(p7->type) != NID_pkcs7_signed || !p7->d.sign || !p7->d.sign->cert ||
      sk_X509_num(p7->d.sign->cert) == 0)
    fail(ExitCode::Ca, "The EST server at " + opts.url + " answered " + op + " with something that is not a PKCS#7 certs-only message.",
         "Check that the URL is the EST base (…/.well-known/est).");
  std::vector<ossl::X509Ptr> out;
  for (int i = 0; i < sk_X509_num(p7->d.sign->cert); ++i) out.push_back(ossl::dup(sk_X509_value(p7->d.sign->cert, i)));
  return out;
}

std::vector<ossl::X509Ptr> enroll_op(const Options& opts, const std::string& op, X509_REQ* csr, const ClientAuth* auth) {
  auto trust = load_trust(opts);
  Bytes der = ossl::to_der(csr);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(std::max(opts.wait_seconds, 0));
  for (;;) {
    auto r = exchange(opts, trust, op, &der, auth);
    if (r.status == 200) return certs_of(opts, op, r.body);
    if (r.status != 202) http_failure(opts, op, r);
    long long after = r.retry_after > 0 ? r.retry_after : 1;
    auto left = std::chrono::duration_cast<std::chrono::seconds>(deadline - std::chrono::steady_clock::now()).count();
    if (opts.wait_seconds <= 0 || after > left)
      fail(ExitCode::Ca,
           "The EST server at " + opts.url + " accepted the request but has not issued the certificate yet (HTTP 202, retry after " +
               std::to_string(after) + " s)" +
               (opts.wait_seconds > 0 ? "; that is beyond --wait " + std::to_string(opts.wait_seconds) + " s." : "."),
           "Run the same command again later, or give --wait SECONDS to wait for it; nothing was written to the token.");
    if (opts.progress)
      opts.progress("The EST server holds the request (HTTP 202); asking again in " + std::to_string(after) + " s...");
    std::this_thread::sleep_for(std::chrono::seconds(after));
  }
}

} // namespace

Bytes decode_base64(std::string_view text, const std::string& what) {
  std::string clean;
  clean.reserve(text.size());
  for (char ch : text)
    if (!(ch == '\n' || ch == '\r' || ch == ' ' || ch == '\t')) clean.push_back(ch);
  if (clean.empty() || clean.size() % 4 != 0)
    fail(ExitCode::Ca, "Cannot read " + what + ": it is not base64.");
  Bytes out(clean.size() / 4 * 3 + 1);
  int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(clean.data()), static_cast<int>(clean.size()));
  if (n < 0) fail(ExitCode::Ca, "Cannot read " + what + ": it is not base64.");
  std::size_t pad = 0;
  if (clean.back() == '=') ++pad;
  if (clean.size() > 1 && clean[clean.size() - 2] == '=') ++pad;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

std::vector<ossl::X509Ptr> cacerts(const Options& opts) {
  auto trust = load_trust(opts);
  auto r = exchange(opts, trust, "cacerts", nullptr, nullptr);
  if (r.status != 200) http_failure(opts, "cacerts", r);
  return certs_of(opts, "cacerts", r.body);
}

namespace {
using SeqPtr = std::unique_ptr<ASN1_SEQUENCE_ANY, void (*)(ASN1_SEQUENCE_ANY*)>;

SeqPtr any_seq(const unsigned char* p, long len, bool set) {
  auto free_seq = [](ASN1_SEQUENCE_ANY* s) { sk_ASN1_TYPE_pop_free(s, ASN1_TYPE_free); };
  return SeqPtr(set ? d2i_ASN1_SET_ANY(nullptr, &p, len) : d2i_ASN1_SEQUENCE_ANY(nullptr, &p, len), free_seq);
}

std::string oid_name(const ASN1_OBJECT* o) {
  char buf[128];
  OBJ_obj2txt(buf, sizeof buf, o, 1);
  std::string s = buf;
  int nid = OBJ_obj2nid(o);
  if (nid != NID_undef && OBJ_nid2sn(nid)) s += std::string(" ") + OBJ_nid2sn(nid);
  return s;
}

// An extensionRequest attribute's values (SET OF Extensions): one CsrAttr per extension.
bool extension_values(const ASN1_TYPE* values, std::vector<CsrAttr>& out) {
  if (values->type != V_ASN1_SET) return false;
  auto set = any_seq(values->value.set->data, values->value.set->length, true);
  bool any = false;
  for (int i = 0; set && i < sk_ASN1_TYPE_num(set.get()); ++i) {
    const ASN1_TYPE* v = sk_ASN1_TYPE_value(set.get(), i);
    if (v->type != V_ASN1_SEQUENCE) continue;
    const unsigned char* q = v->value.sequence->data;
    ossl::ExtensionStackPtr exts(d2i_X509_EXTENSIONS(nullptr, &q, v->value.sequence->length));
    for (int k = 0; exts && k < sk_X509_EXTENSION_num(exts.get()); ++k) {
      X509_EXTENSION* e = sk_X509_EXTENSION_value(exts.get(), k);
      unsigned char* raw_der = nullptr;
      int len = i2d_X509_EXTENSION(e, &raw_der);
      ossl::BufferPtr der(raw_der);
      if (len <= 0) continue;
      out.push_back({oid_name(X509_EXTENSION_get_object(e)), ossl::Bytes(der.get(), der.get() + len)});
      any = true;
    }
  }
  ERR_clear_error();
  return any;
}
} // namespace

std::vector<CsrAttr> parse_csrattrs(const ossl::Bytes& der, const std::string& url) {
  auto seq = any_seq(der.data(), static_cast<long>(der.size()), false);
  ERR_clear_error();
  if (!seq) fail(ExitCode::Ca, "The EST server at " + url + " answered csrattrs with something that is not a CsrAttrs sequence.");
  std::vector<CsrAttr> out;
  for (int i = 0; i < sk_ASN1_TYPE_num(seq.get()); ++i) {
    ASN1_TYPE* t = sk_ASN1_TYPE_value(seq.get(), i);
    if (t->type == V_ASN1_OBJECT) {
      out.push_back({oid_name(t->value.object), {}});
    } else if (t->type == V_ASN1_SEQUENCE) { // Attribute { type, values }
      auto attr = any_seq(t->value.sequence->data, t->value.sequence->length, false);
      if (attr && sk_ASN1_TYPE_num(attr.get()) > 0 && sk_ASN1_TYPE_value(attr.get(), 0)->type == V_ASN1_OBJECT) {
        const ASN1_OBJECT* type = sk_ASN1_TYPE_value(attr.get(), 0)->value.object;
        bool ext_req = OBJ_obj2nid(type) == NID_ext_req;
        if (!(ext_req && sk_ASN1_TYPE_num(attr.get()) > 1 && extension_values(sk_ASN1_TYPE_value(attr.get(), 1), out)))
          out.push_back({oid_name(type), {}});
      }
      ERR_clear_error();
    }
  }
  return out;
}

std::vector<CsrAttr> csrattrs(const Options& opts) {
  auto trust = load_trust(opts);
  auto r = exchange(opts, trust, "csrattrs", nullptr, nullptr);
  if (r.status == 204 || r.status == 404 || (r.status == 200 && r.body.empty())) return {};
  if (r.status != 200) http_failure(opts, "csrattrs", r);
  auto der = decode_base64(std::string_view(reinterpret_cast<const char*>(r.body.data()), r.body.size()),
                           "the EST server's answer to csrattrs");
  return parse_csrattrs(der, opts.url);
}

std::vector<ossl::X509Ptr> simpleenroll(const Options& opts, X509_REQ* csr) {
  if (!opts.password)
    fail(ExitCode::Usage, "EST enrollment needs --est-user and --secret-source (the one-time password).");
  return enroll_op(opts, "simpleenroll", csr, nullptr);
}

std::vector<ossl::X509Ptr> simplereenroll(const Options& opts, X509_REQ* csr, const ClientAuth& auth) {
  return enroll_op(opts, "simplereenroll", csr, &auth);
}

} // namespace tokenprov::est
