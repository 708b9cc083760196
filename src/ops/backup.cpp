// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/backup.hpp"
#include "tokenprov/capabilities.hpp"

#include "tokenprov/fileio.hpp"
#include "tokenprov/key_policy.hpp"
#include "tokenprov/key_wrap.hpp"
#include "tokenprov/pickup.hpp"
#include "tokenprov/uri.hpp"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <algorithm>

namespace tokenprov {

namespace {

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

namespace {
ossl::EvpPkeyPtr decode_pkcs8(p11::Bytes& pkcs8, const std::string& label) {
  const unsigned char* p = pkcs8.data();
  ossl::Pkcs8Ptr info(d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, static_cast<long>(pkcs8.size())));
  // After the DER, nothing but the zeros SoftHSM2 pads to a multiple of 8 before RFC 5649.
  std::size_t used = static_cast<std::size_t>(p - pkcs8.data());
  bool tail_ok = info && pkcs8.size() - used < 8 &&
                 std::all_of(pkcs8.begin() + static_cast<long>(used), pkcs8.end(), [](std::uint8_t b) { return b == 0; });
  OPENSSL_cleanse(pkcs8.data(), pkcs8.size());
  if (!tail_ok) info.reset();
  if (!info) ossl::fail_ssl(ExitCode::Token, "The token returned a key for '" + label + "' that is not PKCS#8");
  ossl::EvpPkeyPtr key(EVP_PKCS82PKEY(info.get()));
  if (!key) ossl::fail_ssl(ExitCode::Token, "The key '" + label + "' taken from the token cannot be read");
  return key;
}

// The EC key rebuilt from the private scalar the token wrapped out and the
// point of its public key object, with the curve by name. OpenSSL encodes a
// key made so with its public key (RFC 5915's publicKey, which GnuTLS
// requires); one decoded from a token's PKCS#8 without it (SoftHSM2's) is
// encoded again without it.
ossl::EvpPkeyPtr ec_with_public(EVP_PKEY* key, EVP_PKEY* pub, const std::string& label) {
  char group[64] = {0};
  std::size_t glen = 0, plen = 0;
  p11::Bytes point(256);
  BIGNUM* raw_d = nullptr;
  bool ok = EVP_PKEY_get_utf8_string_param(pub, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &glen) == 1 &&
            EVP_PKEY_get_octet_string_param(pub, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size(), &plen) == 1 &&
            EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &raw_d) == 1;
  ossl::SecretBnPtr d(raw_d);
  p11::Bytes priv(ok ? static_cast<std::size_t>(BN_num_bytes(d.get())) + 1 : 0); // native byte order for OSSL_PARAM
  ok = ok && BN_bn2nativepad(d.get(), priv.data(), static_cast<int>(priv.size())) > 0;
  d.reset();
  EVP_PKEY* out = nullptr;
  if (ok) {
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
                           OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point.data(), plen),
                           OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_PRIV_KEY, priv.data(), priv.size()),
                           OSSL_PARAM_construct_end()};
    ossl::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
    ok = ctx && EVP_PKEY_fromdata_init(ctx.get()) == 1 &&
         EVP_PKEY_fromdata(ctx.get(), &out, EVP_PKEY_KEYPAIR, params) == 1;
  }
  OPENSSL_cleanse(priv.data(), priv.size());
  if (!ok) ossl::fail_ssl(ExitCode::Token, "The EC key '" + label + "' taken from the token cannot be rebuilt");
  return ossl::EvpPkeyPtr(out);
}

// The private half belongs to the public half (for EC: the scalar gives the point).
bool pairwise_ok(EVP_PKEY* key) {
  ossl::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  bool ok = ctx && EVP_PKEY_pairwise_check(ctx.get()) == 1;
  ERR_clear_error();
  return ok;
}
} // namespace

ossl::EvpPkeyPtr extract_private_key(const p11::Session& s, const KeyRef& k) {
  auto pub = public_key(s, k);
  p11::Bytes pkcs8 = wrap_out_pkcs8(s, k.priv);
  auto key = decode_pkcs8(pkcs8, k.label);
  if (k.type == CKK_EC) key = ec_with_public(key.get(), pub.get(), k.label);
  // The key must be the one whose public half is on the token.
  if (EVP_PKEY_eq(key.get(), pub.get()) != 1 || !pairwise_ok(key.get()))
    fail(ExitCode::Token, "The key taken from the token does not match the public key of '" + k.label + "'; no file was written.");
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
// NSS softoken (3.87, Debian 12) stores an EC private key only with its public
// point beside it, in the vendor attribute CKA_NSS_DB (0xD5A0DB00): its
// C_UnwrapKey of an EC key without it fails (CKR_TEMPLATE_INCOMPLETE). NSS's
// own importer sends it to its internal token only, and so do we: the
// attribute is NSS's, so it goes only to a token whose manufacturer says it
// is NSS softoken; any other module would refuse an attribute it does not know.
constexpr CK_ATTRIBUTE_TYPE kCkaNssDb = 0xD5A0DB00UL;

void add_nss_public_value(const p11::Session& s, p11::Attributes& t, EVP_PKEY* key) {
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) return;
  if (s.token_info().manufacturer != "Mozilla Foundation") return;
  std::size_t len = 0;
  if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0, &len) != 1 || len == 0) return;
  p11::Bytes pt(len);
  if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pt.data(), pt.size(), &len) != 1) return;
  pt.resize(len);
  t.add_bytes(kCkaNssDb, pt);
}

// Imports the private key by unwrapping it under a session AES key.
CK_OBJECT_HANDLE import_private_key(p11::Session& s, EVP_PKEY* key, const std::string& label, const p11::Bytes& id,
                                    const KeyPolicyAttrs& pa) {
  ossl::Pkcs8Ptr info(EVP_PKEY2PKCS8(key));
  if (!info) ossl::fail_ssl(ExitCode::BadInput, "The backup's key cannot be encoded as PKCS#8");
  int n = i2d_PKCS8_PRIV_KEY_INFO(info.get(), nullptr);
  p11::Bytes pkcs8(static_cast<std::size_t>(n));
  unsigned char* p = pkcs8.data();
  i2d_PKCS8_PRIV_KEY_INFO(info.get(), &p);
  p11::Attributes t;
  add_private_template(t, pa, label, id);
  add_nss_public_value(s, t, key);
  const std::string what = "putting the key '" + label + "' on the token";
  try {
    auto h = unwrap_in_pkcs8(s, pkcs8, t, what);
    OPENSSL_cleanse(pkcs8.data(), pkcs8.size());
    return h;
  } catch (const p11::P11Error& e) {
    OPENSSL_cleanse(pkcs8.data(), pkcs8.size());
    if (is_template_refusal(e.rv()) && e.function() == "C_UnwrapKey") policy_refused(e, pa, what);
    throw;
  } catch (...) {
    OPENSSL_cleanse(pkcs8.data(), pkcs8.size());
    throw;
  }
}

p11::Bytes der_oid(int nid) {
  ASN1_OBJECT* oid = OBJ_nid2obj(nid);
  int n = oid ? i2d_ASN1_OBJECT(oid, nullptr) : 0;
  if (n <= 0) ossl::fail_ssl(ExitCode::BadInput, "The backup's key is on a curve tokenprov does not know");
  p11::Bytes out(static_cast<std::size_t>(n));
  unsigned char* p = out.data();
  i2d_ASN1_OBJECT(oid, &p);
  return out;
}

// CKA_EC_POINT: the point (or Ed25519 key) in a DER OCTET STRING.
p11::Bytes der_octet_string(const p11::Bytes& v) {
  ossl::Asn1OctetStringPtr os(ASN1_OCTET_STRING_new());
  ASN1_OCTET_STRING_set(os.get(), v.data(), static_cast<int>(v.size()));
  int n = i2d_ASN1_OCTET_STRING(os.get(), nullptr);
  p11::Bytes out(static_cast<std::size_t>(n));
  unsigned char* p = out.data();
  i2d_ASN1_OCTET_STRING(os.get(), &p);
  return out;
}

p11::Bytes bn_param(EVP_PKEY* key, const char* name) {
  BIGNUM* raw = nullptr;
  if (!EVP_PKEY_get_bn_param(key, name, &raw)) ossl::fail_ssl(ExitCode::BadInput, "The backup's RSA key is incomplete");
  ossl::BnPtr bn(raw);
  p11::Bytes out(static_cast<std::size_t>(BN_num_bytes(bn.get())));
  BN_bn2bin(bn.get(), out.data());
  return out;
}

// The public key's own attributes: modulus and exponent, or curve and point.
void add_public_value(p11::Attributes& t, EVP_PKEY* key, CK_KEY_TYPE kt) {
  if (kt == CKK_RSA) {
    t.add_bytes(CKA_MODULUS, bn_param(key, OSSL_PKEY_PARAM_RSA_N));
    t.add_bytes(CKA_PUBLIC_EXPONENT, bn_param(key, OSSL_PKEY_PARAM_RSA_E));
    return;
  }
  std::size_t len = 0;
  p11::Bytes pt;
  if (kt == CKK_EC_EDWARDS) {
    EVP_PKEY_get_raw_public_key(key, nullptr, &len);
    pt.resize(len);
    EVP_PKEY_get_raw_public_key(key, pt.data(), &len);
    t.add_bytes(CKA_EC_PARAMS, der_oid(NID_ED25519)).add_bytes(CKA_EC_POINT, der_octet_string(pt));
    return;
  }
  char group[64] = {0};
  EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len);
  int nid = OBJ_sn2nid(group);
  if (nid == NID_undef) nid = EC_curve_nist2nid(group);
  EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0, &len);
  pt.resize(len);
  EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pt.data(), pt.size(), &len);
  pt.resize(len);
  t.add_bytes(CKA_EC_PARAMS, der_oid(nid)).add_bytes(CKA_EC_POINT, der_octet_string(pt));
}

CK_OBJECT_HANDLE import_public_key(p11::Session& s, EVP_PKEY* key, const std::string& label, const p11::Bytes& id,
                                   const KeyPolicyAttrs& pa) {
  p11::Attributes t;
  add_public_template(t, pa, label, id);
  add_public_value(t, key, pa.type);
  const std::string what = "putting the public key '" + label + "' on the token";
  try {
    return s.create(t, what);
  } catch (const p11::P11Error& e) {
    if (is_template_refusal(e.rv())) policy_refused(e, pa, what);
    throw;
  }
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

// The PKCS#11 key type of KEY, read from the backup IN; Error(BadInput) for a
// type tokenprov cannot restore.
CK_KEY_TYPE restorable_key_type(EVP_PKEY* key, const std::string& in) {
  int base = EVP_PKEY_get_base_id(key);
  CK_KEY_TYPE kt = base == EVP_PKEY_RSA         ? CKK_RSA
                   : base == EVP_PKEY_EC        ? CKK_EC
                   : base == EVP_PKEY_ED25519   ? CKK_EC_EDWARDS
                                                : CK_UNAVAILABLE_INFORMATION;
  if (kt == CK_UNAVAILABLE_INFORMATION)
    fail(ExitCode::BadInput,
         "The key in '" + in + "' is of a type tokenprov cannot restore (RSA, EC P-256/P-384 and Ed25519 only).");
  return kt;
}

// The CKA_ID the restored key gets: the file's localKeyID, unless it is
// missing, too long or a hash of the certificate (OpenSSL, NSS); then the
// one derived from the public key.
p11::Bytes restored_id(const pkcs12::Contents& c) {
  p11::Bytes id = c.local_key_id.empty() || c.local_key_id.size() > 64 ? derive_key_id(c.key.get()) : c.local_key_id;
  if (c.leaf && c.local_key_id.size() == 20) {
    unsigned char md[20];
    unsigned int mdlen = 0;
    X509_digest(c.leaf.get(), EVP_sha1(), md, &mdlen);
    if (std::equal(md, md + 20, c.local_key_id.begin())) id = derive_key_id(c.key.get());
  }
  return id;
}
} // namespace

RestoreResult restore_backup(p11::Session& s, const RestoreRequest& req, const Secret& password) {
  auto data = read_input_file(req.in, input::pkcs12);
  auto c = pkcs12::parse(data, password, req.in, true);
  OPENSSL_cleanse(data.data(), data.size());
  CK_KEY_TYPE kt = restorable_key_type(c.key.get(), req.in);
  KeyPolicyAttrs pa{kt, req.usage ? req.usage : default_usage(kt), req.exportable};
  check_usage(pa.usage, kt, key_type_name(kt));
  require_key_type(s.module(), s.slot(), kt);
  std::string label = req.label;
  if (label.empty()) label = c.friendly_name;
  if (label.empty() && c.leaf) label = cert_label(c.leaf.get());
  if (label.empty()) fail(ExitCode::BadInput, "The backup '" + req.in + "' names no key; give one with --label.");
  p11::Bytes id = restored_id(c);
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
  r.usage = pa.usage;
  p11::ObjectGuard created(s); // rolled back on failure; a resumed key is kept
  auto priv = resumed_priv;
  if (priv == CK_INVALID_HANDLE) {
    priv = import_private_key(s, c.key.get(), label, id, pa);
    created.add(priv);
    check_policy_kept(s, priv, private_policy(pa), "putting the key '" + label + "' on the token");
  }
  auto pub = resumed_pub;
  if (pub == CK_INVALID_HANDLE) {
    pub = import_public_key(s, c.key.get(), label, id, pa);
    created.add(pub);
    check_policy_kept(s, pub, public_policy(pa), "putting the public key '" + label + "' on the token");
  }
  r.key = KeyRef{priv, pub, label, id, kt};
  // The chain before the leaf, as pickup does: a leaf on the token has its chain.
  for (auto it = c.chain.rbegin(); it != c.chain.rend(); ++it) {
    X509* ca = it->get();
    if (!find_certificate(s, ca).empty()) continue;
    ossl::EvpPkeyPtr pk(X509_get_pubkey(ca));
    created.add(write_certificate(s, ca, cert_label(ca), pk ? derive_key_id(pk.get()) : p11::Bytes{}, true));
    ++r.certs_written;
  }
  if (c.leaf && find_certificate(s, c.leaf.get()).empty()) {
    created.add(write_certificate(s, c.leaf.get(), label, id, false));
    ++r.certs_written;
  }
  created.commit();
  if (c.leaf) r.leaf_subject = ossl::name_oneline(X509_get_subject_name(c.leaf.get()));
  return r;
}

} // namespace tokenprov
