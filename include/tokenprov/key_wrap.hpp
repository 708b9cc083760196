// SPDX-License-Identifier: Apache-2.0
// How a private key crosses the PKCS#11 interface: wrapped under a one-off
// AES key that exists on the token as a session object for one operation,
// by a mechanism negotiated from what the module offers. Used by backup
// (C_WrapKey, then unwrapped here in software) and restore (wrapped here,
// then C_UnwrapKey). The order and its reasons are in docs/key-policy.md.
#pragma once

#include "tokenprov/p11/module.hpp"

#include <span>
#include <string>

namespace tokenprov {

// The ways, in the order they are tried.
enum class WrapWay {
  Kwp,         // CKM_AES_KEY_WRAP_KWP (0x210B): RFC 5649
  Pad5649,     // CKM_AES_KEY_WRAP_PAD (0x210A) where the module means RFC 5649 (SoftHSM2)
  PadPkcs7,    // CKM_AES_KEY_WRAP_PAD where it means PKCS#7 padding, then RFC 3394 (NSS)
  CbcPad,      // CKM_AES_CBC_PAD (AES-256-CBC, PKCS#7 padding, a fresh random IV)
};

// "CKM_AES_KEY_WRAP_KWP (RFC 5649)", ...
std::string wrap_way_name(WrapWay w);

// The first way the token of S offers for C_WrapKey (UNWRAP false) or
// C_UnwrapKey (UNWRAP true), from C_GetMechanismList and the CKF_WRAP /
// CKF_UNWRAP flags of C_GetMechanismInfo. Which reading of
// CKM_AES_KEY_WRAP_PAD the module implements is found once per module (a
// known-answer wrap of a session secret) and remembered. A token with none:
// Error(Token) naming the mechanisms looked for and what the module said.
WrapWay choose_wrap_way(const p11::Session& s, bool unwrap);

// The private key PRIV as its PKCS#8 DER (the caller wipes it), wrapped out
// of the token and unwrapped in software. USED, when given, says how.
p11::Bytes wrap_out_pkcs8(const p11::Session& s, CK_OBJECT_HANDLE priv, WrapWay* used = nullptr);

// Puts PKCS8 (a PrivateKeyInfo) on the token as the object TEMPL describes:
// wrapped in software, C_UnwrapKey on the token. WHAT heads errors.
CK_OBJECT_HANDLE unwrap_in_pkcs8(p11::Session& s, std::span<const std::uint8_t> pkcs8, p11::Attributes& templ,
                                 const std::string& what, WrapWay* used = nullptr);

// Forgets what was learnt about modules (tests).
void forget_wrap_readings();

} // namespace tokenprov
