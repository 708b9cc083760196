// SPDX-License-Identifier: Apache-2.0
// The certificate lifecycle on the token: renew (a new certificate for the
// same key) and rekey (a new key; the old key and certificate are kept,
// relabelled as archived, never deleted). Enrollment over EST is enroll()'s
// (enroll.hpp, EnrollProtocol::Est).
#pragma once

#include "tokenprov/enroll.hpp"
#include "tokenprov/est.hpp"

#include <functional>
#include <optional>

namespace tokenprov {

// ---- renew and rekey ------------------------------------------------------------------------
// The CA exchange of a renewal: given the current key and certificate (which
// authenticate the request), the key to certify (TARGET: the same key, or the
// new one with --rekey) and its CSR (signed by TARGET, with the current
// certificate's subject and subjectAltName), the CA's certificates (the issued
// one among them, its chain beside it). Nothing on the token has changed when
// it returns; renew() writes afterwards and undoes its writes on failure.
// CMP (kur, RFC 9483 section 4.1.3) plugs in here: the lead wires
// RenewRequest::cmp_kur to the CMP client's key update after the cmp merge
// (the CMP client confirms with certConf; if it needs the write before
// certConf, it can take renew()'s write as its store step).
using RenewExchange = std::function<std::vector<ossl::X509Ptr>(p11::Session& s, const KeyRef& current,
                                                               X509* current_cert, const KeyRef& target, X509_REQ* csr)>;

struct RenewRequest {
  std::string key;    // selector of the key whose certificate is renewed
  bool rekey = false; // a new key pair; the old one archived
  EnrollProtocol protocol = EnrollProtocol::Est; // the one protocol enum (enroll.hpp)
  est::Options est;   // protocol est (no password: TLS client auth with the current certificate)
  scep::Options scep; // protocol scep (RenewalReq signed with the current key and certificate)
  // protocol cmp: the CMP client's key update (cmp_kur()), wired by the caller.
  // Unset: Error(Usage) saying CMP renewal is not available in this build.
  RenewExchange cmp_kur;
  std::function<void(const std::string&)> progress;
};

struct RenewResult {
  KeyRef key;                    // the key that holds the new certificate (the new one with --rekey)
  std::optional<KeyRef> archived_key; // --rekey: the old key, under its old CKA_ID
  std::string archived_label;    // --rekey: the old key's and certificate's new label
  ossl::X509Ptr cert;            // the new certificate
  ossl::X509Ptr old_cert;        // the certificate it replaces
  std::string old_cert_state;    // "deleted" (renew: same key) or "archived" (rekey)
  std::vector<ossl::X509Ptr> chain;
  int ca_written = 0;
};

// The label an archived object gets: "LABEL (archived YYYY-MM-DD)".
std::string archived_label(const std::string& label, std::time_t when);
// Whether LABEL is one archived_label() made (such a key is never renewed again).
bool is_archived_label(const std::string& label);

// The CMP key update (kur, RFC 4210 section 5.3.5) as renew()'s exchange,
// signed with the current key and certificate (src/flows/renew_cmp.cpp).
RenewExchange cmp_kur_exchange(const cmp::Options& opts);

// Renews (or rekeys) the certificate of REQ.key, all or nothing: the new
// certificate is checked against the key before anything on the token
// changes; any failure after that puts the token back as it was (the new key
// removed, the labels restored, the new certificate removed).
RenewResult renew(p11::Session& s, const RenewRequest& req);

} // namespace tokenprov
