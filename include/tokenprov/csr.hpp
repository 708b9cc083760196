// SPDX-License-Identifier: Apache-2.0
// PKCS#10 certificate requests signed by the token key.
#pragma once

#include "tokenprov/keys.hpp"
#include "tokenprov/secret.hpp"

#include <string>
#include <vector>

namespace tokenprov {

struct CsrRequest {
  std::string subject;           // "/CN=Alice/O=Example"
  std::vector<std::string> sans; // "email:a@b", "dns:host", "uri:https://..", "upn:user@realm"
  SigScheme scheme = SigScheme::Default;
  const Secret* challenge = nullptr; // challengePassword attribute (SCEP)
  // The caller only writes the request out (provision --csr-dir): its key is
  // set with ossl::set_pubkey_direct, so X509_REQ_get0_pubkey() on the result
  // answers NULL. Saves OpenSSL 3.0's encoder round trip, a fifth of a
  // fleet's time per token outside the token.
  bool write_only = false;
  // Renewal (RFC 7030 section 4.2.2: the same subject and subjectAltName as
  // the certificate being renewed): subject and subjectAltName are copied from
  // this certificate; SUBJECT and SANS are then not used.
  X509* like = nullptr;
  // Further extensions for the request's extensionRequest (DER X509_EXTENSIONs:
  // what EST's /csrattrs asked for and the profile allows). One of the same
  // type as the subjectAltName above is not added.
  std::vector<ossl::Bytes> extensions = {};
};

// Builds the request, signs its body on the token with K, and checks the
// signature with the token's public key before returning it.
ossl::X509ReqPtr make_csr(const p11::Session& s, const KeyRef& k, const CsrRequest& req);

// The `csr` command's use case: the key SELECTOR names and a request signed by
// it (RSA-PSS is refused for a key that is not RSA, exit 2).
struct KeyCsr {
  KeyRef key;
  ossl::X509ReqPtr csr;
};
KeyCsr make_key_csr(const p11::Session& s, const std::string& selector, const CsrRequest& req);

// Parses "--san TYPE:VALUE" into a GENERAL_NAMES entry; Error(Usage) on a bad one.
void check_san(const std::string& san);

} // namespace tokenprov
