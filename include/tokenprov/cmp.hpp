// SPDX-License-Identifier: Apache-2.0
// CMP client (RFC 4210/9480, Lightweight CMP Profile RFC 9483) on OpenSSL
// 3.0's OSSL_CMP_CTX. Messages travel over our libcurl code (src/http.cpp)
// through OSSL_CMP_CTX's transfer callback: HTTPS with the system's trust,
// the same 60 s bound and the same error sentences as SCEP, and no second
// HTTP client in the process.
//
// The first request is MAC-protected (PBM) with the out-of-band reference
// (senderKID) and the shared secret. The request is an ir whose proof of
// possession is signed by the token key through our RSA bridge
// (token_pkey.hpp), or a p10cr carrying a CSR signed on the token (any key
// type: EC keys always go this way). The CA's answers are verified:
// signature-protected ones against --ca-bundle or the certificate with
// --ca-fingerprint; MAC-protected ones by the shared secret (the result says
// so). The issued certificate must carry the token key; its chain (caPubs,
// extraCerts) must reach the bundle or the fingerprint. The caller's STORE
// function writes it; certConf goes out only after STORE returned.
//
// Failures that are the CA's or the network's: Error(Ca) with the server's
// PKIStatus, status strings and failInfo; bad options: Error(Usage).
#pragma once

#include "tokenprov/keys.hpp"
#include "tokenprov/secret.hpp"

#include <functional>
#include <string>
#include <vector>

namespace tokenprov::cmp {

enum class RequestKind {
  Auto,  // ir with the token key's POPO for RSA keys, p10cr for others
  Ir,    // ir (RSA keys: the bridge signs the POPO)
  P10cr, // p10cr with a CSR signed on the token
};

struct Options {
  std::string url;            // http(s)://host[:port]/path
  std::string reference;      // the out-of-band reference (senderKID of the MAC-protected request)
  std::string ca_fingerprint; // normalized SHA-256 hex of a CA certificate (see scep::normalize_fingerprint)
  std::string ca_bundle;      // file of trusted CA certificates
  RequestKind request = RequestKind::Auto;
  int wait_seconds = 0;         // total time polling (checkAfter) may take; 0: do not wait
  int http_timeout_seconds = 60;
  std::function<void(const std::string&)> progress; // step messages for stderr
};

struct Issued {
  ossl::X509Ptr cert;
  std::vector<ossl::X509Ptr> chain; // caPubs and extraCerts as the CA sent them
  bool mac_only = false;            // the CA's answers were protected by the shared secret alone
  int polls = 0;                    // pollReq messages sent
};

// What the caller does with the issued certificate before certConf is sent
// (write it to the token); a throw makes the client reject the certificate
// (certConf with failInfo) and the exception is rethrown.
using StoreFn = std::function<void(const Issued&)>;

// ir/p10cr + polling + certConf. SECRET: the shared secret for the MAC.
Issued enroll(const Options& opts, p11::Session& s, const KeyRef& key, const std::string& subject,
              const std::vector<std::string>& sans, const Secret& secret, const StoreFn& store);

// Key update (kur, RFC 4210 section 5.3.5): a new certificate for the same
// KEY, the request signed with KEY and its CURRENT certificate (signature
// protection; no shared secret). KEY must be an RSA key (our OpenSSL bridge,
// token_pkey.hpp; Error(Usage) otherwise). The answer is checked as for
// enroll(); STORE writes the new certificate and certConf follows only when it
// returned. Polls within opts.wait_seconds. Failures: Error(Ca) with the CA's
// status. For the `renew` command (issue 17).
Issued kur(const Options& opts, p11::Session& s, const KeyRef& key, X509* current, const StoreFn& store);

// Revocation request (rr) for CERT, KEY's certificate. Protected with the
// reference and SECRET (MAC) when SECRET is given, else signed with KEY and
// CERT (RSA keys). REASON: a CRLReason code (0..10 without 7) or -1 for none.
// The token is not changed. Failures: Error(Ca) with the CA's status.
void revoke(const Options& opts, p11::Session& s, const KeyRef& key, X509* cert, int reason, const Secret* secret);

// "keyCompromise" (any case) or "1" -> 1; "" -> -1; Error(Usage) listing the names.
int parse_revocation_reason(const std::string& reason);

} // namespace tokenprov::cmp
