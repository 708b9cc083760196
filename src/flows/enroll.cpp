// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/enroll.hpp"

#include "tokenprov/interrupt.hpp"
#include "tokenprov/token_pkey.hpp"
#include "tokenprov/uri.hpp"

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <openssl/err.h>
#include <openssl/objects.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <set>
#include <utility>

namespace tokenprov {

EnrollProtocol parse_protocol(const std::string& name) {
  std::string n = name;
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (n == "scep") return EnrollProtocol::Scep;
  if (n == "cmp") return EnrollProtocol::Cmp;
  if (n == "est") return EnrollProtocol::Est;
  fail(ExitCode::Usage, "Unknown enrollment protocol '" + name + "'.", "Use --protocol scep, cmp or est.");
}

std::string protocol_name(EnrollProtocol p) {
  switch (p) {
  case EnrollProtocol::Scep: return "scep";
  case EnrollProtocol::Cmp: return "cmp";
  case EnrollProtocol::Est: return "est";
  }
  return "scep";
}

const std::string& enroll_url(const EnrollRequest& req) {
  static const std::string none;
  switch (req.protocol) {
  case EnrollProtocol::Scep: return req.scep.url;
  case EnrollProtocol::Cmp: return req.cmp.url;
  case EnrollProtocol::Est: return req.est.url;
  }
  return none;
}

namespace {
void say(const EnrollRequest& req, const std::string& line) {
  auto& progress = req.protocol == EnrollProtocol::Cmp   ? req.cmp.progress
                   : req.protocol == EnrollProtocol::Est ? req.est.progress
                                                         : req.scep.progress;
  if (progress) progress(line);
}

// What the protocol learns before a key is made (SCEP: the CA, pinned).
struct Prepared {
  std::string fingerprint;
  scep::CaInfo scep_ca;
  scep::Options scep;
  std::vector<ossl::X509Ptr> est_cacerts;  // EST: /cacerts, the chain written
  std::vector<est::CsrAttr> est_csrattrs;  // EST: what /csrattrs asked for
};

// ---- SCEP ----
void prepare_scep(const EnrollRequest& req, Prepared& p) {
  if (req.algorithm != Algorithm::Rsa2048 && req.algorithm != Algorithm::Rsa3072 && req.algorithm != Algorithm::Rsa4096)
    fail(ExitCode::Usage, "SCEP enrollment needs an RSA key; " + algorithm_name(req.algorithm) + " cannot be used.",
         "Choose --algorithm rsa2048 (or rsa3072, rsa4096), or --protocol cmp.");
  say(req, "Asking the CA at " + req.scep.url + " for its certificate...");
  p.scep_ca = scep::get_ca(req.scep);
  p.fingerprint = ossl::cert_fingerprint_sha256(p.scep_ca.ca.get());
  p.scep = req.scep;
  if (p.scep.ca_fingerprint.empty()) p.scep.ca_fingerprint = p.fingerprint; // confirmed once: do not ask again
}

EnrollResult run_scep(p11::Session& s, const KeyRef& k, const EnrollRequest& req, const Secret& challenge,
                      Prepared& p) {
  check_interrupt(ExitCode::Ca, "before the request was sent");
  EnrollResult r;
  r.key = k;
  r.ca_fingerprint = p.fingerprint;
  CsrRequest creq{req.subject, req.sans, SigScheme::Default, &challenge};
  auto csr = make_csr(s, k, creq);
  auto pkey = token_rsa_pkey(s, k);
  p.scep.key_error = take_token_error; // the token's own error when the key fails
  say(req, "Sending the request to " + p.scep.url + "...");
  auto issued = scep::enroll(p.scep, p.scep_ca, csr.get(), pkey.get()); // the CA's answer from prepare: asked once
  std::vector<ossl::X509Ptr> certs;
  certs.push_back(std::move(issued.cert));
  for (auto& c : issued.chain) certs.push_back(std::move(c));
  say(req, "Writing the certificate and its chain to the token...");
  r.pickup = pickup_certificates(s, std::move(certs), {"", req.allow_expired}, p.scep.url);
  if (r.pickup.key.id != k.id)
    fail(ExitCode::Ca, "The CA at " + p.scep.url + " issued a certificate for another key.");
  return r;
}

// ---- CMP ----
void prepare_cmp(const EnrollRequest& req, Prepared&) {
  if (req.cmp.url.empty()) fail(ExitCode::Usage, "CMP enrollment needs --cmp-url.");
  if (req.cmp.ca_bundle.empty() && req.cmp.ca_fingerprint.empty())
    fail(ExitCode::Usage, "CMP enrollment needs the CA's trust anchor: --ca-bundle FILE or --ca-fingerprint SHA256HEX.",
         "Take the fingerprint or the CA certificate from your CA's enrollment mail or web page.");
}

// Removes the certificates a pickup wrote (the leaf, and CA certificates that
// were not on the token before it). Errors swallowed: used for roll-back.
void remove_written(const p11::Session& s, const std::vector<ossl::Bytes>& before_missing) noexcept {
  try {
    for (auto& der : before_missing) {
      auto c = ossl::cert_from_der(der);
      for (auto h : find_certificate(s, c.get())) s.destroy(h);
    }
  } catch (...) {
  }
}

EnrollResult run_cmp(p11::Session& s, const KeyRef& k, const EnrollRequest& req, const Secret& secret, Prepared&) {
  EnrollResult r;
  r.key = k;
  std::vector<ossl::Bytes> written; // DER of what the store step wrote (for roll-back after it)
  bool stored = false;
  PickupOptions po{req.cmp.ca_bundle, req.allow_expired, k};
  auto store = [&](const cmp::Issued& is) {
    std::vector<ossl::X509Ptr> certs;
    certs.push_back(ossl::dup(is.cert.get()));
    for (auto& c : is.chain) certs.push_back(ossl::dup(c.get()));
    for (auto& c : certs)
      if (find_certificate(s, c.get()).empty()) written.push_back(ossl::to_der(c.get()));
    say(req, "Writing the certificate and its chain to the token...");
    r.pickup = pickup_certificates(s, std::move(certs), po, req.cmp.url);
    stored = true;
    if (r.pickup.key.id != k.id) {
      remove_written(s, written);
      fail(ExitCode::Ca, "The CA at " + req.cmp.url + " issued a certificate for another key; nothing was kept.");
    }
  };
  try {
    auto issued = cmp::enroll(req.cmp, s, k, req.subject, req.sans, secret, store);
    r.polls = issued.polls;
    r.trust_note = issued.mac_only
                       ? "The CA's answers were protected by the shared secret (MAC) only, as RFC 9483 allows for "
                         "this first enrollment; the certificate's chain was checked against " +
                             std::string(req.cmp.ca_bundle.empty() ? "--ca-fingerprint." : "--ca-bundle.")
                       : "The CA's answers were signed by a certificate verified against " +
                             std::string(req.cmp.ca_bundle.empty() ? "--ca-fingerprint." : "--ca-bundle.");
    r.ca_fingerprint = req.cmp.ca_fingerprint;
  } catch (...) {
    if (stored) remove_written(s, written); // certConf failed after the write: the CA did not take the pickup
    throw;
  }
  return r;
}

// ---- EST ----
// /cacerts first: the TLS trust (--ca-bundle alone) is checked before a key is made.
void prepare_est(const EnrollRequest& req, Prepared& p) {
  if (req.est.url.empty()) fail(ExitCode::Usage, "EST enrollment needs --est-url.");
  if (req.est.user.empty()) fail(ExitCode::Usage, "EST enrollment needs --est-user (and --secret-source for the password).");
  say(req, "Asking the EST server at " + req.est.url + " for its CA certificates...");
  p.est_cacerts = est::cacerts(req.est);
  try {
    p.est_csrattrs = est::csrattrs(req.est);
  } catch (const Error& e) {
    say(req, std::string("The EST server's /csrattrs could not be read (") + e.what() + "); the request is made without it.");
  }
}

bool sig_alg_matches(int nid, CK_KEY_TYPE kt) {
  return (kt == CKK_RSA && nid == NID_sha256WithRSAEncryption) || (kt == CKK_EC && nid == NID_ecdsa_with_SHA256) ||
         (kt == CKK_EC_EDWARDS && nid == NID_ED25519);
}

// The dotted form of an OID given by name or dotted ("" when OpenSSL reads neither).
std::string dotted_oid(const std::string& text) {
  ASN1_OBJECT* o = OBJ_txt2obj(text.c_str(), 0);
  char buf[128] = {0};
  if (o) OBJ_obj2txt(buf, sizeof buf, o, 1);
  ASN1_OBJECT_free(o);
  ERR_clear_error();
  return buf;
}

// /csrattrs sorted: what the request carries anyway (the key's signature algorithm, the
// subjectAltNames given, the subject's CN) and the extensions the CA gave a value for that
// REQ.csrattrs_allow names (added to CREQ) are applied; the rest is ignored, and said why.
void sort_csrattrs(const std::vector<est::CsrAttr>& asked, const KeyRef& k, const EnrollRequest& req,
                   CsrRequest& creq, EnrollResult& r) {
  std::vector<std::string> not_allowed, no_value;
  for (auto& a : asked) {
    std::string dotted = a.name.substr(0, a.name.find(' '));
    int nid = OBJ_txt2nid(dotted.c_str());
    ERR_clear_error();
    bool have_sans = !req.sans.empty();
    bool allowed = std::any_of(req.csrattrs_allow.begin(), req.csrattrs_allow.end(),
                               [&](const std::string& x) { return dotted_oid(x) == dotted; });
    if (sig_alg_matches(nid, k.type) || ((nid == NID_ext_req || nid == NID_subject_alt_name) && have_sans) ||
        nid == NID_commonName) {
      r.csrattrs_applied.push_back(a.name);
    } else if (allowed && !a.extension.empty()) {
      creq.extensions.push_back(a.extension);
      r.csrattrs_applied.push_back(a.name);
    } else {
      r.csrattrs_ignored.push_back(a.name);
      (allowed ? no_value : not_allowed).push_back(a.name);
    }
  }
  auto join = [](const std::vector<std::string>& v) {
    std::string list;
    for (auto& x : v) list += (list.empty() ? "" : ", ") + x;
    return list;
  };
  if (!creq.extensions.empty())
    say(req, "Adding to the request what the EST server asks for and the profile allows: " +
                 std::to_string(creq.extensions.size()) + " extension(s).");
  if (!not_allowed.empty())
    say(req, "The EST server asks for attributes the profile does not allow ([est] csrattrs_allow), ignored: " +
                 join(not_allowed) + ".");
  if (!no_value.empty())
    say(req, "The EST server names attributes without a value to put in the request, ignored: " + join(no_value) + ".");
}

EnrollResult run_est(p11::Session& s, const KeyRef& k, const EnrollRequest& req, const Secret& password, Prepared& p) {
  EnrollResult r;
  r.key = k;
  CsrRequest creq{req.subject, req.sans, SigScheme::Default, nullptr};
  sort_csrattrs(p.est_csrattrs, k, req, creq, r);
  auto csr = make_csr(s, k, creq);
  est::Options opts = req.est;
  opts.password = &password;
  say(req, "Sending the request to " + req.est.url + "/simpleenroll...");
  auto answer = est::simpleenroll(opts, csr.get());
  auto spki = ossl::spki_der(public_key(s, k).get());
  std::vector<ossl::X509Ptr> certs;
  for (auto& c : answer)
    if (certs.empty() && ossl::spki_der(c.get()) == spki) certs.push_back(std::move(c));
  if (certs.empty())
    fail(ExitCode::Ca, "The EST server at " + req.est.url + " issued a certificate for another key; nothing was written.");
  for (auto& c : p.est_cacerts) certs.push_back(ossl::dup(c.get())); // the chain written is /cacerts'
  say(req, "Writing the certificate and its chain to the token...");
  PickupOptions po;
  po.allow_expired = req.allow_expired;
  po.key = k;
  r.pickup = pickup_certificates(s, std::move(certs), po, req.est.url);
  return r;
}

// ---- dispatch: the one place that knows the protocols ----
void prepare(const EnrollRequest& req, Prepared& p) {
  switch (req.protocol) {
  case EnrollProtocol::Scep: return prepare_scep(req, p);
  case EnrollProtocol::Cmp: return prepare_cmp(req, p);
  case EnrollProtocol::Est: return prepare_est(req, p);
  }
  fail(ExitCode::Usage, "Enrollment over " + protocol_name(req.protocol) + " is not available in this build.");
}

EnrollResult run(p11::Session& s, const KeyRef& k, const EnrollRequest& req, const Secret& secret, Prepared& p) {
  switch (req.protocol) {
  case EnrollProtocol::Scep: return run_scep(s, k, req, secret, p);
  case EnrollProtocol::Cmp: return run_cmp(s, k, req, secret, p);
  case EnrollProtocol::Est: return run_est(s, k, req, secret, p);
  }
  fail(ExitCode::Usage, "Enrollment over " + protocol_name(req.protocol) + " is not available in this build.");
}

// The subject's attributes as a multiset (type, UTF-8 value): a CA may order
// the RDNs of the subject it issues otherwise than the request did.
std::multiset<std::pair<int, std::string>> dn_parts(const X509_NAME* n) {
  std::multiset<std::pair<int, std::string>> out;
  for (int i = 0; i < X509_NAME_entry_count(n); ++i) {
    const X509_NAME_ENTRY* e = X509_NAME_get_entry(n, i);
    unsigned char* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
    out.emplace(OBJ_obj2nid(X509_NAME_ENTRY_get_object(e)),
                len >= 0 ? std::string(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(len)) : std::string());
    OPENSSL_free(utf8);
  }
  return out;
}

struct Earlier {
  KeyRef key;
  ossl::X509Ptr cert; // set when that run finished: the certificate for the subject asked for is on the token
};

std::optional<Earlier> unfinished_key(p11::Session& s, const EnrollRequest& req) {
  const std::string& label = req.policy.label;
  if (label.empty()) return std::nullopt;
  p11::Attributes pt;
  pt.add_class(CKO_PRIVATE_KEY).add_string(CKA_LABEL, label);
  auto privs = s.find(pt, 2);
  if (privs.empty()) {
    p11::Attributes lt;
    lt.add_class(CKO_PUBLIC_KEY).add_string(CKA_LABEL, label);
    for (auto h : s.find(lt)) {
      p11::Attributes mate;
      mate.add_class(CKO_PRIVATE_KEY).add_bytes(CKA_ID, s.attr_bytes(h, CKA_ID).value_or(p11::Bytes{}));
      if (s.attr_bool(h, CKA_LOCAL).value_or(false) && s.find(mate, 1).empty()) {
        say(req, "Removing the public key '" + label + "' an interrupted run left without its private key...");
        s.destroy(h);
      }
    }
    return std::nullopt;
  }
  if (privs.size() != 1) return std::nullopt;
  KeyRef k = find_key(s, "id:" + to_hex(s.attr_bytes(privs[0], CKA_ID).value_or(p11::Bytes{})));
  if (k.priv != privs[0]) return std::nullopt;
  if (k.type != key_type_of(req.algorithm) || !s.attr_bool(k.priv, CKA_LOCAL).value_or(false)) return std::nullopt;
  if (s.attr_bool(k.priv, CKA_EXTRACTABLE).value_or(false) != req.policy.exportable) return std::nullopt;
  k = complete_key_pair(s, k);
  if (k.pub == CK_INVALID_HANDLE) return std::nullopt;
  auto pub = public_key(s, k);
  if (req.algorithm == Algorithm::Rsa2048 || req.algorithm == Algorithm::Rsa3072 ||
      req.algorithm == Algorithm::Rsa4096) {
    int want = req.algorithm == Algorithm::Rsa2048 ? 2048 : req.algorithm == Algorithm::Rsa3072 ? 3072 : 4096;
    if (EVP_PKEY_get_bits(pub.get()) != want) return std::nullopt;
  }
  p11::Bytes derived = derive_key_id(pub.get());
  if (!req.policy.id.empty()) {
    if (k.id != req.policy.id) return std::nullopt;
  } else if (k.id != derived) {
    // keygen's temporary id (16 random bytes on both halves): killed before
    // the final id was written. Finish it.
    if (k.id.size() != 16 || s.attr_bytes(k.pub, CKA_ID).value_or(p11::Bytes{}) != k.id) return std::nullopt;
    if (id_in_use(s, derived)) return std::nullopt;
    p11::Attributes a1, a2;
    a1.add_bytes(CKA_ID, derived);
    a2.add_bytes(CKA_ID, derived);
    s.set_attributes(k.pub, a2, "completing the key pair '" + label + "' (CKA_ID)");
    s.set_attributes(k.priv, a1, "completing the key pair '" + label + "' (CKA_ID)");
    k.id = derived;
  }
  p11::Attributes ct;
  ct.add_class(CKO_CERTIFICATE).add_bytes(CKA_ID, k.id);
  auto certs = s.find(ct, 2);
  if (certs.empty()) return Earlier{k, nullptr};
  // Killed after the certificate was written (before it could say so): done,
  // when the one certificate is for this key and the subject asked for.
  if (certs.size() != 1) return std::nullopt;
  auto der = s.attr_bytes(certs[0], CKA_VALUE).value_or(p11::Bytes{});
  const unsigned char* p = der.data();
  ossl::X509Ptr x(der.empty() ? nullptr : d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!x || ossl::spki_der(X509_get0_pubkey(x.get())) != ossl::spki_der(pub.get())) return std::nullopt;
  auto want = ossl::parse_dn(req.subject);
  if (dn_parts(X509_get_subject_name(x.get())) != dn_parts(want.get())) return std::nullopt;
  return Earlier{k, std::move(x)};
}
} // namespace

EnrollResult enroll(p11::Session& s, const EnrollRequest& req, const Secret& secret) {
  Prepared p;
  prepare(req, p);
  check_interrupt(ExitCode::Ca, "before the key was generated");
  std::optional<Earlier> left = unfinished_key(s, req);
  if (left && left->cert) {
    say(req, "The key '" + left->key.label + "' (id " + to_hex(left->key.id) +
                 ") has its certificate for this subject already (an earlier run of this command): nothing to do.");
    std::vector<ossl::X509Ptr> certs;
    certs.push_back(std::move(left->cert));
    EnrollResult r;
    r.key = left->key;
    r.pickup = pickup_certificates(s, std::move(certs), {"", true}, "the token");
    r.ca_fingerprint = p.fingerprint;
    return r;
  }
  KeyRef k;
  if (left) {
    say(req, "Found the key '" + left->key.label + "' (id " + to_hex(left->key.id) +
                 ") an interrupted run of this command left without a certificate; enrolling it.");
    k = left->key;
  } else {
    say(req, "Generating a " + algorithm_name(req.algorithm) + " key '" + req.policy.label + "' on the token...");
    k = generate_key(s, req.algorithm, req.policy);
  }
  try {
    return run(s, k, req, secret, p);
  } catch (const Error& e) {
    destroy_key_noexcept(s, k);
    throw Error(e.code(), std::string(e.what()) + " The key '" + k.label + "' made for it was removed again.", e.hint());
  } catch (...) {
    destroy_key_noexcept(s, k);
    throw;
  }
}

EnrollResult enroll_existing(p11::Session& s, const KeyRef& k, const EnrollRequest& req, const Secret& secret) {
  Prepared p;
  prepare(req, p);
  return run(s, k, req, secret, p);
}

EnrollResult enroll_key(p11::Session& s, const std::string& key_selector, EnrollRequest req, const Secret& secret) {
  if (key_selector.empty()) return enroll(s, req, secret);
  auto k = find_key(s, key_selector);
  req.policy.label = k.label;
  return enroll_existing(s, k, req, secret);
}

} // namespace tokenprov
