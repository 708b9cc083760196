// SPDX-License-Identifier: Apache-2.0
// The final check of a provisioned key: the token signs fresh random bytes
// with the private key and the certificate's public key verifies them.
#pragma once

#include "tokenprov/keys.hpp"

namespace tokenprov {

// Signs 32 random bytes on the token with K (sign_message, the default
// scheme) and verifies the signature with CERT's public key. A signature
// that does not verify is Error(Token); token failures throw as usual.
void check_signature(const p11::Session& s, const KeyRef& k, X509* cert);

} // namespace tokenprov
