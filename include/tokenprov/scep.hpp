// SPDX-License-Identifier: Apache-2.0
// SCEP client (RFC 8894) over libcurl and OpenSSL's PKCS#7.
//
// get_ca() asks the server for its capabilities and CA certificate(s) and
// checks them against a pinned SHA-256 fingerprint (or asks the user, or
// refuses). enroll() sends a PKCSReq signed with a transient self-signed
// certificate made from the CSR's subject and the caller's key, verifies the
// CertRep against the CA/RA certificates, decrypts the issued certificate with
// the same key and returns it with the CA chain. While the CA answers PENDING
// it polls (CertPoll) for up to Options::wait_seconds.
//
// The key is only used through EVP sign (RSA PKCS#1 v1.5) and EVP decrypt
// (RSA PKCS#1 v1.5), so a token-backed key (a legacy RSA key with its own
// RSA_METHOD) works; its private parts are never read. This layer knows no
// PKCS#11: the caller that made such a key hands in Options::key_error.
//
// Every failure that is the CA's or the network's is Error(ExitCode::Ca) with
// a sentence naming the URL; a malformed --ca-fingerprint, a non-http(s) URL or
// a non-RSA key is Error(Usage); the key refusing to sign or decrypt is
// Error(Token).
//
// scepserver (micromdm/scep) encrypts its CertRep with single DES-CBC; that
// cipher is taken from OpenSSL's legacy provider, loaded into a private
// library context (the process-wide default context is left alone).
#pragma once

#include "tokenprov/ossl.hpp"

#include <exception>
#include <functional>
#include <string>
#include <vector>

namespace tokenprov::scep {

struct Options {
  std::string url;                 // e.g. http://127.0.0.1:PORT/scep
  std::string ca_fingerprint;      // sha256 hex (any case, ':' allowed) of the CA cert (or of any cert
                                   // in the GetCACert answer); empty = not pinned
  bool interactive = false;        // without a fingerprint: interactive -> confirm_ca is asked;
                                   // non-interactive -> Error(Ca) printing the fingerprint
  int wait_seconds = 0;            // how long to keep polling a PENDING answer
  int poll_interval_seconds = 5;
  int http_timeout_seconds = 60;   // per HTTP request (connecting: at most 15 s of it)
  bool use_get = false;            // send PKIOperation as GET even if the server takes POST
  std::function<bool(const std::string& fingerprint, const std::string& subject)> confirm_ca;
  std::function<void(const std::string&)> progress; // step messages for stderr
  // Why the key's last sign or decrypt failed, when the caller can tell (a
  // token key: the bridge's take_token_error()); that error, with its exit
  // code, is reported instead of OpenSSL's. Empty, or null returned: OpenSSL's.
  std::function<std::exception_ptr()> key_error;
};

struct CaInfo {
  std::vector<ossl::X509Ptr> certs; // everything GetCACert returned, in its order
  ossl::X509Ptr ra_encrypt;         // the certificate requests are encrypted to (RA, else CA)
  ossl::X509Ptr ca;                 // the issuing CA certificate
  std::vector<std::string> caps;    // GetCACaps lines, as sent (empty if the server has none)
};

// GetCACaps + GetCACert and the fingerprint check (or confirmation).
CaInfo get_ca(const Options& opts);

struct Issued {
  ossl::X509Ptr cert;                // the certificate whose public key is the CSR's
  std::vector<ossl::X509Ptr> chain;  // CA certificates from GetCACert and from the CertRep
};

// csr: signed, with the challengePassword attribute (the caller builds it).
// key: RSA key able to sign and decrypt with PKCS#1 v1.5; its public key must be the CSR's.
Issued enroll(const Options& opts, X509_REQ* csr, EVP_PKEY* key);
// The same with the CA's answer a get_ca() call in this run already gave
// (GetCACaps and GetCACert are not asked again); the pin was checked there.
Issued enroll(const Options& opts, const CaInfo& ca, X509_REQ* csr, EVP_PKEY* key);

// RenewalReq (RFC 8894 section 3.3.1.2): the request signed with KEY and its
// CURRENT certificate (no challenge needed); the answer is encrypted to CURRENT
// and decrypted with KEY. CSR may be for KEY (renewal) or a new key (rekey).
Issued renew(const Options& opts, const CaInfo& ca, X509_REQ* csr, EVP_PKEY* key, X509* current);

// For many enrollments in one run (fleet): when OPTS names a CA and pins no
// fingerprint, asks the CA once with get_ca() (so confirmed through confirm_ca
// on a terminal, refused otherwise), pins its certificate's SHA-256
// fingerprint in OPTS and says so through progress. Nothing otherwise.
// (scep_pin.cpp)
void pin_ca(Options& opts);

// "AB:cd:..." -> 64 lower-case hex digits. Error(Usage) for anything that is
// not a SHA-256 fingerprint. An empty string stays empty.
std::string normalize_fingerprint(const std::string& fingerprint);

// True when CAPS (GetCACaps lines) contains CAP, compared case-insensitively.
bool has_cap(const std::vector<std::string>& caps, const std::string& cap);

} // namespace tokenprov::scep
