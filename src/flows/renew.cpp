// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/renew.hpp"

#include "tokenprov/token_pkey.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <algorithm>
#include <ctime>

namespace tokenprov {

namespace {

void say(const std::function<void(const std::string&)>& progress, const std::string& line) {
  if (progress) progress(line);
}

// The certificate among CERTS whose key is PUB's; the others are returned in REST.
ossl::X509Ptr issued_for(std::vector<ossl::X509Ptr>& certs, EVP_PKEY* pub, std::vector<ossl::X509Ptr>& rest) {
  auto spki = ossl::spki_der(pub);
  ossl::X509Ptr leaf;
  for (auto& c : certs) {
    if (!leaf && ossl::spki_der(c.get()) == spki) leaf = std::move(c);
    else rest.push_back(std::move(c));
  }
  return leaf;
}

Algorithm algorithm_of(EVP_PKEY* pub) {
  int id = EVP_PKEY_get_base_id(pub);
  if (id == EVP_PKEY_RSA) {
    int bits = EVP_PKEY_get_bits(pub);
    if (bits <= 2048) return Algorithm::Rsa2048;
    if (bits <= 3072) return Algorithm::Rsa3072;
    return Algorithm::Rsa4096;
  }
  if (id == EVP_PKEY_ED25519) return Algorithm::Ed25519;
  if (id == EVP_PKEY_EC) {
    char group[64] = {0};
    std::size_t len = 0;
    EVP_PKEY_get_utf8_string_param(pub, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len);
    if (std::string(group) == "secp384r1") return Algorithm::EcP384;
    if (std::string(group) == "prime256v1") return Algorithm::EcP256;
  }
  fail(ExitCode::Usage, "The key's algorithm is not one tokenprov can generate again for --rekey.");
}

void relabel(p11::Session& s, CK_OBJECT_HANDLE h, const std::string& label, const std::string& what) {
  p11::Attributes t;
  t.add_string(CKA_LABEL, label);
  s.set_attributes(h, t, what);
}

void relabel_noexcept(p11::Session& s, CK_OBJECT_HANDLE h, const std::string& label) noexcept {
  try {
    relabel(s, h, label, "restoring a label");
  } catch (...) {
  }
}

// The exchange for REQ's protocol, renewing OLD (EST and CMP: RSA and EC keys; SCEP: RSA only).
RenewExchange pick_exchange(const RenewRequest& req, const KeyRef& old) {
  RenewExchange exchange;
  switch (req.protocol) {
  case EnrollProtocol::Est:
    if (old.type != CKK_RSA && old.type != CKK_EC)
      fail(ExitCode::Usage,
           "EST re-enrollment authenticates with the current key in TLS, which tokenprov does with RSA and EC keys only; '" +
               old.label + "' is neither.",
           "Enroll a new key (tokenprov enroll) instead.");
    exchange = [&req](p11::Session& sess, const KeyRef& cur, X509* cur_cert, const KeyRef&, X509_REQ* csr) {
      auto pkey = token_signing_pkey(sess, cur, "EST re-enrollment");
      est::ClientAuth auth{pkey.get(), cur_cert};
      auto cas = est::cacerts(req.est);
      say(req.progress, "Sending the request to " + req.est.url + "/simplereenroll, authenticated by the current certificate...");
      (void)take_token_error();
      std::vector<ossl::X509Ptr> answer;
      try {
        answer = est::simplereenroll(req.est, csr, auth);
      } catch (const Error&) {
        if (auto te = take_token_error()) std::rethrow_exception(te); // the token failed in the TLS handshake
        throw;
      }
      for (auto& c : cas) answer.push_back(std::move(c)); // the chain written is /cacerts'
      return answer;
    };
    break;
  case EnrollProtocol::Cmp:
    if (!req.cmp_kur)
      fail(ExitCode::Usage, "Renewal over CMP (key update) is not wired into this build yet.", "Use --protocol est.");
    exchange = req.cmp_kur;
    break;
  case EnrollProtocol::Scep:
    if (old.type != CKK_RSA)
      fail(ExitCode::Usage, "SCEP renewal signs with the current key, which must be RSA; '" + old.label + "' is not.",
           "Renew this key over EST or CMP.");
    exchange = [&req](p11::Session& sess, const KeyRef& cur, X509* cur_cert, const KeyRef&, X509_REQ* csr) {
      say(req.progress, "Asking the CA at " + req.scep.url + " for its certificate...");
      auto ca = scep::get_ca(req.scep);
      auto pkey = token_rsa_pkey(sess, cur);
      scep::Options opts = req.scep;
      opts.key_error = take_token_error; // the token's own error when the key fails
      auto issued = scep::renew(opts, ca, csr, pkey.get(), cur_cert);
      std::vector<ossl::X509Ptr> answer;
      answer.push_back(std::move(issued.cert));
      for (auto& c : issued.chain) answer.push_back(std::move(c));
      return answer;
    };
    break;
  }
  return exchange;
}

// The new certificate LEAF and the CA certificates REST written for TARGET;
// NEW_CERTS gets the objects written (the CA certificates that were on the
// token before are left out, so a rollback leaves them alone).
PickupResult write_renewed(p11::Session& s, const RenewRequest& req, const KeyRef& target, X509* leaf,
                           std::vector<ossl::X509Ptr> rest, std::vector<CK_OBJECT_HANDLE>& new_certs) {
  std::vector<ossl::X509Ptr> certs;
  certs.push_back(ossl::dup(leaf));
  for (auto& c : rest) certs.push_back(std::move(c));
  // CA certificates that were on the token before, to leave them alone on rollback.
  std::vector<ossl::Bytes> present_before;
  for (std::size_t i = 1; i < certs.size(); ++i)
    if (!find_certificate(s, certs[i].get()).empty()) present_before.push_back(ossl::to_der(certs[i].get()));
  PickupOptions po;
  po.key = target;
  say(req.progress, "Writing the new certificate to the token...");
  auto pick = pickup_certificates(s, std::move(certs), po,
                                  req.protocol == EnrollProtocol::Est    ? req.est.url
                                  : req.protocol == EnrollProtocol::Scep ? req.scep.url
                                                                        : std::string("the CA"));
  new_certs = find_certificate(s, pick.leaf.get());
  for (auto& c : pick.chain) {
    auto der = ossl::to_der(c.get());
    if (std::find(present_before.begin(), present_before.end(), der) == present_before.end())
      for (auto h : find_certificate(s, c.get())) new_certs.push_back(h);
  }
  return pick;
}

} // namespace

std::string archived_label(const std::string& label, std::time_t when) {
  char day[16] = {0};
  std::tm tm{};
  gmtime_r(&when, &tm);
  std::strftime(day, sizeof day, "%Y-%m-%d", &tm);
  return label + " (archived " + day + ")";
}

// ---- renew and rekey ------------------------------------------------------------------------

RenewResult renew(p11::Session& s, const RenewRequest& req) {
  RenewResult r;
  KeyRef old = find_key(s, req.key);
  auto old_pub = public_key(s, old);
  r.old_cert = find_leaf_certificate(s, old, ossl::spki_der(old_pub.get()));
  if (!r.old_cert)
    fail(ExitCode::BadInput, "The key '" + old.label + "' has no certificate on the token; there is nothing to renew.",
         "Enroll it first (tokenprov enroll ... --key), or pick its certificate up.");

  RenewExchange exchange = pick_exchange(req, old); // chosen before anything is generated

  KeyRef target = old;
  bool generated = false;
  if (req.rekey) {
    Algorithm a = algorithm_of(old_pub.get());
    KeyPolicy pol;
    pol.label = old.label + " (new)";
    pol.exportable = s.attr_bool(old.priv, CKA_EXTRACTABLE).value_or(false);
    say(req.progress, "Generating a new " + algorithm_name(a) + " key on the token...");
    target = generate_key(s, a, pol);
    generated = true;
  }
  std::string arch = archived_label(old.label, std::time(nullptr));
  std::vector<CK_OBJECT_HANDLE> relabelled; // old objects whose label this run changed
  CK_OBJECT_HANDLE old_cert_h = CK_INVALID_HANDLE;
  std::vector<CK_OBJECT_HANDLE> new_certs;
  try {
    CsrRequest creq;
    creq.like = r.old_cert.get();
    auto csr = make_csr(s, target, creq);
    auto answer = exchange(s, old, r.old_cert.get(), target, csr.get());
    auto target_pub = public_key(s, target);
    std::vector<ossl::X509Ptr> rest;
    auto leaf = issued_for(answer, target_pub.get(), rest);
    if (!leaf)
      fail(ExitCode::Ca, "The CA issued a certificate for another key; nothing on the token was changed.");
    auto olds = find_certificate(s, r.old_cert.get());
    if (!olds.empty()) old_cert_h = olds.front();

    // From here the token changes; every step is undone on failure.
    if (req.rekey) {
      say(req.progress, "Archiving the old key and certificate as '" + arch + "'...");
      for (auto h : {old.priv, old.pub, old_cert_h}) {
        if (h == CK_INVALID_HANDLE) continue;
        relabel(s, h, arch, "archiving '" + old.label + "'");
        relabelled.push_back(h);
      }
      for (auto h : {target.priv, target.pub})
        if (h != CK_INVALID_HANDLE) relabel(s, h, old.label, "giving the new key its label");
      target.label = old.label;
    }
    auto pick = write_renewed(s, req, target, leaf.get(), std::move(rest), new_certs);
    if (!req.rekey && old_cert_h != CK_INVALID_HANDLE) {
      say(req.progress, "Removing the old certificate (the key stays)...");
      s.destroy(old_cert_h);
    }
    r.key = target;
    if (req.rekey) {
      r.archived_key = old;
      r.archived_key->label = arch;
      r.archived_label = arch;
    }
    r.old_cert_state = req.rekey ? "archived" : "deleted";
    r.cert = std::move(pick.leaf);
    r.chain = std::move(pick.chain);
    r.ca_written = static_cast<int>(new_certs.size()) - 1;
    return r;
  } catch (...) {
    for (auto h : new_certs) s.destroy_noexcept(h);
    if (generated) destroy_key_noexcept(s, target);
    for (auto h : relabelled) relabel_noexcept(s, h, old.label);
    throw;
  }
}

} // namespace tokenprov
