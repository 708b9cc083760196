// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/status.hpp"

#include "tokenprov/ossl.hpp"
#include "tokenprov/p11/error.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/uri.hpp"

#include <openssl/x509v3.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

namespace tokenprov {

long long seconds_until(const ASN1_TIME* t, std::time_t now) {
  ossl::Deleter<ASN1_TIME_free> del;
  ASN1_TIME* from = ASN1_TIME_set(nullptr, now);
  if (!from) ossl::fail_ssl(ExitCode::Internal, "Cannot represent the current time");
  int days = 0, secs = 0;
  int ok = ASN1_TIME_diff(&days, &secs, from, t);
  del(from);
  if (!ok) fail(ExitCode::BadInput, "A certificate on the token has an unreadable validity date.");
  return static_cast<long long>(days) * 86400 + secs;
}

namespace {

struct KeySeen {
  std::string cls, label, uri;
};

void read_token(p11::Session& s, const p11::TokenInfo& t, const StatusRequest& req, std::time_t now,
                StatusReport& out) {
  // Keys by CKA_ID: the private key when visible, else the public key.
  std::map<std::string, KeySeen> keys;
  for (CK_OBJECT_CLASS cls : {CKO_PUBLIC_KEY, CKO_PRIVATE_KEY}) {
    p11::Attributes q;
    q.add_class(cls);
    for (auto h : s.find(q)) {
      auto id = s.attr_string(h, CKA_ID);
      if (id.empty()) continue;
      auto label = s.attr_string(h, CKA_LABEL);
      const char* name = cls == CKO_PRIVATE_KEY ? "private-key" : "public-key";
      keys[id] = {name, label, object_uri(t, cls == CKO_PRIVATE_KEY ? "private" : "public", label, id)};
    }
  }
  p11::Attributes q;
  q.add_class(CKO_CERTIFICATE);
  std::vector<CertStatus> certs;
  for (auto h : s.find(q)) {
    if (s.attr_ulong(h, CKA_CERTIFICATE_TYPE).value_or(CKC_X_509) != CKC_X_509) continue;
    auto der = s.attr_bytes(h, CKA_VALUE);
    if (!der) continue;
    auto c = ossl::cert_from_der(*der);
    CertStatus e;
    e.token_serial = t.serial;
    e.token_label = t.label;
    e.token_uri = token_uri(t);
    e.label = s.attr_string(h, CKA_LABEL);
    e.id = s.attr_string(h, CKA_ID);
    e.uri = object_uri(t, "cert", e.label, e.id);
    if (!c) {
      // Not a certificate OpenSSL can read: said, not hidden, and not counted as expiring.
      e.subject = "(unreadable certificate)";
      certs.push_back(std::move(e));
      continue;
    }
    e.subject = ossl::name_oneline(X509_get_subject_name(c.get()));
    e.issuer = ossl::name_oneline(X509_get_issuer_name(c.get()));
    e.serial = ossl::serial_hex(c.get());
    e.not_before = ossl::asn1_time_rfc3339(X509_get0_notBefore(c.get()));
    e.not_after = ossl::asn1_time_rfc3339(X509_get0_notAfter(c.get()));
    auto cat = s.attr_ulong(h, CKA_CERTIFICATE_CATEGORY).value_or(0);
    e.authority = cat == 2 || (cat == 0 && (X509_check_ca(c.get()) == 1 || s.attr_bool(h, CKA_TRUSTED).value_or(false)));
    if (!e.id.empty()) {
      if (auto k = keys.find(e.id); k != keys.end()) {
        e.key_class = k->second.cls;
        e.key_label = k->second.label;
        e.key_uri = k->second.uri;
      }
    }
    e.seconds_left = seconds_until(X509_get0_notAfter(c.get()), now);
    e.days_left = static_cast<double>(e.seconds_left) / 86400.0;
    if (req.expiring_days) e.expiring = static_cast<double>(e.seconds_left) <= *req.expiring_days * 86400.0;
    if (e.expiring) ++out.expiring;
    certs.push_back(std::move(e));
  }
  std::stable_sort(certs.begin(), certs.end(), [](const CertStatus& a, const CertStatus& b) {
    return std::tie(a.authority, a.seconds_left, a.id, a.label) < std::tie(b.authority, b.seconds_left, b.id, b.label);
  });
  for (auto& c : certs) out.certificates.push_back(std::move(c));
}

} // namespace

StatusReport session_status(p11::Session& s, const p11::TokenInfo& t, const StatusRequest& req) {
  StatusReport out;
  out.window_days = req.expiring_days;
  out.tokens.push_back(t);
  read_token(s, t, req, req.now.value_or(std::time(nullptr)), out);
  return out;
}

StatusReport certificate_status(const std::shared_ptr<p11::Module>& module, const StatusRequest& req) {
  if (req.expiring_days && (!std::isfinite(*req.expiring_days) || *req.expiring_days < 0))
    fail(ExitCode::Usage, "--expiring takes a number of days, 0 or more.");
  StatusReport out;
  out.window_days = req.expiring_days;
  std::time_t now = req.now ? *req.now : std::time(nullptr);
  std::vector<p11::TokenInfo> infos;
  if (req.selector.empty()) {
    auto scan = module->scan();
    infos = std::move(scan.tokens);
    out.unreadable = std::move(scan.unreadable);
  } else {
    infos.push_back(find_token(*module, req.selector));
  }
  auto needs_login = [](const p11::TokenInfo& t) { return t.initialized() && t.login_required(); };
  if (req.pin && req.selector.empty()) {
    std::vector<p11::TokenInfo> want;
    for (auto& t : infos)
      if (needs_login(t)) want.push_back(t);
    if (want.size() > 1)
      fail(ExitCode::Usage,
           std::to_string(want.size()) + " tokens need a login; a PIN goes only to the token you select:" +
               candidates(want),
           "Add --token with one of these, or run 'tokenprov status' without a PIN source: certificates are public.");
  }
  for (auto& t : infos) {
    if (!t.initialized()) continue;
    out.tokens.push_back(t);
    p11::Session s(module, t.slot_id, false);
    if (needs_login(t)) {
      if (req.pin) s.login(CKU_USER, *req.pin);
      else out.not_logged_in.push_back(t.serial);
    }
    read_token(s, t, req, now, out);
  }
  return out;
}

nlohmann::json to_json(const CertStatus& c) {
  nlohmann::json j = {{"token", c.token_serial},
                      {"token_label", c.token_label},
                      {"token_uri", c.token_uri},
                      {"uri", c.uri},
                      {"id", to_hex(c.id)},
                      {"label", c.label},
                      {"subject", c.subject},
                      {"issuer", c.issuer},
                      {"serial", c.serial},
                      {"not_before", c.not_before},
                      {"not_after", c.not_after},
                      {"authority", c.authority},
                      {"seconds_left", c.seconds_left},
                      {"days_left", c.days_left},
                      {"expired", c.seconds_left < 0},
                      {"expiring", c.expiring}};
  if (!c.key_class.empty())
    j["key"] = {{"class", c.key_class}, {"label", c.key_label}, {"id", to_hex(c.id)}, {"uri", c.key_uri}};
  else
    j["key"] = nullptr;
  return j;
}

nlohmann::json to_json(const StatusReport& r) {
  nlohmann::json j = {{"certificates", nlohmann::json::array()}};
  for (auto& c : r.certificates) j["certificates"].push_back(to_json(c));
  if (r.window_days) {
    j["expiring_days"] = *r.window_days;
    j["expiring"] = r.expiring;
  }
  if (!r.not_logged_in.empty()) j["not_logged_in"] = r.not_logged_in;
  if (!r.unreadable.empty()) {
    j["unreadable_slots"] = nlohmann::json::array();
    for (auto& u : r.unreadable) j["unreadable_slots"].push_back({{"slot_id", u.slot_id}, {"error", p11::rv_name(u.rv)}});
  }
  return j;
}

} // namespace tokenprov
