// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/enroll.hpp"

#include "tokenprov/interrupt.hpp"
#include "tokenprov/token_pkey.hpp"
#include "tokenprov/uri.hpp"

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <set>
#include <utility>

namespace tokenprov {

namespace {
void say(const EnrollRequest& req, const std::string& line) {
  if (req.scep.progress) req.scep.progress(line);
}

EnrollResult run_enroll(p11::Session& s, const KeyRef& k, const EnrollRequest& req, const Secret& challenge,
                        scep::Options opts, const scep::CaInfo& ca) {
  check_interrupt(ExitCode::Ca, "before the request was sent");
  EnrollResult r;
  r.key = k;
  CsrRequest creq{req.subject, req.sans, SigScheme::Default, &challenge};
  auto csr = make_csr(s, k, creq);
  auto pkey = token_rsa_pkey(s, k);
  say(req, "Sending the request to " + opts.url + "...");
  auto issued = scep::enroll(opts, ca, csr.get(), pkey.get()); // the CA's answer from pinned(): asked once
  std::vector<ossl::X509Ptr> certs;
  certs.push_back(std::move(issued.cert));
  for (auto& c : issued.chain) certs.push_back(std::move(c));
  say(req, "Writing the certificate and its chain to the token...");
  r.pickup = pickup_certificates(s, std::move(certs), {"", req.allow_expired}, opts.url);
  if (r.pickup.key.id != k.id)
    fail(ExitCode::Ca, "The CA at " + opts.url + " issued a certificate for another key.");
  return r;
}

scep::Options pinned(const EnrollRequest& req, std::string& fp, scep::CaInfo& ca) {
  if (req.algorithm != Algorithm::Rsa2048 && req.algorithm != Algorithm::Rsa3072 && req.algorithm != Algorithm::Rsa4096)
    fail(ExitCode::Usage, "SCEP enrollment needs an RSA key; " + algorithm_name(req.algorithm) + " cannot be used.",
         "Choose --algorithm rsa2048 (or rsa3072, rsa4096).");
  say(req, "Asking the CA at " + req.scep.url + " for its certificate...");
  ca = scep::get_ca(req.scep);
  fp = ossl::cert_fingerprint_sha256(ca.ca.get());
  scep::Options opts = req.scep;
  if (opts.ca_fingerprint.empty()) opts.ca_fingerprint = fp; // confirmed once: do not ask again
  return opts;
}
// What an earlier run of this same enroll left when it was killed (SIGKILL,
// power) before the certificate was written, found by content, never by
// "looks unused": the one private key with the label, generated on the token
// (CKA_LOCAL), of the algorithm and exportability asked for, whose CKA_ID is
// the --id given or tokenprov's own (SHA-1 of the public key, see
// docs/key-policy.md), with no certificate under that id. A pair keygen left
// apart (killed between its CKA_ID writes) is completed first. A public key
// with the label, made on the token, and no private key beside it (killed
// inside C_GenerateKeyPair) is removed. Anything else with the label is left
// alone, and generate_key refuses the label (exit 8).
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

EnrollResult enroll(p11::Session& s, const EnrollRequest& req, const Secret& challenge) {
  std::string fp;
  scep::CaInfo ca;
  auto opts = pinned(req, fp, ca);
  check_interrupt(ExitCode::Ca, "before the key was generated");
  std::optional<Earlier> left = unfinished_key(s, req);
  KeyRef k;
  if (left && left->cert) {
    say(req, "The key '" + left->key.label + "' (id " + to_hex(left->key.id) +
                 ") has its certificate for this subject already (an earlier run of this command): nothing to do.");
    std::vector<ossl::X509Ptr> certs;
    certs.push_back(std::move(left->cert));
    EnrollResult r;
    r.key = left->key;
    r.pickup = pickup_certificates(s, std::move(certs), {"", true}, "the token");
    r.ca_fingerprint = fp;
    return r;
  }
  if (left) {
    say(req, "Found the key '" + left->key.label + "' (id " + to_hex(left->key.id) +
                 ") an interrupted run of this command left without a certificate; enrolling it.");
    k = left->key;
  } else {
    say(req, "Generating a " + algorithm_name(req.algorithm) + " key '" + req.policy.label + "' on the token...");
    k = generate_key(s, req.algorithm, req.policy);
  }
  try {
    auto r = run_enroll(s, k, req, challenge, opts, ca);
    r.ca_fingerprint = fp;
    return r;
  } catch (...) {
    destroy_key_noexcept(s, k);
    throw;
  }
}

EnrollResult enroll_existing(p11::Session& s, const KeyRef& k, const EnrollRequest& req, const Secret& challenge) {
  std::string fp;
  scep::CaInfo ca;
  auto opts = pinned(req, fp, ca);
  auto r = run_enroll(s, k, req, challenge, opts, ca);
  r.ca_fingerprint = fp;
  return r;
}

} // namespace tokenprov
