// SPDX-License-Identifier: Apache-2.0
// Picking up the certificate the CA issued: read it (PEM, DER, PKCS#7 with
// its chain), find the token key it belongs to, and write leaf and chain to
// the token, all or nothing.
#pragma once

#include "tokenprov/certs.hpp"
#include "tokenprov/fileio.hpp"
#include "tokenprov/keys.hpp"

#include <optional>
#include <string>
#include <vector>

namespace tokenprov {

struct PickupOptions {
  std::string ca_bundle;      // PEM/DER/PKCS#7 file of trusted CAs: the chain must verify
  bool allow_expired = false; // accept an expired or not yet valid certificate
  // The key the caller found the certificate for (provision): the leaf is
  // looked for with this key alone, without reading every key on the token.
  std::optional<KeyRef> key = std::nullopt;
};

struct PickupResult {
  KeyRef key;
  ossl::X509Ptr leaf;
  std::vector<ossl::X509Ptr> chain; // issuer first
  int written = 0;                  // certificates this run wrote
  int present = 0;                  // certificates that were on the token already
  std::vector<std::string> ignored; // subjects of certificates not in the leaf's chain
};

// Finds the leaf among CERTS by the token's keys (SubjectPublicKeyInfo),
// orders its chain, checks validity (and the chain against the bundle), then
// writes what is missing: the leaf under the key's CKA_ID and label
// (category 1), CA certificates as authorities (category 2). A failure
// removes whatever this call created.
PickupResult pickup_certificates(p11::Session& s, std::vector<ossl::X509Ptr> certs, const PickupOptions& opts,
                                 const std::string& source);

// Writes one certificate object; returns its handle.
CK_OBJECT_HANDLE write_certificate(p11::Session& s, X509* cert, const std::string& label, const p11::Bytes& id,
                                   bool authority);
// K's certificate on the token: same CKA_ID and public key SPKI (DER); the
// newest when several were picked up (renewals); null when there is none.
ossl::X509Ptr find_leaf_certificate(const p11::Session& s, const KeyRef& k, const ossl::Bytes& spki);

// The certificate objects on the token holding exactly CERT's DER.
std::vector<CK_OBJECT_HANDLE> find_certificate(const p11::Session& s, X509* cert);

// Label for an authority certificate: its subject CN, else OU, else O, else the whole subject.
std::string cert_label(X509* cert);

} // namespace tokenprov
