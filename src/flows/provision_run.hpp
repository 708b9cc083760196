// SPDX-License-Identifier: Apache-2.0
// provision() as named steps (private to src/flows): the checks of the
// request, the template variables, the choice of the token, getting it ready
// (initialized, user PIN set, logged in), then for each key of the profile:
// ensure the key, obtain its certificate (already on the token, from
// --cert-dir, by enrollment, or a CSR to --csr-dir), check the signature, back
// it up.
#pragma once

#include "tokenprov/keys.hpp"
#include "tokenprov/provision.hpp"
#include "tokenprov/token_lock.hpp"

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

namespace tokenprov {

class ProvisionRun {
public:
  ProvisionRun(const ProvisionRequest& req, const ProvisionSecrets& sec);
  ProvisionResult run();

private:
  // The token.
  void check_request() const;
  void template_variables();
  p11::TokenInfo find_candidate();
  void choose_token();
  void ready_token();
  void initialize_blank_token();
  void set_interrupted_user_pin();

  // One key of the profile.
  KeyOutcome run_key(const KeySpec& spec);
  bool ensure_key(const KeySpec& spec, KeyOutcome& out, std::optional<KeyRef>& key);
  void remove_orphan_public_keys(const std::string& label, bool fresh);
  ossl::X509Ptr obtain_certificate(KeyOutcome& out, const KeyRef& key, Algorithm alg, bool generated);
  ossl::X509Ptr from_cert_dir(KeyOutcome& out, const KeyRef& key, const ossl::Bytes& want);
  ossl::X509Ptr by_enrollment(KeyOutcome& out, const KeyRef& key, Algorithm alg);
  void write_csr(KeyOutcome& out, const KeyRef& key);
  void check_signature_step(KeyOutcome& out, const KeyRef& key, X509* leaf);
  void back_up(const KeySpec& spec, KeyOutcome& out, const KeyRef& key);

  // Renewals, after the keys (provision_renew.cpp).
  void renew_expiring();
  bool rekeys(const std::string& key_label) const;

  void say(const std::string& line) const {
    if (req_.progress) req_.progress(line);
  }

  const ProvisionRequest& req_;
  const ProvisionSecrets& sec_;
  const Profile& prof_;
  std::map<std::string, std::string> vars_; // {user}, {cn}, {serial}, {role}
  std::shared_ptr<p11::Module> module_;
  p11::TokenInfo token_;
  TokenLock blank_lock_, token_lock_;
  std::optional<p11::Session> session_;
  ProvisionResult res_;
  // Set when C_InitToken ran here: the token holds nothing but what this run
  // makes, and the searches for earlier keys, certificates and leftovers (a
  // card round trip each) are skipped (issue 19).
  bool erased_ = false;
  std::set<std::string> made_labels_; // keys this run generated, by label
  std::set<std::string> issued_now_;  // serials of the certificates this run put on the token: not renewed again
};

} // namespace tokenprov
