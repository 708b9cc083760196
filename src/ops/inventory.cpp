// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/inventory.hpp"

#include "tokenprov/keys.hpp"
#include "tokenprov/ossl.hpp"
#include "tokenprov/p11/error.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/uri.hpp"

#include <algorithm>
#include <openssl/x509v3.h>
#include <tuple>

namespace tokenprov {

namespace {
const char* class_name(CK_OBJECT_CLASS c) {
  switch (c) {
  case CKO_PRIVATE_KEY: return "private-key";
  case CKO_PUBLIC_KEY: return "public-key";
  case CKO_CERTIFICATE: return "certificate";
  case CKO_SECRET_KEY: return "secret-key";
  case CKO_DATA: return "data";
  default: return nullptr;
  }
}
const char* uri_type(CK_OBJECT_CLASS c) {
  switch (c) {
  case CKO_PRIVATE_KEY: return "private";
  case CKO_PUBLIC_KEY: return "public";
  case CKO_CERTIFICATE: return "cert";
  case CKO_SECRET_KEY: return "secret-key";
  default: return "data";
  }
}

void fill_key(const p11::Session& s, CK_OBJECT_HANDLE h, CK_OBJECT_CLASS cls, ObjectEntry& e) {
  auto kt = s.attr_ulong(h, CKA_KEY_TYPE).value_or(CK_UNAVAILABLE_INFORMATION);
  auto b = [&](CK_ATTRIBUTE_TYPE t) { return s.attr_bool(h, t).value_or(false); };
  if (cls != CKO_PUBLIC_KEY) {
    e.extractable = b(CKA_EXTRACTABLE);
    e.sensitive = b(CKA_SENSITIVE);
    e.never_extractable = b(CKA_NEVER_EXTRACTABLE);
    e.always_sensitive = b(CKA_ALWAYS_SENSITIVE);
  } else {
    e.extractable = b(CKA_EXTRACTABLE);
  }
  e.local = b(CKA_LOCAL);
  if (kt == CKK_RSA) {
    e.key_type = "rsa";
    if (auto bits = s.attr_ulong(h, CKA_MODULUS_BITS); bits && *bits) e.bits = static_cast<int>(*bits);
    else if (auto n = s.attr_bytes(h, CKA_MODULUS)) {
      std::size_t lead = 0;
      while (lead < n->size() && (*n)[lead] == 0) ++lead;
      e.bits = static_cast<int>((n->size() - lead) * 8);
    }
  } else if (kt == CKK_EC) {
    e.key_type = "ec";
    auto params = s.attr_bytes(h, CKA_EC_PARAMS);
    if (params) {
      const unsigned char* p = params->data();
      ossl::Asn1ObjectPtr oid(d2i_ASN1_OBJECT(nullptr, &p, static_cast<long>(params->size())));
      if (oid) {
        int nid = OBJ_obj2nid(oid.get());
        if (nid == NID_X9_62_prime256v1) e.curve = "P-256";
        else if (nid == NID_secp384r1) e.curve = "P-384";
        else if (nid == NID_secp521r1) e.curve = "P-521";
        else e.curve = OBJ_nid2sn(nid) ? OBJ_nid2sn(nid) : "unknown";
      }
    }
  } else if (kt == CKK_EC_EDWARDS) {
    e.key_type = "ed25519";
    e.curve = "Ed25519";
  } else if (kt != CK_UNAVAILABLE_INFORMATION) {
    e.key_type = "other";
  }
}

void fill_cert(const p11::Session& s, CK_OBJECT_HANDLE h, ObjectEntry& e) {
  auto cat = s.attr_ulong(h, CKA_CERTIFICATE_CATEGORY).value_or(0);
  auto der = s.attr_bytes(h, CKA_VALUE);
  ossl::X509Ptr c;
  if (der) c = ossl::cert_from_der(*der);
  if (c) {
    e.subject = ossl::name_oneline(X509_get_subject_name(c.get()));
    e.issuer = ossl::name_oneline(X509_get_issuer_name(c.get()));
    e.serial = ossl::serial_hex(c.get());
    e.not_before = ossl::asn1_time_rfc3339(X509_get0_notBefore(c.get()));
    e.not_after = ossl::asn1_time_rfc3339(X509_get0_notAfter(c.get()));
  }
  if (cat == 2) e.authority = true;
  else if (cat == 0 && c) e.authority = X509_check_ca(c.get()) == 1 || s.attr_bool(h, CKA_TRUSTED).value_or(false);
}
} // namespace

std::vector<ObjectEntry> list_objects(const p11::Session& s, const p11::TokenInfo& token) {
  p11::Attributes all;
  std::vector<ObjectEntry> out;
  for (auto h : s.find(all)) {
    auto cls = s.attr_ulong(h, CKA_CLASS);
    if (!cls) continue;
    const char* name = class_name(*cls);
    if (!name) continue;
    ObjectEntry e;
    e.cls = name;
    e.label = s.attr_string(h, CKA_LABEL);
    e.id = s.attr_string(h, CKA_ID);
    e.uri = object_uri(token, uri_type(*cls), e.label, e.id);
    if (*cls == CKO_PRIVATE_KEY || *cls == CKO_PUBLIC_KEY || *cls == CKO_SECRET_KEY) fill_key(s, h, *cls, e);
    if (*cls == CKO_CERTIFICATE) fill_cert(s, h, e);
    out.push_back(std::move(e));
  }
  // A stable order: by id, then class, then label.
  std::stable_sort(out.begin(), out.end(), [](const ObjectEntry& a, const ObjectEntry& b) {
    return std::tie(a.id, a.cls, a.label) < std::tie(b.id, b.cls, b.label);
  });
  return out;
}

Inventory take_inventory(const std::shared_ptr<p11::Module>& module, const std::string& selector, const Secret* pin) {
  Inventory inv;
  std::vector<p11::TokenInfo> infos;
  if (selector.empty()) {
    auto scan = module->scan();
    infos = std::move(scan.tokens);
    inv.unreadable = std::move(scan.unreadable);
  } else {
    infos.push_back(find_token(*module, selector));
  }
  auto needs_login = [](const p11::TokenInfo& t) { return t.initialized() && t.login_required(); };
  if (pin && selector.empty()) {
    std::vector<p11::TokenInfo> want;
    for (auto& t : infos)
      if (needs_login(t)) want.push_back(t);
    if (want.size() > 1) {
      fail(ExitCode::Usage,
           std::to_string(want.size()) + " tokens need a login; a PIN goes only to the token you select:" +
               candidates(want),
           "Add --token with one of these, or run 'tokenprov list' without a PIN source to see every token.");
    }
  }
  for (auto& t : infos) {
    TokenEntry e{t, token_uri(t), {}};
    if (t.initialized()) {
      p11::Session s(module, t.slot_id, false);
      bool login = pin && needs_login(t);
      if (login) {
        s.login(CKU_USER, *pin);
        inv.logged_in = true;
      }
      if (login || !t.login_required()) e.objects = list_objects(s, t);
    }
    inv.tokens.push_back(std::move(e));
  }
  return inv;
}

nlohmann::json to_json(const ObjectEntry& o) {
  nlohmann::json j;
  j["class"] = o.cls;
  j["label"] = o.label;
  j["id"] = to_hex(o.id);
  j["uri"] = o.uri;
  if (o.cls == "private-key" || o.cls == "public-key" || o.cls == "secret-key") {
    if (!o.key_type.empty()) j["key_type"] = o.key_type;
    if (o.bits) j["bits"] = *o.bits;
    if (!o.curve.empty()) j["curve"] = o.curve;
    j["extractable"] = o.extractable;
    j["sensitive"] = o.sensitive;
    j["never_extractable"] = o.never_extractable;
    j["always_sensitive"] = o.always_sensitive;
    j["local"] = o.local;
  }
  if (o.cls == "certificate") {
    j["subject"] = o.subject;
    j["issuer"] = o.issuer;
    j["serial"] = o.serial;
    j["not_before"] = o.not_before;
    j["not_after"] = o.not_after;
    j["authority"] = o.authority;
  }
  return j;
}

nlohmann::json to_json(const TokenEntry& t) {
  nlohmann::json j;
  j["uri"] = t.uri;
  j["label"] = t.info.label;
  j["serial"] = t.info.serial;
  j["manufacturer"] = t.info.manufacturer;
  j["model"] = t.info.model;
  j["slot_id"] = t.info.slot_id;
  j["initialized"] = t.info.initialized();
  j["user_pin_initialized"] = t.info.user_pin_initialized();
  j["flags"] = {{"user_pin_count_low", (t.info.flags & CKF_USER_PIN_COUNT_LOW) != 0},
                {"user_pin_final_try", (t.info.flags & CKF_USER_PIN_FINAL_TRY) != 0},
                {"user_pin_locked", (t.info.flags & CKF_USER_PIN_LOCKED) != 0},
                {"so_pin_locked", (t.info.flags & CKF_SO_PIN_LOCKED) != 0}};
  j["objects"] = nlohmann::json::array();
  for (auto& o : t.objects) j["objects"].push_back(to_json(o));
  return j;
}

nlohmann::json to_json(const Inventory& inv) {
  nlohmann::json j = {{"tokens", nlohmann::json::array()}};
  for (auto& e : inv.tokens) j["tokens"].push_back(to_json(e));
  if (!inv.unreadable.empty()) {
    j["unreadable_slots"] = nlohmann::json::array();
    for (auto& u : inv.unreadable) j["unreadable_slots"].push_back({{"slot_id", u.slot_id}, {"error", p11::rv_name(u.rv)}});
  }
  return j;
}

} // namespace tokenprov
