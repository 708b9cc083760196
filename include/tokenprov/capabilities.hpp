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

// The mechanism's name ("CKM_EC_KEY_PAIR_GEN"), or its number in hex.
std::string mechanism_name(CK_MECHANISM_TYPE m);

} // namespace tokenprov
