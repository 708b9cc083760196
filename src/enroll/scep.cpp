// SPDX-License-Identifier: Apache-2.0
// SCEP client, RFC 8894: PKCSReq and RenewalReq sent, CertPoll while the CA
// answers PENDING. The CA discovery is scep_ca.cpp, the messages
// scep_request.cpp and scep_certrep.cpp, the HTTP transport scep_http.cpp.
#include "tokenprov/scep.hpp"

#include "scep_detail.hpp"
#include "scep_http.hpp"
#include "tokenprov/interrupt.hpp"

#include <openssl/crypto.h>
#include <openssl/objects.h>

#include <algorithm>
#include <chrono>

namespace tokenprov::scep {

using ossl::Bytes;
using ossl::X509Ptr;
using namespace detail;

namespace {

std::string base64(const Bytes& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), in.data(), static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

const EVP_CIPHER* pick_cipher(const std::vector<std::string>& caps) {
  if (has_cap(caps, "AES") || has_cap(caps, "SCEPStandard")) return EVP_aes_128_cbc();
  return EVP_des_ede3_cbc();
}

const EVP_MD* pick_md(const std::vector<std::string>& caps) {
  if (has_cap(caps, "SHA-256") || has_cap(caps, "SCEPStandard")) return EVP_sha256();
  if (has_cap(caps, "SHA-512")) return EVP_sha512();
  if (has_cap(caps, "SHA-1")) return EVP_sha1();
  return EVP_sha256();
}

// Checks the request and its key before anything is sent; returns the CSR's public key.
EVP_PKEY* checked_request(const Options& opts, X509_REQ* csr, EVP_PKEY* key, bool renewal = false) {
  if (!csr || !key) fail(ExitCode::Internal, "scep::enroll needs a CSR and a key.");
  EVP_PKEY* csr_pub = X509_REQ_get0_pubkey(csr);
  if (!csr_pub) ossl::fail_ssl(ExitCode::BadInput, "The certificate request has no readable public key");
  if (EVP_PKEY_get_base_id(csr_pub) != EVP_PKEY_RSA)
    fail(ExitCode::Usage, "SCEP enrollment needs an RSA key; this request's key is not RSA.",
         "Generate the key with --algorithm rsa2048 (or rsa3072/rsa4096) for SCEP.");
  if (renewal) return csr_pub; // RenewalReq: signed by the current key, which a rekey's request does not carry
  if (ossl::spki_der(csr_pub) != ossl::spki_der(key))
    fail(ExitCode::Internal, "The certificate request's public key is not the enrollment key's.");
  if (X509_REQ_get_attr_by_NID(csr, NID_pkcs9_challengePassword, -1) < 0)
    say(opts, "Note: the certificate request carries no challenge password");
  return csr_pub;
}

Issued enroll_with(const Options& opts, const CaInfo& ca, X509_REQ* csr, EVP_PKEY* key, EVP_PKEY* csr_pub,
                   X509* current = nullptr) {
  Request rq;
  // PKCSReq: a transient self-signed signer; RenewalReq: the current certificate (RFC 8894 section 3.3.1.2).
  X509Ptr signer = current ? ossl::dup(current) : make_signer_cert(opts, csr, key);
  rq.signer = signer.get();
  const char* req_type = current ? kRenewalReq : kPkcsReq;
  const std::string req_name = current ? "RenewalReq" : "PKCSReq";
  rq.key = key;
  rq.recipient = ca.ra_encrypt.get();
  rq.cipher = pick_cipher(ca.caps);
  rq.md = pick_md(ca.caps);
  rq.transaction_id = ossl::sha256_hex(ossl::spki_der(csr_pub));
  const bool post = !opts.use_get && (has_cap(ca.caps, "POSTPKIOperation") || has_cap(ca.caps, "SCEPStandard"));

  auto send = [&](const char* type, const Bytes& inner, const std::string& name) {
    Bytes nonce = random_bytes(16);
    Bytes msg = build_message(opts, rq, type, nonce, inner);
    Bytes r;
    if (post) {
      r = http(opts, op_url(opts.url, "PKIOperation"), "PKIOperation (" + name + ")", &msg);
    } else {
      std::string u = op_url(opts.url, "PKIOperation") + "&message=" + url_escape(base64(msg));
      r = http(opts, u, "PKIOperation (" + name + ")", nullptr);
    }
    return parse_cert_rep(opts, ca, r, rq.transaction_id, nonce);
  };

  Bytes csr_der = ossl::to_der(csr);
  say(opts, "Sending the enrollment request (" + req_name + ", " + (post ? "POST" : "GET") + ", " +
                OBJ_nid2sn(EVP_CIPHER_get_nid(rq.cipher)) + ", transaction " + rq.transaction_id + ")");
  CertRep rep;
  try {
    rep = send(req_type, csr_der, req_name);
  } catch (...) {
    OPENSSL_cleanse(csr_der.data(), csr_der.size()); // it carries the challenge password
    throw;
  }
  OPENSSL_cleanse(csr_der.data(), csr_der.size());

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(std::max(0, opts.wait_seconds));
  while (rep.status == "3") {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline)
      fail(ExitCode::Ca,
           "The enrollment request (transaction " + rq.transaction_id + ") is still pending at the CA " + opts.url +
               (opts.wait_seconds > 0 ? " after waiting " + std::to_string(opts.wait_seconds) + " seconds." : "."),
           "Ask the CA operator to approve it, then run the same command again later with the same key.");
    auto step = std::chrono::seconds(std::max(1, opts.poll_interval_seconds));
    auto left = std::chrono::duration_cast<std::chrono::seconds>(deadline - now);
    if (left < step) step = std::max(left, std::chrono::seconds(1));
    say(opts, "The CA has not decided yet (PENDING); asking again in " + std::to_string(step.count()) + " s");
    interruptible_sleep(step, ExitCode::Ca, "while the enrollment request was pending at the CA " + opts.url);
    rep = send(kCertPoll, issuer_and_subject(ca.ca.get(), csr), "CertPoll");
  }

  if (rep.status == "2") {
    std::string sentence = fail_sentence(rep.fail_info);
    if (!rep.fail_text.empty())
      sentence += " (the CA says: " + body_snippet(Bytes(rep.fail_text.begin(), rep.fail_text.end())) + ")";
    fail(ExitCode::Ca, "The CA at " + opts.url + " rejected the enrollment request: " + sentence + ".",
         fail_hint(rep.fail_info));
  }
  if (rep.status != "0") protocol_error(opts, "the pkiStatus '" + rep.status + "' is not one SCEP defines");

  say(opts, "The CA issued the certificate; decrypting it");
  Issued out = open_success(opts, ca, rep, csr, key, signer.get());
  say(opts, "Issued: " + subject_of(out.cert.get()) + ", serial " + ossl::serial_hex(out.cert.get()));
  return out;
}
} // namespace

Issued enroll(const Options& opts, X509_REQ* csr, EVP_PKEY* key) {
  EVP_PKEY* csr_pub = checked_request(opts, csr, key);
  CaInfo ca = get_ca(opts);
  return enroll_with(opts, ca, csr, key, csr_pub);
}

Issued enroll(const Options& opts, const CaInfo& ca, X509_REQ* csr, EVP_PKEY* key) {
  EVP_PKEY* csr_pub = checked_request(opts, csr, key);
  if (!ca.ca || !ca.ra_encrypt) fail(ExitCode::Internal, "scep::enroll was given an empty CaInfo.");
  return enroll_with(opts, ca, csr, key, csr_pub);
}

Issued renew(const Options& opts, const CaInfo& ca, X509_REQ* csr, EVP_PKEY* key, X509* current) {
  if (!current) fail(ExitCode::Internal, "scep::renew needs the current certificate.");
  EVP_PKEY* csr_pub = checked_request(opts, csr, key, true);
  if (ossl::spki_der(current) != ossl::spki_der(key))
    fail(ExitCode::Internal, "The current certificate is not the signing key's.");
  if (!ca.ca || !ca.ra_encrypt) fail(ExitCode::Internal, "scep::renew was given an empty CaInfo.");
  return enroll_with(opts, ca, csr, key, csr_pub, current);
}

} // namespace tokenprov::scep
