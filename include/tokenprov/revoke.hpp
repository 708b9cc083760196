// SPDX-License-Identifier: Apache-2.0
// `revoke`: ask the CA to revoke the certificate of a key on the token (CMP
// rr, cmp.hpp); the token itself is not changed.
#pragma once

#include "tokenprov/cmp.hpp"
#include "tokenprov/keys.hpp"
#include "tokenprov/ossl.hpp"

#include <string>

namespace tokenprov {

struct RevokeResult {
  KeyRef key;         // the key KEY_SELECTOR named
  ossl::X509Ptr cert; // its certificate, now revoked
};

// Finds the key and its certificate (exit 5 when it has none), and sends the
// revocation request with REASON (cmp::parse_revocation_reason), signed with
// the key or MAC-protected with SECRET when given.
RevokeResult revoke_certificate(p11::Session& s, const std::string& key_selector, const cmp::Options& opts, int reason,
                                const Secret* secret);

} // namespace tokenprov
