// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/token_pkey.hpp"

#include <openssl/ec.h>
#include <openssl/rsa.h>

#include <cstring>
#include <mutex>

namespace tokenprov {

namespace {

struct KeyCtx {
  const p11::Session* session;
  CK_OBJECT_HANDLE key;
};

int g_ex_index = -1;
RSA_METHOD* g_method = nullptr;
std::once_flag g_once;
thread_local std::exception_ptr t_token_error;

KeyCtx* ctx_of(RSA* rsa) { return static_cast<KeyCtx*>(RSA_get_ex_data(rsa, g_ex_index)); }

void free_ctx(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) { delete static_cast<KeyCtx*>(ptr); }

int token_op(bool sign, int flen, const unsigned char* from, unsigned char* to, RSA* rsa, int padding) {
  KeyCtx* c = ctx_of(rsa);
  if (!c) return -1;
  CK_MECHANISM mech{};
  CK_RSA_PKCS_OAEP_PARAMS oaep{CKM_SHA_1, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED, nullptr, 0};
  switch (padding) {
  case RSA_PKCS1_PADDING: mech = {CKM_RSA_PKCS, nullptr, 0}; break;
  case RSA_NO_PADDING: mech = {CKM_RSA_X_509, nullptr, 0}; break;
  case RSA_PKCS1_OAEP_PADDING:
    if (sign) return -1;
    mech = {CKM_RSA_PKCS_OAEP, &oaep, sizeof oaep};
    break;
  default: return -1;
  }
  t_token_error = nullptr;
  try {
    std::span<const std::uint8_t> in(from, static_cast<std::size_t>(flen));
    p11::Bytes out = sign ? c->session->sign(mech, c->key, in) : c->session->decrypt(mech, c->key, in);
    int max = RSA_size(rsa);
    if (out.size() > static_cast<std::size_t>(max)) return -1;
    std::memcpy(to, out.data(), out.size());
    int n = static_cast<int>(out.size());
    OPENSSL_cleanse(out.data(), out.size());
    return n;
  } catch (...) {
    t_token_error = std::current_exception(); // reported by the caller (take_token_error)
    return -1;                                 // exceptions never cross into OpenSSL's C code
  }
}

int priv_enc(int flen, const unsigned char* from, unsigned char* to, RSA* rsa, int padding) {
  return token_op(true, flen, from, to, rsa, padding);
}
int priv_dec(int flen, const unsigned char* from, unsigned char* to, RSA* rsa, int padding) {
  return token_op(false, flen, from, to, rsa, padding);
}

void init_once() {
  g_ex_index = RSA_get_ex_new_index(0, nullptr, nullptr, nullptr, free_ctx);
  g_method = RSA_meth_dup(RSA_PKCS1_OpenSSL());
  RSA_meth_set1_name(g_method, "tokenprov PKCS#11 key");
  RSA_meth_set_priv_enc(g_method, priv_enc);
  RSA_meth_set_priv_dec(g_method, priv_dec);
  RSA_meth_set_flags(g_method, RSA_meth_get_flags(g_method) | RSA_FLAG_EXT_PKEY);
}

// ---- EC: ECDSA on the token over the digest OpenSSL hands in -----------------------------

int g_ec_ex_index = -1;
EC_KEY_METHOD* g_ec_method = nullptr;
std::once_flag g_ec_once;

KeyCtx* ctx_of(EC_KEY* ec) { return static_cast<KeyCtx*>(EC_KEY_get_ex_data(ec, g_ec_ex_index)); }

// CKM_ECDSA signs the digest as given (the token truncates it to the order's
// length, as ECDSA does); the answer is r || s.
ECDSA_SIG* ec_sign_sig(const unsigned char* dgst, int dlen, const BIGNUM*, const BIGNUM*, EC_KEY* ec) {
  KeyCtx* c = ctx_of(ec);
  if (!c || dlen < 0) return nullptr;
  t_token_error = nullptr;
  try {
    CK_MECHANISM mech{CKM_ECDSA, nullptr, 0};
    p11::Bytes rs = c->session->sign(mech, c->key, std::span<const std::uint8_t>(dgst, static_cast<std::size_t>(dlen)));
    return ossl::ecdsa_sig_from_raw(rs).release();
  } catch (...) {
    t_token_error = std::current_exception(); // as token_op: reported by the caller
    return nullptr;
  }
}

int ec_sign(int, const unsigned char* dgst, int dlen, unsigned char* sig, unsigned int* siglen, const BIGNUM*,
            const BIGNUM*, EC_KEY* ec) {
  ossl::EcdsaSigPtr s(ec_sign_sig(dgst, dlen, nullptr, nullptr, ec));
  if (!s) return 0;
  int max = ECDSA_size(ec);
  int n = i2d_ECDSA_SIG(s.get(), nullptr);
  if (n <= 0 || n > max) return 0;
  unsigned char* p = sig;
  i2d_ECDSA_SIG(s.get(), &p);
  *siglen = static_cast<unsigned int>(n);
  return 1;
}

void ec_init_once() {
  g_ec_ex_index = EC_KEY_get_ex_new_index(0, nullptr, nullptr, nullptr, free_ctx);
  g_ec_method = EC_KEY_METHOD_new(EC_KEY_OpenSSL());
  int (*setup)(EC_KEY*, BN_CTX*, BIGNUM**, BIGNUM**) = nullptr;
  EC_KEY_METHOD_get_sign(g_ec_method, nullptr, &setup, nullptr);
  EC_KEY_METHOD_set_sign(g_ec_method, ec_sign, setup, ec_sign_sig);
}

} // namespace

std::exception_ptr take_token_error() noexcept {
  std::exception_ptr e = t_token_error;
  t_token_error = nullptr;
  return e;
}

ossl::EvpPkeyPtr token_ec_pkey(const p11::Session& s, const KeyRef& k) {
  if (k.type != CKK_EC) fail(ExitCode::Internal, "token_ec_pkey: the key '" + k.label + "' is not an EC key.");
  std::call_once(g_ec_once, ec_init_once);
  auto pub = public_key(s, k);
  EC_KEY* ec = EVP_PKEY_get1_EC_KEY(pub.get());
  if (!ec) ossl::fail_ssl(ExitCode::Internal, "Cannot read the EC public key");
  // The method is set before the key goes into its EVP_PKEY, so OpenSSL sees
  // a foreign key and signs through the method, not its provider.
  if (EC_KEY_set_method(ec, g_ec_method) != 1 || EC_KEY_set_ex_data(ec, g_ec_ex_index, new KeyCtx{&s, k.priv}) != 1) {
    EC_KEY_free(ec);
    ossl::fail_ssl(ExitCode::Internal, "Cannot make the token key usable by OpenSSL");
  }
  ossl::EvpPkeyPtr pk(EVP_PKEY_new());
  if (!pk || EVP_PKEY_assign_EC_KEY(pk.get(), ec) != 1) {
    EC_KEY_free(ec);
    ossl::fail_ssl(ExitCode::Internal, "Cannot make the token key usable by OpenSSL");
  }
  return pk;
}

ossl::EvpPkeyPtr token_signing_pkey(const p11::Session& s, const KeyRef& k, const std::string& purpose) {
  if (k.type == CKK_RSA) return token_rsa_pkey(s, k);
  if (k.type == CKK_EC) return token_ec_pkey(s, k);
  fail(ExitCode::Usage,
       "The key '" + k.label + "' is neither RSA nor EC; " + purpose + " signs with the key through OpenSSL, which tokenprov " +
           "does for RSA and EC keys only.");
}

ossl::EvpPkeyPtr token_rsa_pkey(const p11::Session& s, const KeyRef& k) {
  if (k.type != CKK_RSA)
    fail(ExitCode::Usage, "The key '" + k.label + "' is not an RSA key; this operation (SCEP) needs one.",
         "Enroll over SCEP with an rsa2048, rsa3072 or rsa4096 key.");
  std::call_once(g_once, init_once);
  auto pub = public_key(s, k);
  RSA* rsa = EVP_PKEY_get1_RSA(pub.get());
  if (!rsa) ossl::fail_ssl(ExitCode::Internal, "Cannot read the RSA public key");
  RSA_set_method(rsa, g_method);
  RSA_set_ex_data(rsa, g_ex_index, new KeyCtx{&s, k.priv});
  ossl::EvpPkeyPtr pk(EVP_PKEY_new());
  if (!pk || EVP_PKEY_assign_RSA(pk.get(), rsa) != 1) {
    RSA_free(rsa);
    ossl::fail_ssl(ExitCode::Internal, "Cannot make the token key usable by OpenSSL");
  }
  return pk;
}

} // namespace tokenprov
