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

} // namespace tokenprov::cmp
