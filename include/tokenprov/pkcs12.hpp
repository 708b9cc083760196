// SPDX-License-Identifier: Apache-2.0
// PKCS#12 files in software: the file half of `backup` and `restore`.
//
// build() writes a file in one of two profiles:
//  - Modern: PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) for the key bag and the
//    certificate safe, HMAC-SHA256 MAC; kModernIterations for all three.
//  - Legacy: pbeWithSHAAnd3-KeyTripleDES-CBC for the key bag AND the
//    certificate safe, HMAC-SHA1 MAC; kLegacyIterations. For importers that
//    predate PBES2/AES in PKCS#12 (older Android, iOS/macOS and Windows
//    releases answer "wrong password" to a modern file). OpenSSL 3 reads and writes it with
//    its default provider; only RC2 (the old OpenSSL default for the
//    certificate safe) needs the legacy provider, and this profile avoids it.
//
// parse() reads both profiles and the usual files of other tools (openssl
// pkcs12 -export with or without -legacy, NSS pk12util, Java keytool,
// Windows). Files whose certificate safe uses RC2 or other algorithms only
// OpenSSL's legacy provider has are decrypted through a private library
// context that loads it, so nothing global changes.
#pragma once

#include "tokenprov/ossl.hpp"
#include "tokenprov/secret.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace tokenprov::pkcs12 {

enum class Compat { Modern, Legacy };

// "modern" / "legacy"; anything else is Error(Usage).
Compat parse_compat(const std::string& text);
const char* compat_name(Compat c) noexcept; // "modern" / "legacy"

// Iteration counts build() uses for every KDF in the file (key bag,
// certificate safe and MAC alike: a cheaper MAC or certificate safe would be
// a cheaper password oracle, so one count for all three). See pkcs12.cpp
// for why these numbers.
inline constexpr int kModernIterations = 200000;
inline constexpr int kLegacyIterations = 2048;

struct Contents {
  ossl::EvpPkeyPtr key;                   // may be null (certificate-only backup)
  ossl::X509Ptr leaf;                     // may be null only when key is null and chain non-empty
  std::vector<ossl::X509Ptr> chain;       // CA certificates, the leaf's issuer first
  std::string friendly_name;              // the key's label (UTF-8)
  std::vector<std::uint8_t> local_key_id; // the key's CKA_ID; the same localKeyID on key and leaf
};

// The DER of a PKCS#12 holding CONTENTS, protected with PASSWORD. The key bag
// and the leaf carry friendlyName (when not empty) and localKeyID; the CA
// certificates carry neither. With a key and an empty local_key_id, the
// localKeyID is the SHA-1 of the leaf's DER (what OpenSSL and NSS use).
// Contents that break the rules above (no leaf for a key, a leaf that does
// not carry the key's public key, nothing at all) are Error(Internal): the
// caller assembles them.
std::vector<std::uint8_t> build(const Contents& contents, const Secret& password, Compat compat);

// Reads a PKCS#12 (DER). SOURCE_NAME names it in messages (a path, usually).
//  - not DER PKCS#12, truncated, damaged: Error(BadInput) naming it;
//  - wrong password: Error(BadInput, "The password for 'NAME' is wrong.");
//  - no private key while REQUIRE_KEY, more than one private key, a key with
//    no certificate for it: Error(BadInput).
// The leaf is the certificate carrying the key's public key (else, when the
// public keys cannot be compared, the one with the key's localKeyID); with
// no key, the one certificate with a localKeyID, else the one certificate no
// other one was issued by, unless all are CAs (then leaf is null). The other
// certificates follow as a chain from the leaf (issuer first); certificates
// outside that chain come last, in file order. friendly_name and
// local_key_id are the key bag's, else the leaf's.
Contents parse(std::span<const std::uint8_t> der, const Secret& password, const std::string& source_name,
               bool require_key);

// After writing: reads DER back with PASSWORD and checks that it holds what
// EXPECTED holds (key, leaf, chain, friendlyName, localKeyID) and that the key
// signs what the leaf's public key verifies. Error(Internal) otherwise.
void verify_roundtrip(std::span<const std::uint8_t> der, const Secret& password, const Contents& expected);

} // namespace tokenprov::pkcs12
