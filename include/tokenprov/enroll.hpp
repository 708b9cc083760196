// SPDX-License-Identifier: Apache-2.0
// enroll = keygen + CSR + SCEP + pickup. A failed enrollment removes the key
// this run made, so the token is left as it was.
#pragma once

#include "tokenprov/csr.hpp"
#include "tokenprov/pickup.hpp"
#include "tokenprov/scep.hpp"

#include <functional>

namespace tokenprov {

struct EnrollRequest {
  scep::Options scep;
  Algorithm algorithm = Algorithm::Rsa2048;
  KeyPolicy policy;
  std::string subject;
  std::vector<std::string> sans;
  bool allow_expired = false;
};

struct EnrollResult {
  KeyRef key;
  PickupResult pickup;
  std::string ca_fingerprint;
};

// Checks the CA first (nothing is generated for a CA that is refused), then
// generates the key, signs the request with the challenge inside, enrolls and
// picks the certificate up. Any failure after keygen removes the key.
EnrollResult enroll(p11::Session& s, const EnrollRequest& req, const Secret& challenge);

// The same for a key that exists already (provision's resumed runs).
EnrollResult enroll_existing(p11::Session& s, const KeyRef& k, const EnrollRequest& req, const Secret& challenge);

} // namespace tokenprov
