// SPDX-License-Identifier: Apache-2.0
// `status`: every certificate on the selected token(s), leaf and CA, with
// the key it belongs to, its issuer, its end of validity and the time left,
// computed from exact times (seconds), never from rounded days.
#pragma once

#include "tokenprov/p11/module.hpp"
#include "tokenprov/secret.hpp"

#include <nlohmann/json.hpp>
#include <openssl/asn1.h>

#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tokenprov {

struct CertStatus {
  std::string token_serial, token_label, token_uri;
  std::string uri, id, label; // id: raw bytes
  std::string subject, issuer, serial, not_before, not_after;
  bool authority = false;
  // The key pair under the same CKA_ID: the private key when it is visible
  // (logged in, or a token without login), else the public key.
  std::string key_class, key_label, key_uri;
  long long seconds_left = 0; // negative once expired
  double days_left = 0;       // seconds_left / 86400, not rounded
  bool expiring = false;      // within the window given to certificate_status
};

struct StatusReport {
  std::vector<CertStatus> certificates;
  std::vector<p11::TokenInfo> tokens;          // the tokens looked at
  std::vector<p11::UnreadableSlot> unreadable; // slots whose token the module cannot read
  std::vector<std::string> not_logged_in;      // serials of tokens whose private objects were not seen
  std::optional<double> window_days;           // --expiring DAYS
  int expiring = 0;                            // certificates within the window (or expired)
};

struct StatusRequest {
  std::string selector;                    // empty: every token
  const Secret* pin = nullptr;             // log in only when given (public certificates need none)
  std::optional<double> expiring_days;     // a certificate with at most DAYS*86400 s left is expiring
  std::optional<std::time_t> now;          // the time to measure from (default: the clock)
};

// Reads the certificates of the token SELECTOR names (every initialized
// token when empty). A PIN goes only to a selected token, as with `list`:
// without a selector and with several tokens needing a login, Error(Usage).
StatusReport certificate_status(const std::shared_ptr<p11::Module>& module, const StatusRequest& req);

// The certificates of token T as session S sees them (logged in or not), as
// certificate_status() reports them: for a flow that has the token open already.
StatusReport session_status(p11::Session& s, const p11::TokenInfo& t, const StatusRequest& req);

// Seconds from NOW to the certificate's notAfter (negative once past).
long long seconds_until(const ASN1_TIME* t, std::time_t now);

nlohmann::json to_json(const CertStatus& c);
nlohmann::json to_json(const StatusReport& r);

} // namespace tokenprov
