// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/capabilities.hpp"

#include <algorithm>
#include <cstdio>

namespace tokenprov {

namespace {
struct MechName {
  CK_MECHANISM_TYPE m;
  const char* name;
};
#define M(x) {x, #x}
constexpr MechName kMechs[] = {
    M(CKM_RSA_PKCS_KEY_PAIR_GEN), M(CKM_RSA_PKCS),       M(CKM_RSA_PKCS_PSS),     M(CKM_RSA_X_509),
    M(CKM_RSA_PKCS_OAEP),         M(CKM_EC_KEY_PAIR_GEN), M(CKM_ECDSA),            M(CKM_EC_EDWARDS_KEY_PAIR_GEN),
    M(CKM_EDDSA),                 M(CKM_AES_KEY_GEN),     M(CKM_AES_KEY_WRAP),     M(CKM_AES_KEY_WRAP_PAD),
    M(CKM_AES_CBC_PAD),
};
#undef M

unsigned key_bits(Algorithm a) {
  switch (a) {
  case Algorithm::Rsa2048: return 2048;
  case Algorithm::Rsa3072: return 3072;
  case Algorithm::Rsa4096: return 4096;
  case Algorithm::EcP256: return 256;
  case Algorithm::EcP384: return 384;
  case Algorithm::Ed25519: return 255;
  }
  return 0;
}

struct Needs {
  CK_MECHANISM_TYPE gen, sign;
};
Needs needs(Algorithm a) {
  switch (a) {
  case Algorithm::Rsa2048:
  case Algorithm::Rsa3072:
  case Algorithm::Rsa4096: return {CKM_RSA_PKCS_KEY_PAIR_GEN, CKM_RSA_PKCS};
  case Algorithm::EcP256:
  case Algorithm::EcP384: return {CKM_EC_KEY_PAIR_GEN, CKM_ECDSA};
  case Algorithm::Ed25519: return {CKM_EC_EDWARDS_KEY_PAIR_GEN, CKM_EDDSA};
  }
  return {};
}

std::string token_words(const p11::Module& module, CK_SLOT_ID slot) {
  return "the module '" + module.path() + "' (slot " + std::to_string(slot) + ")";
}
} // namespace

std::string mechanism_name(CK_MECHANISM_TYPE m) {
  for (const auto& n : kMechs)
    if (n.m == m) return n.name;
  char buf[32];
  std::snprintf(buf, sizeof buf, "CKM_0x%08lx", static_cast<unsigned long>(m));
  return buf;
}

void require_keygen(const p11::Module& module, CK_SLOT_ID slot, Algorithm a, bool need_sign) {
  auto have = module.mechanisms(slot);
  auto offered = [&](CK_MECHANISM_TYPE m) { return std::find(have.begin(), have.end(), m) != have.end(); };
  Needs n = needs(a);
  std::string alg = algorithm_name(a);
  const char* choose = "Choose an algorithm this token offers (docs/modules.md lists each module's), or another token.";
  if (!offered(n.gen))
    fail(ExitCode::Token,
         "The token cannot generate " + alg + " keys: " + token_words(module, slot) + " does not offer " +
             mechanism_name(n.gen) + ". Nothing was written.",
         choose);
  auto got = module.mechanism_info(slot, n.gen);
  CK_MECHANISM_INFO info = got.value_or(CK_MECHANISM_INFO{});
  if (!(info.flags & CKF_GENERATE_KEY_PAIR))
    fail(ExitCode::Token,
         "The token cannot generate " + alg + " keys: " + token_words(module, slot) + " lists " +
             mechanism_name(n.gen) + " without CKF_GENERATE_KEY_PAIR. Nothing was written.",
         choose);
  unsigned bits = key_bits(a);
  // Edwards curves are named, not sized: modules give ranges in several ways.
  bool sized = a != Algorithm::Ed25519 && info.ulMaxKeySize != 0;
  if (sized && (bits < info.ulMinKeySize || bits > info.ulMaxKeySize))
    fail(ExitCode::Token,
         "The token cannot generate " + alg + " keys: " + token_words(module, slot) + " gives " +
             mechanism_name(n.gen) + " a key size range of " + std::to_string(info.ulMinKeySize) + "-" +
             std::to_string(info.ulMaxKeySize) + " bits. Nothing was written.",
         choose);
  if (!need_sign) return;
  auto sign = offered(n.sign) ? module.mechanism_info(slot, n.sign) : std::nullopt;
  if (!sign || !(sign->flags & CKF_SIGN))
    fail(ExitCode::Token,
         "The token cannot sign with " + alg + " keys the way requests are signed: " + token_words(module, slot) +
             " does not offer " + mechanism_name(n.sign) + " for signing. Nothing was written.",
         choose);
}

void require_key_type(const p11::Module& module, CK_SLOT_ID slot, CK_KEY_TYPE kt) {
  Needs n = kt == CKK_RSA ? needs(Algorithm::Rsa2048)
            : kt == CKK_EC ? needs(Algorithm::EcP256)
                           : needs(Algorithm::Ed25519);
  const char* type = kt == CKK_RSA ? "RSA" : kt == CKK_EC ? "EC" : "Ed25519";
  auto have = module.mechanisms(slot);
  auto offered = [&](CK_MECHANISM_TYPE m) { return std::find(have.begin(), have.end(), m) != have.end(); };
  if (offered(n.gen) || offered(n.sign)) return;
  fail(ExitCode::Token,
       std::string("The token has no ") + type + " keys: " + token_words(module, slot) + " offers neither " +
           mechanism_name(n.gen) + " nor " + mechanism_name(n.sign) + ". Nothing was written.",
       "Restore this backup onto a token that holds such keys (docs/modules.md lists each module's).");
}

} // namespace tokenprov
