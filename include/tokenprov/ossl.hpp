// SPDX-License-Identifier: Apache-2.0
// OpenSSL glue: owning pointers, error text, certificate loading helpers.
#pragma once

#include "tokenprov/error.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/pkcs12.h>
#include <openssl/pkcs7.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace tokenprov::ossl {

using Bytes = std::vector<std::uint8_t>;

template <auto Fn> struct Deleter {
  template <class T> void operator()(T* p) const noexcept { Fn(p); }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using X509ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY_free>>;
using EvpPkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, Deleter<EVP_PKEY_CTX_free>>;
using EvpMdCtxPtr = std::unique_ptr<EVP_MD_CTX, Deleter<EVP_MD_CTX_free>>;
using Pkcs7Ptr = std::unique_ptr<PKCS7, Deleter<PKCS7_free>>;
using Pkcs12Ptr = std::unique_ptr<PKCS12, Deleter<PKCS12_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>>;
using X509NamePtr = std::unique_ptr<X509_NAME, Deleter<X509_NAME_free>>;
using Pkcs8Ptr = std::unique_ptr<PKCS8_PRIV_KEY_INFO, Deleter<PKCS8_PRIV_KEY_INFO_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using SecretBnPtr = std::unique_ptr<BIGNUM, Deleter<BN_clear_free>>; // zeroed before it is freed
using EcdsaSigPtr = std::unique_ptr<ECDSA_SIG, Deleter<ECDSA_SIG_free>>;
using OsslParamPtr = std::unique_ptr<OSSL_PARAM, Deleter<OSSL_PARAM_free>>;
using OsslParamBldPtr = std::unique_ptr<OSSL_PARAM_BLD, Deleter<OSSL_PARAM_BLD_free>>;
using Asn1ObjectPtr = std::unique_ptr<ASN1_OBJECT, Deleter<ASN1_OBJECT_free>>;
using Asn1IntegerPtr = std::unique_ptr<ASN1_INTEGER, Deleter<ASN1_INTEGER_free>>;
using Asn1OctetStringPtr = std::unique_ptr<ASN1_OCTET_STRING, Deleter<ASN1_OCTET_STRING_free>>;
using X509AlgorPtr = std::unique_ptr<X509_ALGOR, Deleter<X509_ALGOR_free>>;
using X509ExtensionPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using X509PubkeyPtr = std::unique_ptr<X509_PUBKEY, Deleter<X509_PUBKEY_free>>;
using RsaPssParamsPtr = std::unique_ptr<RSA_PSS_PARAMS, Deleter<RSA_PSS_PARAMS_free>>;
using GeneralNamePtr = std::unique_ptr<GENERAL_NAME, Deleter<GENERAL_NAME_free>>;

// Memory OpenSSL allocated for the caller (i2d_* output, for instance).
inline void free_buffer(unsigned char* p) noexcept { OPENSSL_free(p); }
using BufferPtr = std::unique_ptr<unsigned char, Deleter<free_buffer>>;

// Stacks: the ones that own their elements free them too; X509RefStackPtr
// frees only the stack, its certificates belong to someone else.
inline void free_x509_stack(STACK_OF(X509) * sk) noexcept { sk_X509_pop_free(sk, X509_free); }
inline void free_x509_ref_stack(STACK_OF(X509) * sk) noexcept { sk_X509_free(sk); }
inline void free_extension_stack(STACK_OF(X509_EXTENSION) * sk) noexcept {
  sk_X509_EXTENSION_pop_free(sk, X509_EXTENSION_free);
}
inline void free_general_names(GENERAL_NAMES* sk) noexcept { sk_GENERAL_NAME_pop_free(sk, GENERAL_NAME_free); }
using X509StackPtr = std::unique_ptr<STACK_OF(X509), Deleter<free_x509_stack>>;
using X509RefStackPtr = std::unique_ptr<STACK_OF(X509), Deleter<free_x509_ref_stack>>;
using ExtensionStackPtr = std::unique_ptr<STACK_OF(X509_EXTENSION), Deleter<free_extension_stack>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<free_general_names>>;

// The queued OpenSSL errors as one line (and clears the queue).
std::string last_error();

// Throws Error(code, what + ": " + last_error()).
[[noreturn]] void fail_ssl(ExitCode code, const std::string& what);

X509Ptr dup(X509* c);
Bytes to_der(X509* c);
Bytes to_der(X509_REQ* r);
std::string to_pem(X509* c);
std::string to_pem(X509_REQ* r);
X509Ptr cert_from_der(std::span<const std::uint8_t> der);

// DER SubjectPublicKeyInfo of a key / of a certificate's key.
Bytes spki_der(EVP_PKEY* key);
// Sets XPK's algorithm and key bits from KEY (RSA, EC on a named curve,
// Ed25519) with the ASN.1 code alone, not OpenSSL 3.0's encoder and decoder
// (X509_PUBKEY_set costs ~2.5 million instructions). XPK keeps no EVP_PKEY:
// X509_PUBKEY_get0() and X509_REQ_get0_pubkey() answer NULL for it. False,
// XPK unchanged, for other keys.
bool set_pubkey_direct(X509_PUBKEY* xpk, EVP_PKEY* key);
Bytes spki_der(X509* cert);

std::string name_oneline(const X509_NAME* n); // RFC 2253-ish "CN=Alice,O=Example"
// The first NID entry of N as UTF-8 ("" when absent); the CN of a "/CN=.../O=..." DN.
std::string name_entry(const X509_NAME* n, int nid);
std::string dn_common_name(const std::string& dn);
// Parses "/CN=Alice/O=Example" (also accepts "CN=Alice,O=Example"). Throws
// Error(Usage) naming the bad part.
X509NamePtr parse_dn(const std::string& dn);
std::string serial_hex(X509* cert); // lower-case hex
std::string asn1_time_rfc3339(const ASN1_TIME* t);
std::string sha256_hex(std::span<const std::uint8_t> data);
std::string cert_fingerprint_sha256(X509* cert);
// An ECDSA signature as PKCS#11 returns it (r || s, each half the length) as
// an ECDSA_SIG. Throws Error(Token) when RS is empty or of odd length.
EcdsaSigPtr ecdsa_sig_from_raw(std::span<const std::uint8_t> rs);
// SIG as a DER ECDSA-Sig-Value (RFC 3279).
Bytes ecdsa_sig_der(const ECDSA_SIG* sig);


} // namespace tokenprov::ossl
