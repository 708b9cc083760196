// SPDX-License-Identifier: Apache-2.0
// enroll = keygen (or an existing key) + request + the CA's protocol + pickup.
// A failed enrollment removes the key this run made, so the token is left as
// it was. The protocol is chosen in one place: EnrollRequest::protocol, with
// each protocol's options beside it; enroll.cpp dispatches on it (a prepare
// step before any key is made, a run step after).
#pragma once

#include "tokenprov/cmp.hpp"
#include "tokenprov/csr.hpp"
#include "tokenprov/est.hpp"
#include "tokenprov/pickup.hpp"
#include "tokenprov/scep.hpp"

#include <functional>

namespace tokenprov {

enum class EnrollProtocol { Scep, Cmp, Est };
// "scep" | "cmp" | "est" (any case); Error(Usage) naming the choices.
EnrollProtocol parse_protocol(const std::string& name);
std::string protocol_name(EnrollProtocol p);

struct EnrollRequest {
  EnrollProtocol protocol = EnrollProtocol::Scep;
  scep::Options scep; // protocol scep
  cmp::Options cmp;   // protocol cmp
  est::Options est;   // protocol est (the password is the SECRET of enroll(); user and bundle here)
  Algorithm algorithm = Algorithm::Rsa2048;
  KeyPolicy policy;
  std::string subject;
  std::vector<std::string> sans;
  bool allow_expired = false;
  // EST: the extensions /csrattrs may add to the request with the values the
  // CA gives (the profile's [est] csrattrs_allow: OpenSSL names or dotted
  // OIDs). Empty: nothing beyond what the request carries anyway.
  std::vector<std::string> csrattrs_allow;
};

struct EnrollResult {
  KeyRef key;
  PickupResult pickup;
  std::string ca_fingerprint;
  // What vouched for the CA's answer, in a sentence (CMP: the shared
  // secret's MAC alone, or the signature verified against the bundle/pin).
  std::string trust_note;
  int polls = 0; // how often a pending request was asked after (CMP)
  // EST: what /csrattrs asked for, sorted into what the request carries (its own
  // parts, and the extensions the profile allowed, added) and what was ignored.
  std::vector<std::string> csrattrs_applied, csrattrs_ignored;
};

// The URL the request's protocol talks to ("" when none is set).
const std::string& enroll_url(const EnrollRequest& req);

// Checks the CA first where the protocol can (SCEP: nothing is generated for
// a CA that is refused), then generates the key, sends the request with
// SECRET (SCEP: the challenge; CMP: the shared secret of the reference; EST:
// the HTTP Basic password) and
// picks the certificate up. Any failure after keygen removes the key.
EnrollResult enroll(p11::Session& s, const EnrollRequest& req, const Secret& secret);

// The same for a key that exists already (--key, provision's resumed runs):
// a failure never removes it.
EnrollResult enroll_existing(p11::Session& s, const KeyRef& k, const EnrollRequest& req, const Secret& secret);

// The command's use case: enroll() a new key when KEY_SELECTOR is empty, else
// enroll_existing() the key it names (a URI, a label or id:HEX), which keeps its label.
EnrollResult enroll_key(p11::Session& s, const std::string& key_selector, EnrollRequest req, const Secret& secret);

} // namespace tokenprov
