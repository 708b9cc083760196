// SPDX-License-Identifier: Apache-2.0
// What a token's module can do, read from it (C_GetMechanismList,
// C_GetMechanismInfo) before anything is written, so that a module limit
// becomes a clear refusal instead of a half-done command.
#pragma once

#include "tokenprov/keys.hpp"
#include "tokenprov/p11/module.hpp"

#include <string>

namespace tokenprov {

// Refuses (Error(Token), exit 6, naming the module's limit) when the token in
// SLOT cannot generate key pairs of algorithm A (no mechanism, or the key size
// or curve outside the range its mechanism information gives), or, with
// NEED_SIGN, cannot sign with such a key the way tokenprov signs requests.
void require_keygen(const p11::Module& module, CK_SLOT_ID slot, Algorithm a, bool need_sign);

// Refuses (exit 6) before a key of type KT (CKK_RSA, CKK_EC, CKK_EC_EDWARDS)
// is imported onto the token in SLOT when its module offers no mechanism at
// all for such keys (neither the key-pair generation nor the signature one):
// a module without EC keys otherwise answers the import with a bare
// CKR_TEMPLATE_INCOMPLETE (opencryptoki 3.8's soft token).
void require_key_type(const p11::Module& module, CK_SLOT_ID slot, CK_KEY_TYPE kt);

// The mechanism's name ("CKM_EC_KEY_PAIR_GEN"), or its number in hex.
std::string mechanism_name(CK_MECHANISM_TYPE m);

} // namespace tokenprov
