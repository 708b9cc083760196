// SPDX-License-Identifier: Apache-2.0
// The OpenSSL bridge to token keys: an EVP_PKEY whose private operations
// run on the token through our own PKCS#11 session: RSA PKCS#1 v1.5 sign and
// decrypt (an RSA_METHOD), ECDSA sign (an EC_KEY_METHOD: CKM_ECDSA over the
// digest OpenSSL hands in). Used where OpenSSL must drive the key itself
// (SCEP's PKCS#7 signing and decryption, TLS client auth for EST renewal,
// CMP's signed messages). CSRs do not need it: their body is signed with
// sign_message() directly, which works for every algorithm.
//
// This replaces libp11 in-process (see docs/architecture.md): one owner of
// the module's lifetime, and no dependence on libp11's key enumeration,
// which fails on tokens that hold Ed25519 keys.
#pragma once

#include "tokenprov/keys.hpp"

#include <exception>
#include <string>

namespace tokenprov {

// The session must outlive the returned key. RSA keys only: Error(Usage) otherwise.
ossl::EvpPkeyPtr token_rsa_pkey(const p11::Session& s, const KeyRef& k);
// The same for an EC key (P-256, P-384): sign only. Error(Internal) for other keys.
ossl::EvpPkeyPtr token_ec_pkey(const p11::Session& s, const KeyRef& k);
// The bridge for signing with K, RSA or EC; Error(Usage) for other keys
// (Ed25519), naming PURPOSE ("EST re-enrollment", ...).
ossl::EvpPkeyPtr token_signing_pkey(const p11::Session& s, const KeyRef& k, const std::string& purpose);

// Why the last token operation OpenSSL ran on this thread through such a key
// failed (a P11Error: device removed, ...), taken out and cleared, so the
// caller can report the token's error instead of OpenSSL's "no details".
// Null when the last failure, if any, was not the token's.
std::exception_ptr take_token_error() noexcept;

} // namespace tokenprov
