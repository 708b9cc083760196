// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/keys.hpp"

#include "tokenprov/capabilities.hpp"
#include "tokenprov/uri.hpp"
#include "tokenprov/uri_resolve.hpp"
#include "tokenprov/utf8.hpp"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstring>
#include <tuple>

namespace tokenprov {

using p11::Attributes;
using p11::Bytes;

namespace {
// DER OIDs for CKA_EC_PARAMS.
const Bytes kOidP256 = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
const Bytes kOidP384 = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
const Bytes kOidEd25519 = {0x06, 0x03, 0x2b, 0x65, 0x70};
// PrintableString "edwards25519", which some tokens use instead of the OID.
const Bytes kStrEd25519 = {0x13, 0x0c, 'e', 'd', 'w', 'a', 'r', 'd', 's', '2', '5', '5', '1', '9'};

struct AlgInfo {
  Algorithm alg;
  const char* name;
};
constexpr AlgInfo kAlgs[] = {{Algorithm::Rsa2048, "rsa2048"}, {Algorithm::Rsa3072, "rsa3072"},
                             {Algorithm::Rsa4096, "rsa4096"}, {Algorithm::EcP256, "ec-p256"},
                             {Algorithm::EcP384, "ec-p384"},  {Algorithm::Ed25519, "ed25519"}};

bool is_rsa(Algorithm a) {
  return a == Algorithm::Rsa2048 || a == Algorithm::Rsa3072 || a == Algorithm::Rsa4096;
}

// Unwraps a DER OCTET STRING around an EC point if present.
Bytes unwrap_octet_string(const Bytes& v) {
  if (v.size() >= 2 && v[0] == 0x04) {
    std::size_t len = v[1], hdr = 2;
    if (v[1] & 0x80) {
      std::size_t nlen = v[1] & 0x7f;
      if (nlen == 0 || nlen > 2 || v.size() < 2 + nlen) return v;
      len = 0;
      for (std::size_t i = 0; i < nlen; ++i)
        len = (len << 8) | v[2 + i];
      hdr = 2 + nlen;
    }
    if (hdr + len == v.size()) return Bytes(v.begin() + static_cast<long>(hdr), v.end());
  }
  return v;
}

Bytes sha1(std::span<const std::uint8_t> d) {
  Bytes out(SHA_DIGEST_LENGTH);
  SHA1(d.data(), d.size(), out.data());
  return out;
}

} // namespace

const std::vector<std::string>& algorithm_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (auto& a : kAlgs)
      v.emplace_back(a.name);
    return v;
  }();
  return names;
}

Algorithm parse_algorithm(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (auto& a : kAlgs)
    if (lower == a.name) return a.alg;
  fail(ExitCode::Usage, "'" + name + "' is not a key algorithm tokenprov knows.",
       "Use one of rsa2048, rsa3072, rsa4096, ec-p256, ec-p384, ed25519.");
}

std::string algorithm_name(Algorithm a) {
  for (auto& x : kAlgs)
    if (x.alg == a) return x.name;
  return "unknown";
}

CK_KEY_TYPE key_type_of(Algorithm a) {
  return is_rsa(a) ? CKK_RSA : a == Algorithm::Ed25519 ? CKK_EC_EDWARDS : CKK_EC;
}

unsigned default_usage(Algorithm a) {
  return default_usage(key_type_of(a));
}

unsigned parse_usage(const std::vector<std::string>& words, Algorithm a) {
  unsigned u = usage_from_words(words);
  check_usage(u, key_type_of(a), algorithm_name(a));
  return u;
}

bool label_in_use(const p11::Session& s, const std::string& label) {
  Attributes t;
  t.add_string(CKA_LABEL, label);
  return !s.find(t, 1).empty();
}

bool id_in_use(const p11::Session& s, const Bytes& id) {
  Attributes t;
  t.add_bytes(CKA_ID, id);
  return !s.find(t, 1).empty();
}

Bytes derive_key_id(EVP_PKEY* pub) {
  int type = EVP_PKEY_get_base_id(pub);
  if (type == EVP_PKEY_RSA) {
    BIGNUM* raw_n = nullptr;
    if (!EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_N, &raw_n))
      ossl::fail_ssl(ExitCode::Internal, "Cannot read the RSA modulus");
    ossl::BnPtr n(raw_n);
    Bytes mod(static_cast<std::size_t>(BN_num_bytes(n.get())));
    BN_bn2bin(n.get(), mod.data());
    return sha1(mod);
  }
  if (type == EVP_PKEY_EC) {
    std::size_t len = 0;
    EVP_PKEY_get_octet_string_param(pub, OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0, &len);
    Bytes pt(len);
    if (!EVP_PKEY_get_octet_string_param(pub, OSSL_PKEY_PARAM_PUB_KEY, pt.data(), pt.size(), &len))
      ossl::fail_ssl(ExitCode::Internal, "Cannot read the EC point");
    pt.resize(len);
    return sha1(pt);
  }
  std::size_t len = 0;
  EVP_PKEY_get_raw_public_key(pub, nullptr, &len);
  Bytes raw(len);
  if (!EVP_PKEY_get_raw_public_key(pub, raw.data(), &len))
    ossl::fail_ssl(ExitCode::Internal, "Cannot read the public key");
  return sha1(raw);
}

bool private_key_matches(const p11::Session& s, CK_OBJECT_HANDLE priv, CK_KEY_TYPE kt, EVP_PKEY* pub) {
  if (kt == CKK_RSA) {
    auto mod = s.attr_bytes(priv, CKA_MODULUS);
    BIGNUM* raw_n = nullptr;
    if (!mod || EVP_PKEY_get_base_id(pub) != EVP_PKEY_RSA || !EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_N, &raw_n))
      return false;
    ossl::BnPtr n(raw_n);
    Bytes nb(static_cast<std::size_t>(BN_num_bytes(n.get())));
    BN_bn2bin(n.get(), nb.data());
    auto first = std::find_if(mod->begin(), mod->end(), [](std::uint8_t b) { return b != 0; });
    return Bytes(first, mod->end()) == nb;
  }
  Bytes data(32);
  if (RAND_bytes(data.data(), static_cast<int>(data.size())) != 1) return false;
  bool ok = false;
  if (kt == CKK_EC && EVP_PKEY_get_base_id(pub) == EVP_PKEY_EC) {
    CK_MECHANISM mech{CKM_ECDSA, nullptr, 0};
    Bytes rs = s.sign(mech, priv, data); // DATA stands in for a digest
    if (rs.empty() || rs.size() % 2 != 0) return false;
    Bytes der = ossl::ecdsa_sig_der(ossl::ecdsa_sig_from_raw(rs).get()); // the token's r||s as OpenSSL verifies it
    ossl::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new(pub, nullptr));
    ok = ctx && EVP_PKEY_verify_init(ctx.get()) == 1 &&
         EVP_PKEY_verify(ctx.get(), der.data(), der.size(), data.data(), data.size()) == 1;
  } else if (kt == CKK_EC_EDWARDS && EVP_PKEY_get_base_id(pub) == EVP_PKEY_ED25519) {
    CK_MECHANISM mech{CKM_EDDSA, nullptr, 0};
    Bytes sig = s.sign(mech, priv, data);
    ossl::EvpMdCtxPtr md(EVP_MD_CTX_new());
    ok = md && EVP_DigestVerifyInit(md.get(), nullptr, nullptr, nullptr, pub) == 1 &&
         EVP_DigestVerify(md.get(), sig.data(), sig.size(), data.data(), data.size()) == 1;
  }
  ERR_clear_error();
  return ok;
}

KeyRef complete_key_pair(p11::Session& s, KeyRef k) {
  if (k.pub != CK_INVALID_HANDLE || k.priv == CK_INVALID_HANDLE) return k;
  Attributes t;
  t.add_class(CKO_PUBLIC_KEY).add_string(CKA_LABEL, k.label);
  for (auto h : s.find(t)) {
    if (s.attr_ulong(h, CKA_KEY_TYPE) != k.type) continue;
    KeyRef cand = k;
    cand.pub = h;
    ossl::EvpPkeyPtr pub;
    try {
      pub = public_key(s, cand);
    } catch (const p11::P11Error&) {
      throw;
    } catch (const Error&) {
      continue; // unreadable: not this key's
    }
    if (!private_key_matches(s, k.priv, k.type, pub.get())) continue;
    Bytes id = derive_key_id(pub.get());
    Attributes set1, set2;
    set1.add_bytes(CKA_ID, id);
    set2.add_bytes(CKA_ID, id);
    if (k.id != id) s.set_attributes(k.priv, set1, "completing the key pair '" + k.label + "' (CKA_ID)");
    s.set_attributes(h, set2, "completing the key pair '" + k.label + "' (CKA_ID)");
    k.pub = h;
    k.id = id;
    return k;
  }
  return k;
}

void destroy_key_noexcept(const p11::Session& s, const KeyRef& k) noexcept {
  if (k.priv != CK_INVALID_HANDLE) s.destroy_noexcept(k.priv);
  if (k.pub != CK_INVALID_HANDLE) s.destroy_noexcept(k.pub);
}

namespace {
// The mechanism and the public template's algorithm attributes.
CK_MECHANISM_TYPE add_algorithm(Attributes& pub, Algorithm a) {
  if (is_rsa(a)) {
    CK_ULONG bits = a == Algorithm::Rsa2048 ? 2048 : a == Algorithm::Rsa3072 ? 3072 : 4096;
    pub.add_ulong(CKA_MODULUS_BITS, bits);
    const std::uint8_t e[] = {0x01, 0x00, 0x01};
    pub.add_bytes(CKA_PUBLIC_EXPONENT, e);
    return CKM_RSA_PKCS_KEY_PAIR_GEN;
  }
  if (a == Algorithm::Ed25519) {
    pub.add_bytes(CKA_EC_PARAMS, kOidEd25519);
    return CKM_EC_EDWARDS_KEY_PAIR_GEN;
  }
  pub.add_bytes(CKA_EC_PARAMS, a == Algorithm::EcP256 ? kOidP256 : kOidP384);
  return CKM_EC_KEY_PAIR_GEN;
}

void check_free(const p11::Session& s, const KeyPolicy& policy) {
  if (policy.label.empty()) fail(ExitCode::Usage, "A key needs a label (--label).");
  require_utf8(policy.label, "key label");
  if (label_in_use(s, policy.label))
    fail(ExitCode::Exists, "The label '" + policy.label + "' is in use on the token already; nothing was generated.",
         "Choose another label; tokenprov never replaces keys.");
  if (!policy.id.empty() && id_in_use(s, policy.id))
    fail(ExitCode::Exists, "The id " + to_hex(policy.id) + " is in use on the token already; nothing was generated.",
         "Choose another --id, or leave it out to derive one from the public key.");
}

// Gives both halves the id derived from the public key.
// LOOK_FIRST: look for another key with that id first (not on a token this
// run initialized, which holds this key only).
void set_derived_id(p11::Session& s, KeyRef& k, bool look_first) {
  auto pk = public_key(s, k);
  Bytes id = derive_key_id(pk.get());
  if (look_first && id_in_use(s, id)) fail(ExitCode::Exists, "A key with the same public key id is on the token already.");
  Attributes set1, set2;
  set1.add_bytes(CKA_ID, id);
  set2.add_bytes(CKA_ID, id);
  s.set_attributes(k.priv, set1, "setting the key's CKA_ID");
  s.set_attributes(k.pub, set2, "setting the key's CKA_ID");
  k.id = id;
}
} // namespace

KeyRef generate_key(p11::Session& s, Algorithm a, const KeyPolicy& policy) {
  if (policy.fresh_token) {
    if (policy.label.empty()) fail(ExitCode::Usage, "A key needs a label (--label).");
    require_utf8(policy.label, "key label");
  } else {
    check_free(s, policy);
  }
  KeyPolicyAttrs pa{key_type_of(a), policy.usage ? policy.usage : default_usage(a), policy.exportable};
  if (!policy.fresh_token) require_keygen(s.module(), s.slot(), a, pa.usage & UsageSign);
  // A temporary random id while generating; the real one is set below. From
  // OpenSSL, not C_GenerateRandom: some modules have no RNG (CKR_RANDOM_NO_RNG).
  Bytes temp_id(16);
  if (RAND_bytes(temp_id.data(), static_cast<int>(temp_id.size())) != 1)
    ossl::fail_ssl(ExitCode::Internal, "Cannot make random bytes for a temporary key id");
  const Bytes& gen_id = policy.id.empty() ? temp_id : policy.id;
  Attributes pub, priv;
  CK_MECHANISM mech{add_algorithm(pub, a), nullptr, 0};
  add_public_template(pub, pa, policy.label, gen_id);
  add_private_template(priv, pa, policy.label, gen_id);
  const std::string what = "generating the " + algorithm_name(a) + " key '" + policy.label + "'";
  CK_OBJECT_HANDLE hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE;
  try {
    std::tie(hpub, hpriv) = s.generate_key_pair(mech, pub, priv, what);
  } catch (const p11::P11Error& e) {
    if (!is_template_refusal(e.rv()) && e.rv() != CKR_GENERAL_ERROR) throw;
    // tpm2-pkcs11 refuses a template that denies a usage its TPM key has anyway
    // (CKR_GENERAL_ERROR, "attr mismatch"): ask for the granted usages only, then
    // check_policy_kept() below sets the denied ones false and reads every one back.
    Attributes pub2, priv2;
    CK_MECHANISM mech2{add_algorithm(pub2, a), nullptr, 0};
    add_public_template(pub2, pa, policy.label, gen_id, TemplateForm::UsageGranted);
    add_private_template(priv2, pa, policy.label, gen_id, TemplateForm::UsageGranted);
    try {
      std::tie(hpub, hpriv) = s.generate_key_pair(mech2, pub2, priv2, what);
    } catch (const p11::P11Error&) {
      if (is_template_refusal(e.rv())) policy_refused(e, pa, what);
      throw e;
    }
  }
  KeyRef k{hpriv, hpub, policy.label, gen_id, pa.type};
  try {
    check_policy_kept(s, hpriv, private_policy(pa), what + " (private key)");
    check_policy_kept(s, hpub, public_policy(pa), what + " (public key)");
    if (policy.id.empty()) set_derived_id(s, k, !policy.fresh_token);
  } catch (...) {
    destroy_key_noexcept(s, k);
    throw;
  }
  return k;
}

namespace {
KeyRef key_from_private(const p11::Session& s, CK_OBJECT_HANDLE priv) {
  KeyRef k;
  k.priv = priv;
  auto v = s.attrs(priv, {CKA_LABEL, CKA_ID, CKA_KEY_TYPE}); // one round trip, not three
  if (v[0]) k.label.assign(v[0]->begin(), v[0]->end());
  k.id = v[1].value_or(Bytes{});
  k.type = CKK_RSA;
  if (v[2] && v[2]->size() == sizeof(CK_ULONG)) std::memcpy(&k.type, v[2]->data(), sizeof(CK_ULONG));
  if (!k.id.empty()) {
    Attributes t;
    t.add_class(CKO_PUBLIC_KEY).add_bytes(CKA_ID, k.id);
    auto pubs = s.find(t, 2);
    if (pubs.size() == 1) k.pub = pubs[0];
  }
  return k;
}
} // namespace

KeyRef key_at(const p11::Session& s, CK_OBJECT_HANDLE priv) { return key_from_private(s, priv); }

std::vector<KeyRef> private_keys(const p11::Session& s) {
  Attributes t;
  t.add_class(CKO_PRIVATE_KEY);
  std::vector<KeyRef> out;
  for (auto h : s.find(t))
    out.push_back(key_from_private(s, h));
  return out;
}

KeyRef find_key(const p11::Session& s, const std::string& selector) {
  if (selector.empty()) fail(ExitCode::Usage, "Say which key with --key (a pkcs11: URI, id:HEX or a label).");
  Attributes t;
  t.add_class(CKO_PRIVATE_KEY);
  if (Pkcs11Uri::looks_like_uri(selector)) {
    auto uri = parse_selector_uri(selector); // pin-value refused, masked
    uri.require_evaluable("the key");
    if (!uri_selects_token(uri, s.module(), s.token_info())) // its token, slot and library attributes too
      fail(ExitCode::Token, "The key URI '" + selector + "' names another token than the one open ('" +
                                s.token_info().label + "').",
           "Select the token with the key URI alone, or with a --token that agrees with it.");
    if (auto v = uri.get("object")) t.add_string(CKA_LABEL, *v);
    if (auto v = uri.get("id")) t.add_string(CKA_ID, *v);
    if (auto v = uri.get("type"); v && *v != "private")
      fail(ExitCode::Usage,
           "The key URI '" + selector + "' names type=" + *v + "; a private key (type=private) is needed.");
  } else if (selector.rfind("id:", 0) == 0) {
    t.add_string(CKA_ID, from_hex(selector.substr(3)));
  } else {
    t.add_string(CKA_LABEL, selector);
  }
  auto hits = s.find(t, 3);
  if (hits.empty())
    fail(ExitCode::BadInput, "No private key on the token matches '" + selector + "'.",
         "List the keys with 'tokenprov list --pin-source ...'; private keys are seen only after login.");
  if (hits.size() > 1)
    fail(ExitCode::Usage, "Several private keys match '" + selector + "'.", "Select the key by id (id:HEX).");
  return key_from_private(s, hits[0]);
}

std::optional<KeyRef> find_key_by_public(const p11::Session& s, EVP_PKEY* pub) {
  auto want = ossl::spki_der(pub);
  for (auto& k : private_keys(s)) {
    try {
      auto pk = public_key(s, k);
      if (ossl::spki_der(pk.get()) == want) return k;
    } catch (const p11::P11Error&) {
      throw; // the token failed: "not found" would be a guess
    } catch (const Error&) {
      // A key whose public half cannot be read cannot be the one.
    }
  }
  return std::nullopt;
}

namespace {
ossl::EvpPkeyPtr read_public_key(const p11::Session& s, const KeyRef& k, CK_OBJECT_HANDLE src) {
  if (k.type == CKK_RSA) {
    auto v = s.attrs(src, {CKA_MODULUS, CKA_PUBLIC_EXPONENT}); // one round trip
    auto &n = v[0], &e = v[1];
    if (!n || !e) fail(ExitCode::Token, "The RSA key '" + k.label + "' has no readable public key on the token.");
    ossl::BnPtr bn_n(BN_bin2bn(n->data(), static_cast<int>(n->size()), nullptr));
    ossl::BnPtr bn_e(BN_bin2bn(e->data(), static_cast<int>(e->size()), nullptr));
    ossl::OsslParamBldPtr bld(OSSL_PARAM_BLD_new());
    OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get());
    OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get());
    ossl::OsslParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
    ossl::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr));
    EVP_PKEY* pk = nullptr;
    int ok = ctx && EVP_PKEY_fromdata_init(ctx.get()) == 1 &&
             EVP_PKEY_fromdata(ctx.get(), &pk, EVP_PKEY_PUBLIC_KEY, params.get()) == 1;
    if (!ok) ossl::fail_ssl(ExitCode::Token, "The RSA public key of '" + k.label + "' is malformed");
    return ossl::EvpPkeyPtr(pk);
  }
  if (src == k.priv)
    fail(ExitCode::Token,
         "The " + key_type_name(k.type) + " key '" + k.label + "' has no public key object on the token.");
  auto v = s.attrs(src, {CKA_EC_PARAMS, CKA_EC_POINT}); // one round trip
  auto &params = v[0], &point = v[1];
  if (!params || !point) fail(ExitCode::Token, "The key '" + k.label + "' has no readable EC public key on the token.");
  Bytes raw = unwrap_octet_string(*point);
  if (k.type == CKK_EC_EDWARDS) {
    if (*params != kOidEd25519 && *params != kStrEd25519)
      fail(ExitCode::Token, "The key '" + k.label + "' is on an Edwards curve tokenprov does not support.");
    EVP_PKEY* pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, raw.data(), raw.size());
    if (!pk) ossl::fail_ssl(ExitCode::Token, "The Ed25519 public key of '" + k.label + "' is malformed");
    return ossl::EvpPkeyPtr(pk);
  }
  const char* group = *params == kOidP256 ? "P-256" : *params == kOidP384 ? "P-384" : nullptr;
  if (!group) fail(ExitCode::Token, "The key '" + k.label + "' is on a curve tokenprov does not support.");
  OSSL_PARAM p[3];
  p[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, const_cast<char*>(group), 0);
  p[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, raw.data(), raw.size());
  p[2] = OSSL_PARAM_construct_end();
  ossl::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* pk = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 || EVP_PKEY_fromdata(ctx.get(), &pk, EVP_PKEY_PUBLIC_KEY, p) != 1)
    ossl::fail_ssl(ExitCode::Token, "The EC public key of '" + k.label + "' is malformed");
  return ossl::EvpPkeyPtr(pk);
}
} // namespace

ossl::EvpPkeyPtr public_key(const p11::Session& s, const KeyRef& k) {
  CK_OBJECT_HANDLE src = k.pub != CK_INVALID_HANDLE ? k.pub : k.priv;
  if (!k.public_cache || k.public_cache_from != src) {
    auto pk = read_public_key(s, k, src);
    k.public_cache.reset(pk.release(), EVP_PKEY_free);
    k.public_cache_from = src;
  }
  EVP_PKEY_up_ref(k.public_cache.get());
  return ossl::EvpPkeyPtr(k.public_cache.get());
}

} // namespace tokenprov
