// SPDX-License-Identifier: Apache-2.0
// Signing with a token key (sign_message: RSA PKCS#1 v1.5 or PSS over SHA-256,
// ECDSA, Ed25519) and the AlgorithmIdentifier that names what it made.
#include "tokenprov/keys.hpp"

#include <openssl/ec.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

namespace tokenprov {

using p11::Bytes;

namespace {
Bytes digest(const EVP_MD* md, std::span<const std::uint8_t> m) {
  Bytes out(static_cast<std::size_t>(EVP_MD_get_size(md)));
  unsigned int n = 0;
  if (!EVP_Digest(m.data(), m.size(), out.data(), &n, md, nullptr)) ossl::fail_ssl(ExitCode::Internal, "Cannot hash");
  out.resize(n);
  return out;
}

// DigestInfo prefix for SHA-256 (RFC 8017, section 9.2, note 1).
const Bytes kSha256DigestInfo = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};

int ec_bits(EVP_PKEY* pub) {
  return EVP_PKEY_get_bits(pub);
}
} // namespace

Signature sign_message(const p11::Session& s, const KeyRef& k, std::span<const std::uint8_t> message,
                       SigScheme scheme) {
  Signature out;
  CK_MECHANISM mech{};
  if (k.type == CKK_RSA) {
    Bytes h = digest(EVP_sha256(), message);
    if (scheme == SigScheme::RsaPss) {
      CK_RSA_PKCS_PSS_PARAMS pss{CKM_SHA256, CKG_MGF1_SHA256, 32};
      mech = {CKM_RSA_PKCS_PSS, &pss, sizeof pss};
      out.value = s.sign(mech, k.priv, h);
      out.sig_nid = NID_rsassaPss;
    } else {
      Bytes di = kSha256DigestInfo;
      di.insert(di.end(), h.begin(), h.end());
      mech = {CKM_RSA_PKCS, nullptr, 0};
      out.value = s.sign(mech, k.priv, di);
      out.sig_nid = NID_sha256WithRSAEncryption;
    }
    return out;
  }
  if (k.type == CKK_EC) {
    auto pub = public_key(s, k);
    bool p384 = ec_bits(pub.get()) > 256;
    Bytes h = digest(p384 ? EVP_sha384() : EVP_sha256(), message);
    mech = {CKM_ECDSA, nullptr, 0};
    Bytes rs = s.sign(mech, k.priv, h);
    out.value = ossl::ecdsa_sig_der(ossl::ecdsa_sig_from_raw(rs).get());
    out.sig_nid = p384 ? NID_ecdsa_with_SHA384 : NID_ecdsa_with_SHA256;
    return out;
  }
  if (k.type == CKK_EC_EDWARDS) {
    mech = {CKM_EDDSA, nullptr, 0};
    out.value = s.sign(mech, k.priv, message);
    out.sig_nid = NID_ED25519;
    return out;
  }
  fail(ExitCode::Token, "The key '" + k.label + "' has a type tokenprov cannot sign with.");
}

void set_signature_algorithm(X509_ALGOR* alg, const KeyRef& k, EVP_PKEY* pub, SigScheme scheme) {
  if (k.type == CKK_RSA && scheme == SigScheme::RsaPss) {
    // RSASSA-PSS-params: SHA-256, MGF1 with SHA-256, salt 32, trailer 1.
    ossl::RsaPssParamsPtr pss(RSA_PSS_PARAMS_new());
    pss->hashAlgorithm = X509_ALGOR_new();
    X509_ALGOR_set_md(pss->hashAlgorithm, EVP_sha256());
    ossl::X509AlgorPtr mgf1md(X509_ALGOR_new());
    X509_ALGOR_set_md(mgf1md.get(), EVP_sha256());
    ASN1_STRING* mgf1param = nullptr;
    ASN1_item_pack(mgf1md.get(), ASN1_ITEM_rptr(X509_ALGOR), &mgf1param);
    pss->maskGenAlgorithm = X509_ALGOR_new();
    X509_ALGOR_set0(pss->maskGenAlgorithm, OBJ_nid2obj(NID_mgf1), V_ASN1_SEQUENCE, mgf1param);
    pss->saltLength = ASN1_INTEGER_new();
    ASN1_INTEGER_set(pss->saltLength, 32);
    ASN1_STRING* packed = nullptr;
    ASN1_item_pack(pss.get(), ASN1_ITEM_rptr(RSA_PSS_PARAMS), &packed);
    X509_ALGOR_set0(alg, OBJ_nid2obj(NID_rsassaPss), V_ASN1_SEQUENCE, packed);
    return;
  }
  if (k.type == CKK_RSA) {
    X509_ALGOR_set0(alg, OBJ_nid2obj(NID_sha256WithRSAEncryption), V_ASN1_NULL, nullptr);
  } else if (k.type == CKK_EC) {
    X509_ALGOR_set0(alg, OBJ_nid2obj(ec_bits(pub) > 256 ? NID_ecdsa_with_SHA384 : NID_ecdsa_with_SHA256), V_ASN1_UNDEF,
                    nullptr);
  } else {
    X509_ALGOR_set0(alg, OBJ_nid2obj(NID_ED25519), V_ASN1_UNDEF, nullptr);
  }
}

} // namespace tokenprov
