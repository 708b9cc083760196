// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/revoke.hpp"

#include "tokenprov/pickup.hpp"

namespace tokenprov {

RevokeResult revoke_certificate(p11::Session& s, const std::string& key_selector, const cmp::Options& opts, int reason,
                                const Secret* secret) {
  RevokeResult r;
  r.key = find_key(s, key_selector);
  r.cert = find_leaf_certificate(s, r.key, ossl::spki_der(public_key(s, r.key).get()));
  if (!r.cert)
    fail(ExitCode::BadInput, "The key '" + r.key.label + "' has no certificate on the token; there is nothing to revoke.");
  cmp::revoke(opts, s, r.key, r.cert.get(), reason, secret);
  return r;
}

} // namespace tokenprov
