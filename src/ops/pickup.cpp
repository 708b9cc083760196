// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/pickup.hpp"

#include "tokenprov/uri.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <climits>
#include <cstring>

namespace tokenprov {

std::string cert_label(X509* cert) {
  X509_NAME* n = X509_get_subject_name(cert);
  for (int nid : {NID_commonName, NID_organizationalUnitName, NID_organizationName})
    if (auto v = ossl::name_entry(n, nid); !v.empty()) return v;
  return ossl::name_oneline(n);
}

ossl::X509Ptr find_leaf_certificate(const p11::Session& s, const KeyRef& k, const ossl::Bytes& spki) {
  p11::Attributes t;
  t.add_class(CKO_CERTIFICATE).add_bytes(CKA_ID, k.id);
  ossl::X509Ptr best;
  for (auto h : s.find(t)) {
    auto der = s.attr_bytes(h, CKA_VALUE);
    if (!der) continue;
    auto c = ossl::cert_from_der(*der);
    if (!c || ossl::spki_der(c.get()) != spki) continue;
    if (!best || ASN1_TIME_compare(X509_get0_notAfter(c.get()), X509_get0_notAfter(best.get())) > 0)
      best = std::move(c);
  }
  return best;
}

std::vector<CK_OBJECT_HANDLE> find_certificate(const p11::Session& s, X509* cert) {
  auto der = ossl::to_der(cert);
  p11::Attributes t;
  t.add_class(CKO_CERTIFICATE).add_bytes(CKA_VALUE, der);
  return s.find(t);
}

CK_OBJECT_HANDLE write_certificate(p11::Session& s, X509* cert, const std::string& label, const p11::Bytes& id,
                                   bool authority) {
  auto der = ossl::to_der(cert);
  auto enc = [](auto* obj, auto i2d) {
    int n = i2d(obj, nullptr);
    p11::Bytes b(static_cast<std::size_t>(std::max(n, 0)));
    unsigned char* p = b.data();
    i2d(obj, &p);
    return b;
  };
  auto subject = enc(X509_get_subject_name(cert), i2d_X509_NAME);
  auto issuer = enc(X509_get_issuer_name(cert), i2d_X509_NAME);
  auto serial = enc(const_cast<ASN1_INTEGER*>(X509_get0_serialNumber(cert)), i2d_ASN1_INTEGER);
  p11::Attributes t;
  t.add_class(CKO_CERTIFICATE).add_ulong(CKA_CERTIFICATE_TYPE, CKC_X_509);
  t.add_bool(CKA_TOKEN, true).add_bool(CKA_PRIVATE, false).add_bool(CKA_MODIFIABLE, true);
  t.add_string(CKA_LABEL, label).add_bytes(CKA_ID, id);
  t.add_bytes(CKA_SUBJECT, subject).add_bytes(CKA_ISSUER, issuer).add_bytes(CKA_SERIAL_NUMBER, serial);
  t.add_bytes(CKA_VALUE, der);
  t.add_ulong(CKA_CERTIFICATE_CATEGORY, authority ? 2 : 1).optional(); // opencryptoki 3.8 refuses it
  return s.create(t, std::string("writing the ") + (authority ? "CA " : "") + "certificate '" + label + "'");
}

namespace {
// A certificate object an interrupted write left without its label or id
// (SoftHSM2 creates an object and then sets its attributes in separate steps,
// and a kill in between leaves them unset): found by its exact value, so it is
// this certificate, and finished with the label and id the write gives it.
void finish_certificate(p11::Session& s, const std::vector<CK_OBJECT_HANDLE>& found, const std::string& label,
                        const p11::Bytes& id) {
  for (auto h : found) {
    p11::Attributes t;
    if (s.attr_string(h, CKA_LABEL).empty() && !label.empty()) t.add_string(CKA_LABEL, label);
    if (s.attr_bytes(h, CKA_ID).value_or(p11::Bytes{}).empty() && !id.empty()) t.add_bytes(CKA_ID, id);
    if (!t.empty()) s.set_attributes(h, t, "finishing the certificate '" + label + "' an interrupted run left");
  }
}

void check_validity(X509* c, const std::string& source, bool leaf) {
  std::string what = leaf ? "The certificate for '" + ossl::name_oneline(X509_get_subject_name(c)) + "'"
                          : "The CA certificate '" + ossl::name_oneline(X509_get_subject_name(c)) + "'";
  if (X509_cmp_current_time(X509_get0_notBefore(c)) > 0)
    fail(ExitCode::BadInput,
         what + " in '" + source + "' is not valid yet (from " + ossl::asn1_time_rfc3339(X509_get0_notBefore(c)) + ").",
         "Check this machine's clock, or pass --allow-expired to store it anyway.");
  if (X509_cmp_current_time(X509_get0_notAfter(c)) < 0)
    fail(ExitCode::BadInput,
         what + " in '" + source + "' expired on " + ossl::asn1_time_rfc3339(X509_get0_notAfter(c)) + ".",
         "Ask the CA for a current certificate, or pass --allow-expired to store it anyway.");
}

void verify_chain(X509* leaf, const std::vector<ossl::X509Ptr>& chain, const std::string& bundle_path,
                  bool allow_expired, const std::string& source) {
  auto anchors = load_certificate_file(bundle_path, input::ca_bundle);
  ossl::X509StorePtr store(X509_STORE_new());
  for (auto& a : anchors)
    X509_STORE_add_cert(store.get(), a.get());
  ossl::X509RefStackPtr untrusted(sk_X509_new_null()); // the certificates stay CHAIN's
  for (auto& c : chain)
    sk_X509_push(untrusted.get(), c.get());
  ossl::X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), leaf, untrusted.get());
  if (allow_expired) X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_NO_CHECK_TIME);
  int ok = X509_verify_cert(ctx.get());
  int err = X509_STORE_CTX_get_error(ctx.get());
  ERR_clear_error();
  if (ok != 1)
    fail(ExitCode::BadInput,
         "The certificate in '" + source + "' does not verify against the CA bundle '" + bundle_path +
             "': " + X509_verify_cert_error_string(err) + ".",
         "Check that the bundle holds the issuing CA's root, and that the file carries the intermediates.");
}
// The keys a certificate may be for (the one asked for, else every private
// key of the token), indexed by their SubjectPublicKeyInfo.
std::vector<std::pair<ossl::Bytes, KeyRef>> token_keys(const p11::Session& s, const PickupOptions& opts) {
  std::vector<std::pair<ossl::Bytes, KeyRef>> keys;
  if (opts.key)
    keys.emplace_back(ossl::spki_der(public_key(s, *opts.key).get()), *opts.key);
  else
    for (auto& k : private_keys(s)) {
      try {
        auto pk = public_key(s, k);
        keys.emplace_back(ossl::spki_der(pk.get()), k);
      } catch (const p11::P11Error&) {
        throw; // a device error is not "no key matches"
      } catch (const Error&) {
        // A key without a readable public half cannot be the leaf's.
      }
    }
  return keys;
}

// The leaf: a certificate whose public key is one of KEYS (set in KEY),
// end-entity certificates first. Its index in CERTS, or certs.size().
std::size_t find_leaf(const std::vector<ossl::X509Ptr>& certs, const std::vector<std::pair<ossl::Bytes, KeyRef>>& keys,
                      KeyRef& key) {
  for (int pass = 0; pass < 2; ++pass) {
    for (std::size_t i = 0; i < certs.size(); ++i) {
      bool ca = X509_check_ca(certs[i].get()) != 0;
      if ((pass == 0) == ca) continue;
      auto spki = ossl::spki_der(certs[i].get());
      auto it = std::find_if(keys.begin(), keys.end(), [&](auto& kv) { return kv.first == spki; });
      if (it != keys.end()) {
        key = it->second;
        return i;
      }
    }
  }
  return certs.size();
}
} // namespace

PickupResult pickup_certificates(p11::Session& s, std::vector<ossl::X509Ptr> certs, const PickupOptions& opts,
                                 const std::string& source) {
  PickupResult r;
  std::size_t leaf_idx = find_leaf(certs, token_keys(s, opts), r.key);
  if (leaf_idx == certs.size()) {
    std::string subj = ossl::name_oneline(X509_get_subject_name(certs.front().get()));
    fail(ExitCode::BadInput,
         "No key on the token matches the certificate" + std::string(certs.size() > 1 ? "s" : "") + " in '" + source +
             "' (" + subj + (certs.size() > 1 ? ", ..." : "") + "); nothing was written.",
         "Pick up the certificate on the token whose key made the request, or check that you have the right file.");
  }
  r.leaf = std::move(certs[leaf_idx]);
  certs.erase(certs.begin() + static_cast<long>(leaf_idx));
  r.chain = order_chain(r.leaf.get(), certs);
  for (auto& c : certs)
    r.ignored.push_back(ossl::name_oneline(X509_get_subject_name(c.get())));

  if (!opts.allow_expired) {
    check_validity(r.leaf.get(), source, true);
    for (auto& c : r.chain)
      check_validity(c.get(), source, false);
  }
  if (!opts.ca_bundle.empty()) verify_chain(r.leaf.get(), r.chain, opts.ca_bundle, opts.allow_expired, source);

  // The write, all or nothing: rolled back when a call fails. The root comes
  // first and the leaf last, so that when the rollback is impossible too (the
  // token was pulled out) what is left is CA certificates only: the key still
  // lacks its certificate, and writing the same again completes it. A leaf on
  // the token thus always has its chain.
  p11::ObjectGuard created(s);
  for (auto it = r.chain.rbegin(); it != r.chain.rend(); ++it) {
    X509* c = it->get();
    ossl::EvpPkeyPtr pk(X509_get_pubkey(c));
    p11::Bytes id = pk ? derive_key_id(pk.get()) : p11::Bytes{};
    if (auto found = find_certificate(s, c); !found.empty()) {
      finish_certificate(s, found, cert_label(c), id);
      ++r.present;
      continue;
    }
    created.add(write_certificate(s, c, cert_label(c), id, true));
    ++r.written;
  }
  if (auto found = find_certificate(s, r.leaf.get()); found.empty()) {
    created.add(write_certificate(s, r.leaf.get(), r.key.label, r.key.id, false));
    ++r.written;
  } else {
    finish_certificate(s, found, r.key.label, r.key.id);
    ++r.present;
  }
  created.commit();
  return r;
}

} // namespace tokenprov
