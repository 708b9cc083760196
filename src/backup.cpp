#include "tokenprov/backup.hpp"

#include "tokenprov/fileio.hpp"
#include "tokenprov/pickup.hpp"
#include "tokenprov/uri.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <algorithm>

namespace tokenprov {

namespace {

// A session-only AES-256 key whose value we made in software, for wrapping.
class SessionAesKey {
public:
  SessionAesKey(const p11::Session& s, bool wrap) : s_(s), value_(32) {
    if (RAND_bytes(value_.data(), 32) != 1) ossl::fail_ssl(ExitCode::Internal, "No randomness for the transport key");
    p11::Attributes t;
    t.add_class(CKO_SECRET_KEY).add_ulong(CKA_KEY_TYPE, CKK_AES);
    t.add_bool(CKA_TOKEN, false).add_bool(CKA_PRIVATE, true).add_bool(CKA_SENSITIVE, true);
    t.add_bool(CKA_EXTRACTABLE, false);
    t.add_bool(wrap ? CKA_WRAP : CKA_UNWRAP, true);
    t.add_bool(wrap ? CKA_UNWRAP : CKA_WRAP, false);
    t.add_bool(CKA_ENCRYPT, false).add_bool(CKA_DECRYPT, false);
    t.add_bytes(CKA_VALUE, value_);
    t.add_string(CKA_LABEL, "tokenprov transport key");
    h_ = const_cast<p11::Session&>(s).create(t, "creating the session key for the transfer");
  }
  ~SessionAesKey() {
    s_.destroy_noexcept(h_);
    OPENSSL_cleanse(value_.data(), value_.size());
  }
  SessionAesKey(const SessionAesKey&) = delete;
  SessionAesKey& operator=(const SessionAesKey&) = delete;
  CK_OBJECT_HANDLE handle() const { return h_; }
  const p11::Bytes& value() const { return value_; }

private:
  const p11::Session& s_;
  p11::Bytes value_;
  CK_OBJECT_HANDLE h_ = CK_INVALID_HANDLE;
};

// RFC 5649 AES key wrap with padding, in software.
p11::Bytes aes_kwp(const p11::Bytes& kek, std::span<const std::uint8_t> in, bool wrap) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  p11::Bytes out(in.size() + 16);
  int n1 = 0, n2 = 0;
  bool ok = EVP_CipherInit_ex(ctx, EVP_aes_256_wrap_pad(), nullptr, kek.data(), nullptr, wrap ? 1 : 0) == 1 &&
            EVP_CipherUpdate(ctx, out.data(), &n1, in.data(), static_cast<int>(in.size())) == 1 &&
            EVP_CipherFinal_ex(ctx, out.data() + n1, &n2) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) {
    OPENSSL_cleanse(out.data(), out.size());
    ossl::fail_ssl(ExitCode::Internal, wrap ? "Cannot wrap the key for the token" : "Cannot unwrap the key from the token");
  }
  out.resize(static_cast<std::size_t>(n1 + n2));
  return out;
}

std::vector<ossl::X509Ptr> authority_certs(const p11::Session& s) {
  p11::Attributes t;
  t.add_class(CKO_CERTIFICATE);
  std::vector<ossl::X509Ptr> out;
  for (auto h : s.find(t)) {
    auto der = s.attr_bytes(h, CKA_VALUE);
    if (!der) continue;
    auto c = ossl::cert_from_der(*der);
    if (c && X509_check_ca(c.get()) != 0) out.push_back(std::move(c));
  }
  return out;
}

} // namespace

std::string export_refusal(const p11::Session& s, const KeyRef& k) {
  bool extractable = s.attr_bool(k.priv, CKA_EXTRACTABLE).value_or(false);
  if (extractable) return {};
  bool never = s.attr_bool(k.priv, CKA_NEVER_EXTRACTABLE).value_or(false);
  return "The key '" + k.label + "' (id " + to_hex(k.id) + ") is not exportable: " +
         (never ? "it was made non-extractable when it was generated, so it can never leave the token."
                : "its CKA_EXTRACTABLE attribute is false.");
}

ossl::EvpPkeyPtr extract_private_key(const p11::Session& s, const KeyRef& k) {
  SessionAesKey kek(s, true);
  CK_MECHANISM mech{CKM_AES_KEY_WRAP_PAD, nullptr, 0};
  p11::Bytes wrapped = s.wrap_key(mech, kek.handle(), k.priv);
  p11::Bytes pkcs8 = aes_kwp(kek.value(), wrapped, false);
  const unsigned char* p = pkcs8.data();
  ossl::Pkcs8Ptr info(d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, static_cast<long>(pkcs8.size())));
  OPENSSL_cleanse(pkcs8.data(), pkcs8.size());
  if (!info) ossl::fail_ssl(ExitCode::Token, "The token returned a key for '" + k.label + "' that is not PKCS#8");
  ossl::EvpPkeyPtr key(EVP_PKCS82PKEY(info.get()));
  if (!key) ossl::fail_ssl(ExitCode::Token, "The key '" + k.label + "' taken from the token cannot be read");
  // The key must be the one whose public half is on the token.
  auto pub = public_key(s, k);
  if (EVP_PKEY_eq(key.get(), pub.get()) != 1)
    fail(ExitCode::Token, "The key taken from the token does not match the public key of '" + k.label + "'.");
  return key;
}

KeyRef backup_key(const p11::Session& s, const BackupRequest& req) {
  auto k = find_key(s, req.key);
  if (!req.cert_only) {
    if (req.profile_forbids_export)
      fail(ExitCode::Policy,
           "The profile '" + req.profile_name + "' forbids exporting keys; the key '" + k.label + "' was not exported and no file was written.",
           "Use --cert-only for a backup of the certificates alone.");
    if (auto why = export_refusal(s, k); !why.empty())
      fail(ExitCode::Policy, why + " No file was written.", "Use --cert-only for a backup of the certificates alone.");
  }
  return k;
}

BackupResult make_backup(const p11::Session& s, const BackupRequest& req, const Secret& password) {
  return make_backup(s, req, backup_key(s, req), password);
}

BackupResult make_backup(const p11::Session& s, const BackupRequest& req, const KeyRef& k, const Secret& password) {
  if (req.out.empty()) fail(ExitCode::Usage, "Say where the backup goes with --out FILE.");
  if (req.out == "-") fail(ExitCode::Usage, "A backup holds a private key: write it to a file, not to standard output.");
  BackupResult r;
  r.key = k;
  r.path = req.out;
  if (!req.force && file_exists(req.out))
    fail(ExitCode::Exists, "The file '" + req.out + "' exists already; it was left as it is.",
         "Choose another path, or add --force to replace it.");
  if (!is_directory(parent_folder(req.out)))
    fail(ExitCode::BadInput, "Cannot write '" + req.out + "': the folder '" + parent_folder(req.out) + "' does not exist (or is not a folder).",
         "Choose a folder that exists and that you can write to.");
  auto leaf = find_leaf_certificate(s, k, ossl::spki_der(public_key(s, k).get()));
  if (!leaf)
    fail(ExitCode::BadInput, "The key '" + k.label + "' (id " + to_hex(k.id) + ") has no certificate on the token to back up with it.",
         "Pick the certificate up first ('tokenprov pickup --cert FILE').");
  auto cas = authority_certs(s);
  pkcs12::Contents c;
  c.chain = order_chain(leaf.get(), cas);
  c.leaf = std::move(leaf);
  c.friendly_name = k.label;
  c.local_key_id = k.id;
  if (!req.cert_only) c.key = extract_private_key(s, k);
  r.with_key = !req.cert_only;
  r.chain = c.chain.size();
  r.leaf_subject = ossl::name_oneline(X509_get_subject_name(c.leaf.get()));
  auto der = pkcs12::build(c, password, req.compat);
  pkcs12::verify_roundtrip(der, password, c);
  write_file_atomic(req.out, der, 0600, req.force);
  OPENSSL_cleanse(der.data(), der.size());
  return r;
}

namespace {
// Imports the private key by unwrapping it under a session AES key.
CK_OBJECT_HANDLE import_private_key(p11::Session& s, EVP_PKEY* key, const std::string& label, const p11::Bytes& id,
                                    bool exportable, CK_KEY_TYPE kt) {
  ossl::Pkcs8Ptr info(EVP_PKEY2PKCS8(key));
  if (!info) ossl::fail_ssl(ExitCode::BadInput, "The backup's key cannot be encoded as PKCS#8");
  int n = i2d_PKCS8_PRIV_KEY_INFO(info.get(), nullptr);
  p11::Bytes pkcs8(static_cast<std::size_t>(n));
  unsigned char* p = pkcs8.data();
  i2d_PKCS8_PRIV_KEY_INFO(info.get(), &p);
  SessionAesKey kek(s, false);
  p11::Bytes wrapped = aes_kwp(kek.value(), pkcs8, true);
  OPENSSL_cleanse(pkcs8.data(), pkcs8.size());
  p11::Attributes t;
  t.add_class(CKO_PRIVATE_KEY).add_ulong(CKA_KEY_TYPE, kt);
  t.add_bool(CKA_TOKEN, true).add_bool(CKA_PRIVATE, true).add_bool(CKA_SENSITIVE, true);
  t.add_bool(CKA_EXTRACTABLE, exportable).add_bool(CKA_MODIFIABLE, true);
  t.add_string(CKA_LABEL, label).add_bytes(CKA_ID, id);
  t.add_bool(CKA_SIGN, true);
  if (kt == CKK_RSA) t.add_bool(CKA_DECRYPT, true).add_bool(CKA_UNWRAP, false);
  CK_MECHANISM mech{CKM_AES_KEY_WRAP_PAD, nullptr, 0};
  return s.unwrap_key(mech, kek.handle(), wrapped, t, "putting the key '" + label + "' on the token");
}

CK_OBJECT_HANDLE import_public_key(p11::Session& s, EVP_PKEY* key, const std::string& label, const p11::Bytes& id,
                                   CK_KEY_TYPE kt) {
  p11::Attributes t;
  t.add_class(CKO_PUBLIC_KEY).add_ulong(CKA_KEY_TYPE, kt);
  t.add_bool(CKA_TOKEN, true).add_bool(CKA_PRIVATE, false).add_bool(CKA_MODIFIABLE, true);
  t.add_string(CKA_LABEL, label).add_bytes(CKA_ID, id).add_bool(CKA_VERIFY, true);
  if (kt == CKK_RSA) {
    BIGNUM *n = nullptr, *e = nullptr;
    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n);
    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e);
    p11::Bytes nb(static_cast<std::size_t>(BN_num_bytes(n))), eb(static_cast<std::size_t>(BN_num_bytes(e)));
    BN_bn2bin(n, nb.data());
    BN_bn2bin(e, eb.data());
    BN_free(n);
    BN_free(e);
    t.add_bytes(CKA_MODULUS, nb).add_bytes(CKA_PUBLIC_EXPONENT, eb).add_bool(CKA_ENCRYPT, true);
  } else {
    // CKA_EC_PARAMS (the curve's OID) and CKA_EC_POINT (DER OCTET STRING).
    char group[64] = {0};
    std::size_t glen = 0;
    EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &glen);
    int nid = OBJ_sn2nid(group);
    if (nid == NID_undef) nid = EC_curve_nist2nid(group);
    ASN1_OBJECT* oid = OBJ_nid2obj(nid);
    int olen = i2d_ASN1_OBJECT(oid, nullptr);
    p11::Bytes params(static_cast<std::size_t>(olen));
    unsigned char* pp = params.data();
    i2d_ASN1_OBJECT(oid, &pp);
    std::size_t len = 0;
    EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0, &len);
    p11::Bytes pt(len);
    EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pt.data(), pt.size(), &len);
    ASN1_OCTET_STRING* os = ASN1_OCTET_STRING_new();
    ASN1_OCTET_STRING_set(os, pt.data(), static_cast<int>(len));
    int dlen = i2d_ASN1_OCTET_STRING(os, nullptr);
    p11::Bytes point(static_cast<std::size_t>(dlen));
    unsigned char* dp = point.data();
    i2d_ASN1_OCTET_STRING(os, &dp);
    ASN1_OCTET_STRING_free(os);
    t.add_bytes(CKA_EC_PARAMS, params).add_bytes(CKA_EC_POINT, point);
  }
  return s.create(t, "putting the public key '" + label + "' on the token");
}
// The private key an interrupted restore of this key left: the label and id
// this restore writes, the same key type, and the same key. Else
// CK_INVALID_HANDLE.
CK_OBJECT_HANDLE interrupted_restore(const p11::Session& s, EVP_PKEY* key, const std::string& label, const p11::Bytes& id,
                                     CK_KEY_TYPE kt) {
  p11::Attributes t;
  t.add_class(CKO_PRIVATE_KEY).add_string(CKA_LABEL, label).add_bytes(CKA_ID, id);
  auto hits = s.find(t, 2);
  if (hits.size() != 1 || s.attr_ulong(hits[0], CKA_KEY_TYPE) != kt) return CK_INVALID_HANDLE;
  return private_key_matches(s, hits[0], kt, key) ? hits[0] : CK_INVALID_HANDLE;
}
} // namespace

RestoreResult restore_backup(p11::Session& s, const RestoreRequest& req, const Secret& password) {
  auto data = read_input_file(req.in, input::pkcs12);
  auto c = pkcs12::parse(data, password, req.in, true);
  OPENSSL_cleanse(data.data(), data.size());
  int base = EVP_PKEY_get_base_id(c.key.get());
  CK_KEY_TYPE kt = base == EVP_PKEY_RSA ? CKK_RSA : base == EVP_PKEY_EC ? CKK_EC : CK_UNAVAILABLE_INFORMATION;
  if (kt == CK_UNAVAILABLE_INFORMATION)
    fail(ExitCode::BadInput, "The key in '" + req.in + "' is of a type tokenprov cannot restore (RSA and EC only).");
  std::string label = req.label;
  if (label.empty()) label = c.friendly_name;
  if (label.empty() && c.leaf) label = cert_label(c.leaf.get());
  if (label.empty()) fail(ExitCode::BadInput, "The backup '" + req.in + "' names no key; give one with --label.");
  p11::Bytes id = c.local_key_id.empty() || c.local_key_id.size() > 64 ? derive_key_id(c.key.get()) : c.local_key_id;
  // Derive the id from the public key when the file's localKeyID is a hash of the certificate (OpenSSL, NSS).
  if (c.leaf && c.local_key_id.size() == 20) {
    unsigned char md[20];
    unsigned int mdlen = 0;
    X509_digest(c.leaf.get(), EVP_sha1(), md, &mdlen);
    if (std::equal(md, md + 20, c.local_key_id.begin())) id = derive_key_id(c.key.get());
  }
  // A restore of this file that was cut short by a token pulled out mid-write
  // (rollback impossible) left a prefix of what is written below, private key
  // first. Complete it rather than refuse: the key is the same one.
  CK_OBJECT_HANDLE resumed_priv = interrupted_restore(s, c.key.get(), label, id, kt);
  CK_OBJECT_HANDLE resumed_pub = CK_INVALID_HANDLE;
  if (resumed_priv != CK_INVALID_HANDLE) {
    p11::Attributes t;
    t.add_class(CKO_PUBLIC_KEY).add_bytes(CKA_ID, id);
    auto pubs = s.find(t, 2);
    if (pubs.size() == 1) resumed_pub = pubs[0];
    bool missing = resumed_pub == CK_INVALID_HANDLE || (c.leaf && find_certificate(s, c.leaf.get()).empty());
    for (auto& ca : c.chain) missing = missing || find_certificate(s, ca.get()).empty();
    if (!missing)
      fail(ExitCode::Exists, "The key in '" + req.in + "' is on the token already, with its certificates; nothing was written.");
  } else {
    if (find_key_by_public(s, c.key.get()))
      fail(ExitCode::Exists, "The key in '" + req.in + "' is on the token already; nothing was written.");
    if (label_in_use(s, label))
      fail(ExitCode::Exists, "The label '" + label + "' is in use on the token; nothing was written.",
           "Give another one with --label.");
    if (id_in_use(s, id))
      fail(ExitCode::Exists, "The id " + to_hex(id) + " is in use on the token; nothing was written.");
  }

  RestoreResult r;
  r.resumed = resumed_priv != CK_INVALID_HANDLE;
  std::vector<CK_OBJECT_HANDLE> created; // rolled back on failure; a resumed key is kept
  try {
    auto priv = resumed_priv;
    if (priv == CK_INVALID_HANDLE) {
      priv = import_private_key(s, c.key.get(), label, id, req.exportable, kt);
      created.push_back(priv);
    }
    auto pub = resumed_pub;
    if (pub == CK_INVALID_HANDLE) {
      pub = import_public_key(s, c.key.get(), label, id, kt);
      created.push_back(pub);
    }
    r.key = KeyRef{priv, pub, label, id, kt};
    // The chain before the leaf, as pickup does: a leaf on the token has its chain.
    for (auto it = c.chain.rbegin(); it != c.chain.rend(); ++it) {
      X509* ca = it->get();
      if (!find_certificate(s, ca).empty()) continue;
      ossl::EvpPkeyPtr pk(X509_get_pubkey(ca));
      created.push_back(write_certificate(s, ca, cert_label(ca), pk ? derive_key_id(pk.get()) : p11::Bytes{}, true));
      ++r.certs_written;
    }
    if (c.leaf && find_certificate(s, c.leaf.get()).empty()) {
      created.push_back(write_certificate(s, c.leaf.get(), label, id, false));
      ++r.certs_written;
    }
  } catch (...) {
    for (auto it = created.rbegin(); it != created.rend(); ++it) s.destroy_noexcept(*it);
    throw;
  }
  if (c.leaf) r.leaf_subject = ossl::name_oneline(X509_get_subject_name(c.leaf.get()));
  return r;
}

} // namespace tokenprov
