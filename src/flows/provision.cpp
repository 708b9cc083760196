// SPDX-License-Identifier: Apache-2.0
// provision(): the token steps (check the request, template variables, choose
// the token, get it ready); the per-key steps are in provision_key.cpp.
#include "tokenprov/provision.hpp"

#include "cert_dir.hpp"
#include "provision_run.hpp"

#include "tokenprov/capabilities.hpp"
#include "tokenprov/fileio.hpp"
#include "tokenprov/token_admin.hpp"
#include "tokenprov/uri.hpp"
#include "tokenprov/utf8.hpp"

#include <algorithm>
#include <cctype>

namespace tokenprov {

const char* state_name(KeyState s) {
  switch (s) {
  case KeyState::Generated: return "generated";
  case KeyState::Present: return "present";
  }
  return "?";
}

const char* state_name(CertState s) {
  switch (s) {
  case CertState::Enrolled: return "enrolled";
  case CertState::PickedUp: return "picked-up";
  case CertState::Present: return "present";
  case CertState::AwaitingCertificate: return "awaiting-certificate";
  }
  return "?";
}

const char* state_name(BackupState s) {
  switch (s) {
  case BackupState::Written: return "written";
  case BackupState::Present: return "present";
  case BackupState::NotRequested: return "not-requested";
  case BackupState::NotPermitted: return "not-permitted";
  case BackupState::AwaitingCertificate: return "awaiting-certificate";
  }
  return "?";
}

const char* state_name(SignatureCheck s) {
  switch (s) {
  case SignatureCheck::Ok: return "ok";
  case SignatureCheck::AwaitingCertificate: return "awaiting-certificate";
  case SignatureCheck::NotRequested: return "not-requested";
  }
  return "?";
}

std::string KeyOutcome::summary() const {
  return label + " [" + algorithm + ", id " + id_hex + "]: key " + state_name(key_state) + ", certificate " +
         state_name(cert_state) + (cert_serial.empty() ? "" : " (serial " + cert_serial + ")") + ", backup " +
         state_name(backup_state) + (backup_file.empty() ? "" : " (" + backup_file + ")") +
         (signature_check == SignatureCheck::NotRequested
              ? ""
              : std::string(", signature check ") + state_name(signature_check));
}

std::string user_from_subject(const std::string& subject) {
  std::string cn = ossl::dn_common_name(subject);
  std::string out;
  for (char c : cn) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u))
      out.push_back(static_cast<char>(std::tolower(u)));
    else if ((c == ' ' || c == '-' || c == '_' || c == '.') && !out.empty() && out.back() != '-')
      out.push_back('-');
  }
  while (!out.empty() && out.back() == '-')
    out.pop_back();
  return out.empty() ? "user" : out;
}

nlohmann::json ProvisionResult::to_json() const {
  nlohmann::json keys_j = nlohmann::json::array();
  for (auto& k : keys) {
    nlohmann::json j = {{"role", k.role},
                        {"label", k.label},
                        {"id", k.id_hex},
                        {"algorithm", k.algorithm},
                        {"key", state_name(k.key_state)},
                        {"certificate", state_name(k.cert_state)},
                        {"backup", state_name(k.backup_state)},
                        {"signature_check", state_name(k.signature_check)}};
    if (!k.cert_serial.empty()) j["certificate_serial"] = k.cert_serial;
    if (!k.cert_subject.empty()) j["subject"] = k.cert_subject;
    if (!k.csr_file.empty()) j["csr_file"] = k.csr_file;
    if (!k.backup_file.empty()) j["backup_file"] = k.backup_file;
    keys_j.push_back(j);
  }
  nlohmann::json renewals_j = nlohmann::json::array();
  for (auto& r : renewals)
    renewals_j.push_back(r.to_json());
  return {{"token", {{"label", token.label}, {"serial", token.serial}, {"uri", token_uri(token)}}},
          {"initialized", initialized_now},
          {"complete", complete},
          {"state", complete ? "done" : "awaiting-certificate"},
          {"keys", keys_j},
          {"renewals", renewals_j}};
}

bool enrolls(const ProvisionRequest& req) {
  switch (req.protocol) {
  case EnrollProtocol::Scep: return !req.scep.url.empty();
  case EnrollProtocol::Cmp: return !req.cmp.url.empty();
  case EnrollProtocol::Est: return !req.est.url.empty();
  }
  return false;
}

void check_sources(const ProvisionRequest& req, const ProvisionSecrets& sec) {
  bool have_source = enrolls(req) || !req.csr_dir.empty() || !req.cert_dir.empty();
  if (!have_source)
    fail(ExitCode::Usage,
         "Say where the certificates come from: --scep-url, --cmp-url or --est-url (or the profile's), --csr-dir, or "
         "--cert-dir.");
  if (!req.backup_dir.empty() && !sec.backup_password)
    fail(ExitCode::Usage, "--backup-dir needs --password-source for the backup password.");
}

void fail_no_enrollment_secret(EnrollProtocol protocol) {
  fail(ExitCode::Ca, protocol == EnrollProtocol::Scep
                         ? "Enrolling over SCEP needs the challenge (--challenge-source)."
                         : "Enrolling over " + protocol_name(protocol) + " needs the CA's secret (--secret-source).");
}

ProvisionResult provision(const ProvisionRequest& req, const ProvisionSecrets& sec) {
  return ProvisionRun(req, sec).run();
}

ProvisionRun::ProvisionRun(const ProvisionRequest& req, const ProvisionSecrets& sec)
    : req_(req), sec_(sec), prof_(req.profile) {}

ProvisionResult ProvisionRun::run() {
  check_request();
  template_variables();
  module_ = p11::Module::load(req_.module_path);
  choose_token();
  ready_token();
  session_.emplace(module_, token_.slot_id, true);
  if (token_.login_required()) session_->login(CKU_USER, *sec_.user_pin);
  bool complete = true;
  for (auto& spec : prof_.keys) {
    res_.keys.push_back(run_key(spec));
    if (res_.keys.back().cert_state == CertState::AwaitingCertificate) complete = false;
  }
  res_.complete = complete;
  if (req_.renew_within_days) renew_expiring();
  return std::move(res_);
}

// Everything that can be checked before the token is touched.
void ProvisionRun::check_request() const {
  if (prof_.keys.empty()) fail(ExitCode::BadInput, "The profile '" + prof_.name + "' lists no keys.");
  ossl::parse_dn(req_.subject);
  require_utf8(req_.user, "user");
  require_utf8(req_.token_label, "token label");
  for (auto& s : req_.sans)
    check_san(s);
  check_sources(req_, sec_);
  if (!sec_.user_pin) fail(ExitCode::Pin, "No user PIN was given.");
  if (req_.renew_within_days && !enrolls(req_))
    fail(ExitCode::Usage,
         "Renewing needs the CA: --scep-url, --cmp-url or --est-url for the protocol (" + protocol_name(req_.protocol) +
             "), or the profile's.");
  bool rekeys = req_.rekey || std::any_of(prof_.keys.begin(), prof_.keys.end(), [](auto& k) { return k.rekey; });
  if (req_.renew_within_days && rekeys && req_.protocol == EnrollProtocol::Cmp)
    fail(ExitCode::Usage,
         "Renewals here would make new keys (--rekey or the profile's renew = \"rekey\"), which CMP's key update "
         "cannot do: kur certifies the key that signs it. Nothing was changed.",
         "Renew over EST or SCEP, or renew the same keys over CMP (without --rekey, renew = \"same-key\").");
  // The folders, before anything is written to the token.
  if (!req_.cert_dir.empty()) (void)cert_dir::list(req_.cert_dir);
  for (auto* d : {&req_.csr_dir, &req_.backup_dir})
    if (!d->empty() && !is_directory(*d))
      fail(ExitCode::BadInput, "The folder '" + *d + "' does not exist (or is not a folder).",
           "Create it, or name another one.");
}

void ProvisionRun::template_variables() {
  vars_ = {{"user", req_.user.empty() ? user_from_subject(req_.subject) : req_.user},
           {"cn", ossl::dn_common_name(req_.subject)}};
}

// The token the request names: a selector, "blank", or else the one labelled
// as the profile's template says (a blank one when there is none).
p11::TokenInfo ProvisionRun::find_candidate() {
  if (req_.token == "blank") return find_token(*module_, "", TokenState::Blank);
  if (!req_.token.empty()) return find_token(*module_, req_.token, TokenState::Any);
  vars_["serial"] = "";
  std::string want = utf8_prefix(expand_template(prof_.token_label_template, vars_), 32);
  auto scan = module_->scan();
  for (auto& c : scan.tokens)
    if (c.initialized() && c.label == want) return c;
  // The token this profile names may be the one the module cannot read: never
  // take a blank token in its place.
  if (!scan.unreadable.empty())
    fail(ExitCode::Token,
         "No readable token is labelled '" + want + "', and the module cannot read the token in slot " +
             std::to_string(scan.unreadable.front().slot_id) + " (" + p11::rv_name(scan.unreadable.front().rv) +
             "); no blank token was taken in its place.",
         "Re-insert or repair that token, or name the token to use with --token (--token blank for a new one).");
  return find_token(*module_, "", TokenState::Blank);
}

// One run per token (token_lock.hpp): a blank token is chosen again under the
// module's blank-token lock, an initialized one is read again under its own
// lock (another run may have changed it meanwhile).
void ProvisionRun::choose_token() {
  token_ = find_candidate();
  if (!token_.initialized()) {
    blank_lock_ = lock_blank_tokens(*module_);
    token_ = find_candidate();
  }
  if (token_.initialized()) {
    token_lock_ = lock_token(token_);
    auto again = module_->token_info(token_.slot_id);
    if (token_lock_key(again) != token_lock_key(token_))
      fail(ExitCode::Token,
           "The token '" + token_.label + "' (serial " + token_.serial +
               ") changed while this run waited for another run to finish with it; nothing was changed.",
           "See what it holds now with 'tokenprov list', then run again.");
    token_ = again;
    blank_lock_.release();
  }
  vars_["serial"] = token_.serial;
}

// Initialized, with a user PIN: a blank token is initialized, a token an
// interrupted run initialized gets its user PIN.
void ProvisionRun::ready_token() {
  if (!token_.initialized()) {
    initialize_blank_token();
  } else if (!token_.user_pin_initialized()) {
    set_interrupted_user_pin();
  } else {
    say("Using token '" + token_.label + "' (serial " + token_.serial + ").");
  }
  res_.token = token_;
}

void ProvisionRun::initialize_blank_token() {
  if (!sec_.so_pin && sec_.so_pin_problem) throw *sec_.so_pin_problem;
  if (!sec_.so_pin) fail(ExitCode::Pin, "The token is blank: initializing it needs the SO PIN (--so-pin-source).");
  // Every key the profile makes will be generated here: a module that
  // cannot is refused before the token is initialized.
  for (auto& spec : prof_.keys)
    require_keygen(*module_, token_.slot_id, parse_algorithm(spec.algorithm), true);
  std::string label = req_.token_label.empty() ? expand_template(prof_.token_label_template, vars_) : req_.token_label;
  label = utf8_prefix(label, 32); // a token label is 32 bytes: cut at a character boundary
  // Never two tokens with one label: a token that carries it already (another
  // run's, made from another blank token) is refused, not duplicated.
  for (auto& t : module_->tokens())
    if (t.initialized() && t.label == label)
      fail(ExitCode::Exists,
           "A token labelled '" + label + "' is present already (serial " + t.serial + ", slot " +
               std::to_string(t.slot_id) + "); no blank token was initialized with the same label.",
           "To go on with that token, run again with --token '" + label +
               "'; for a new token give it another label (--token-label or the user).");
  say("Initializing the blank token " +
      (token_.serial.empty() ? "in slot " + std::to_string(token_.slot_id) : "(serial " + token_.serial + ")") +
      " as '" + label + "'...");
  InitRequest ir{req_.module_path, "serial:" + token_.serial, label, false, prof_.user_pin.min_length};
  if (token_.serial.empty()) ir.selector = "";
  ir.slot = token_.slot_id; // found just above: no second search, no second read
  ir.known = token_;
  auto found = init_token_only(ir, *sec_.so_pin, *sec_.user_pin, &token_lock_);
  blank_lock_.release(); // the token is initialized and this run's (token_lock_)
  token_ = finish_token_init(module_, found, label, *sec_.so_pin, *sec_.user_pin, prof_.user_pin.min_length);
  res_.initialized_now = true;
  erased_ = true;
}

// An earlier run initialized the token and was cut short before C_InitPIN.
void ProvisionRun::set_interrupted_user_pin() {
  if (!sec_.so_pin && sec_.so_pin_problem) throw *sec_.so_pin_problem;
  if (!sec_.so_pin)
    fail(ExitCode::Pin,
         "The token '" + token_.label + "' (serial " + token_.serial +
             ") has no user PIN yet (an interrupted initialization): setting it needs the SO PIN (--so-pin-source).");
  say("Setting the user PIN of token '" + token_.label + "' (serial " + token_.serial +
      "), which an interrupted run initialized...");
  token_ = set_first_user_pin(module_, token_, *sec_.so_pin, *sec_.user_pin, prof_.user_pin.min_length);
  res_.initialized_now = true;
}

} // namespace tokenprov
