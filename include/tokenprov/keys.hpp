// SPDX-License-Identifier: Apache-2.0
// Key pairs on the token: generation with an explicit key policy, lookup by
// selector, the public half as an OpenSSL key, and signing on the token.
#pragma once

#include "tokenprov/key_policy.hpp"
#include "tokenprov/ossl.hpp"
#include "tokenprov/p11/module.hpp"

#include <memory>
#include <string>
#include <vector>

namespace tokenprov {

enum class Algorithm { Rsa2048, Rsa3072, Rsa4096, EcP256, EcP384, Ed25519 };
Algorithm parse_algorithm(const std::string& name); // Error(Usage) listing the names
std::string algorithm_name(Algorithm a);
const std::vector<std::string>& algorithm_names();

// The key type (CKK_RSA, CKK_EC, CKK_EC_EDWARDS) of an algorithm.
CK_KEY_TYPE key_type_of(Algorithm a);
// "sign,decrypt" -> bits (Usage, key_policy.hpp); Error(Usage) for an unknown word or one the algorithm cannot do.
unsigned parse_usage(const std::vector<std::string>& words, Algorithm a);
unsigned default_usage(Algorithm a);

struct KeyPolicy {
  std::string label;
  p11::Bytes id;           // empty: derived from the public key (SHA-1, see docs/key-policy.md)
  bool exportable = false; // CKA_EXTRACTABLE on the private key
  unsigned usage = 0;      // 0: default_usage(algorithm)
  // The caller initialized the token in this run (C_InitToken erased it) and
  // checked the module's mechanisms with require_keygen() before: the label,
  // id and capability checks would read back what the run already knows, and
  // are skipped (one card round trip each; issue 19).
  bool fresh_token = false;
};

struct KeyRef {
  CK_OBJECT_HANDLE priv = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE pub = CK_INVALID_HANDLE; // may be CK_INVALID_HANDLE
  std::string label;
  p11::Bytes id;
  CK_KEY_TYPE type = CKK_RSA;
  // public_key() keeps what it read here, with the object it read it from:
  // the CSR, the certificate match and the signature check ask the token (and
  // OpenSSL, which builds the curve group again for every EC key) once.
  mutable std::shared_ptr<EVP_PKEY> public_cache = nullptr;
  mutable CK_OBJECT_HANDLE public_cache_from = CK_INVALID_HANDLE;
};

// Generates a key pair with every policy attribute set explicitly on both
// halves (key_policy.hpp) and read back. Refuses a label or id already on
// the token (Error(Exists)); a module that refuses or does not keep the
// policy makes no key (Error(Policy)). On any failure after generation the
// pair is destroyed again.
KeyRef generate_key(p11::Session& s, Algorithm a, const KeyPolicy& policy);

// The CKA_ID tokenprov derives from a public key: SHA-1 of the RSA modulus,
// of the EC point (raw, uncompressed) or of the Ed25519 public key.
p11::Bytes derive_key_id(EVP_PKEY* pub);

// Private key by selector: RFC 7512 object URI, "id:HEX", or a label.
// Not found: Error(BadInput) naming the selector. Several: Error(Usage).
KeyRef find_key(const p11::Session& s, const std::string& selector);
// The key whose private half is PRIV (found by the caller): its label, id and type in
// one read, its public half by id.
KeyRef key_at(const p11::Session& s, CK_OBJECT_HANDLE priv);
std::vector<KeyRef> private_keys(const p11::Session& s);
// The private key whose public key equals PUB (SubjectPublicKeyInfo), if any.
std::optional<KeyRef> find_key_by_public(const p11::Session& s, EVP_PKEY* pub);
// Whether the private key object PRIV (of type KT) is the private half of
// PUB: an RSA key by its modulus, EC and Ed25519 keys by a signature over
// random bytes that PUB verifies. Token failures throw.
bool private_key_matches(const p11::Session& s, CK_OBJECT_HANDLE priv, CK_KEY_TYPE kt, EVP_PKEY* pub);
// Completes a pair generate_key left apart: it gives the halves their final
// CKA_ID one after the other, and a token pulled out in between leaves the
// public key under the temporary id. When K has no public key under its id,
// finds the public key with K's label that matches K, and gives both the id
// derived from the public key. K as it is otherwise.
KeyRef complete_key_pair(p11::Session& s, KeyRef k);
bool label_in_use(const p11::Session& s, const std::string& label);
bool id_in_use(const p11::Session& s, const p11::Bytes& id);

// The public key of the pair, from the public object (or, for RSA, from the
// private object's public attributes).
ossl::EvpPkeyPtr public_key(const p11::Session& s, const KeyRef& k);

enum class SigScheme { Default, RsaPss };
// Signs MESSAGE on the token and returns the signature in X.509's encoding
// (ECDSA as DER), along with the algorithm identifier to put beside it.
struct Signature {
  ossl::Bytes value;
  int sig_nid = 0; // e.g. NID_sha256WithRSAEncryption
};
Signature sign_message(const p11::Session& s, const KeyRef& k, std::span<const std::uint8_t> message,
                       SigScheme scheme = SigScheme::Default);
// Fills ALG for the signature scheme sign_message uses with K.
void set_signature_algorithm(X509_ALGOR* alg, const KeyRef& k, EVP_PKEY* pub, SigScheme scheme);

// Removes both halves; errors swallowed (used for roll-back).
void destroy_key_noexcept(const p11::Session& s, const KeyRef& k) noexcept;

} // namespace tokenprov
