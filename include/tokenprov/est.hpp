// SPDX-License-Identifier: Apache-2.0
// EST client (RFC 7030, with RFC 8951's clarifications) over libcurl and OpenSSL.
//
// Trust in the server is the --ca-bundle alone: the TLS handshake verifies the
// server against an X509_STORE made from that file only (no system store, no
// CA path); a server it does not verify gets no request. /cacerts is the CA
// chain the tool writes to the token; /simpleenroll authenticates with HTTP
// Basic (RFC 7030 section 3.2.3); /simplereenroll with the TLS client
// certificate and its key, which may be a token key (token_rsa_pkey(): the
// private key never leaves the token). A 202 answer with Retry-After is
// waited for within Options::wait_seconds.
//
// Every failure that is the server's or the network's is Error(Ca) naming the
// URL; a bundle that cannot be read is Error(BadInput). A token key that
// fails in the handshake shows here as Error(Ca); the caller that made the key
// asks the bridge (take_token_error()) for the token's own error.
#pragma once

#include "tokenprov/ossl.hpp"
#include "tokenprov/secret.hpp"

#include <functional>
#include <string>
#include <vector>

namespace tokenprov::est {

struct Options {
  std::string url;                   // the EST base, e.g. https://ca:8443/.well-known/est[/label]
  std::string ca_bundle;             // PEM/DER/PKCS#7 file: the TLS trust anchors, and nothing else
  std::string user;                  // HTTP Basic user (simpleenroll)
  const Secret* password = nullptr;  // HTTP Basic password (simpleenroll)
  int wait_seconds = 0;              // how long 202 + Retry-After is waited for (0: not at all)
  int http_timeout_seconds = 60;     // per request (connecting: at most 15 s of it)
  std::function<void(const std::string&)> progress;
};

// The TLS client certificate and its key (simplereenroll).
struct ClientAuth {
  EVP_PKEY* key = nullptr; // may be a token key (token_rsa_pkey)
  X509* cert = nullptr;
};

// GET /cacerts: the CA certificates (base64 PKCS#7 certs-only).
std::vector<ossl::X509Ptr> cacerts(const Options& opts);

// One thing /csrattrs asks the request to hold.
struct CsrAttr {
  // The OID in dotted form with its short name when OpenSSL knows one
  // ("1.2.840.113549.1.9.7 challengePassword", "2.5.29.37 extendedKeyUsage").
  std::string name;
  // An extension the CA gave a value for (in an extensionRequest attribute,
  // RFC 8951 section 3.3): its DER X509_EXTENSION; empty when only the OID was asked.
  ossl::Bytes extension;
};

// GET /csrattrs: what the CA asks the request to hold. An extensionRequest
// attribute with values yields one entry per extension in it. Empty when the
// server has none (204, 404).
std::vector<CsrAttr> csrattrs(const Options& opts);
// The CsrAttrs DER of an answer (the parser of csrattrs()); Error(Ca) naming URL when it is not one.
std::vector<CsrAttr> parse_csrattrs(const ossl::Bytes& der, const std::string& url);

// POST /simpleenroll (HTTP Basic) or /simplereenroll (TLS client auth, no
// password): the certificates of the answer, the issued one among them.
std::vector<ossl::X509Ptr> simpleenroll(const Options& opts, X509_REQ* csr);
std::vector<ossl::X509Ptr> simplereenroll(const Options& opts, X509_REQ* csr, const ClientAuth& auth);

// Base64 with line breaks and blanks allowed; Error(Ca) naming WHAT when it is not base64.
ossl::Bytes decode_base64(std::string_view text, const std::string& what);

} // namespace tokenprov::est
