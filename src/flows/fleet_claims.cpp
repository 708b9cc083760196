// SPDX-License-Identifier: Apache-2.0
// Fleet's hand-out of tokens to rows (TokenClaims, fleet_run.hpp).
#include "fleet_run.hpp"

#include "tokenprov/audit.hpp"
#include "tokenprov/ossl.hpp"
#include "tokenprov/p11/error.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/profile.hpp"
#include "tokenprov/token_admin.hpp"
#include "tokenprov/utf8.hpp"

#include <algorithm>
#include <map>

namespace tokenprov::fleet_detail {

namespace {
// True when more than one of TOKENS carries SERIAL (so it names none of them).
bool shared_serial(const std::vector<p11::TokenInfo>& tokens, const std::string& serial) {
  return std::count_if(tokens.begin(), tokens.end(), [&](auto& t) { return t.serial == serial; }) > 1;
}
} // namespace

TokenClaims::TokenClaims(const FleetRequest& req, std::shared_ptr<p11::Module> module, const StateRecord& recorded,
                         StateFile* state)
    : req_(req), module_(std::move(module)), recorded_(recorded), state_(state) {
  for (auto& [k, s] : recorded_.done)
    if (!s.empty()) used_serials_.insert(s);
  for (auto& [k, c] : recorded_.claims)
    if (!c.serial.empty()) used_serials_.insert(c.serial);
}

bool TokenClaims::reserve(CK_SLOT_ID slot) {
  std::lock_guard<std::mutex> lock(mutex_);
  return taken_slots_.insert(slot).second;
}

std::string TokenClaims::label_for(const ManifestRow& r, const std::string& serial) const {
  if (!r.label.empty()) return r.label;
  std::map<std::string, std::string> vars{{"user", r.user.empty() ? user_from_subject(r.subject) : r.user},
                                          {"cn", ossl::dn_common_name(r.subject)},
                                          {"serial", serial}};
  // A token label is 32 bytes: cut at a character boundary.
  return utf8_prefix(expand_template(req_.base.profile.token_label_template, vars), 32);
}

void TokenClaims::claim(const Job& job, const Claim& c) {
  nlohmann::json j = {
      {"row_key", job.key}, {"row", job.row->row}, {"claim", c.serial.empty() ? "init" : "token"}, {"label", c.label}};
  if (!c.serial.empty()) j["serial"] = c.serial;
  try {
    state_->append(j);
  } catch (const Error& e) {
    throw RecordError(e);
  }
}

void TokenClaims::audit_init(const Job& job, const p11::TokenInfo& t, const std::string& label) {
  try {
    audit_append(req_.audit_log,
                 {{"event", "fleet-init-token"}, {"row", job.row->row}, {"ok", true}, {"token", t.serial}, {"label", label}});
  } catch (const Error& e) {
    throw RecordError(e);
  }
}

// The next blank token no row has. Slots not known to hold an initialized
// token are read first: the blank token is almost always there (SoftHSM2's
// new free slot, a reader not used yet), so a fleet reads one or two slots
// per row instead of every slot (which made runs quadratic in tokens). The
// other slots are read only when those have none: a blank card put into a
// reader used earlier in the run is still found.
std::optional<p11::TokenInfo> TokenClaims::next_blank() {
  auto ids = module_->slots(true);
  std::stable_partition(ids.begin(), ids.end(), [&](CK_SLOT_ID id) { return !seen_initialized_.count(id); });
  for (CK_SLOT_ID id : ids) {
    p11::TokenInfo t;
    try {
      t = module_->token_info(id);
    } catch (const p11::P11Error&) {
      continue; // pulled, or a token the module cannot read: never a row's blank token
    }
    if (t.initialized()) {
      seen_initialized_.insert(id);
      continue;
    }
    seen_initialized_.erase(id);
    if (!taken_slots_.count(id)) return t;
  }
  return std::nullopt;
}

void TokenClaims::initialize(Job& job, const p11::TokenInfo& t, const std::string& selector, Unfinished& u) {
  const auto& base = req_.base;
  Claim c{label_for(*job.row, t.serial), ""};
  claim(job, c);
  InitRequest ir{base.module_path, selector, c.label, false, base.profile.user_pin.min_length};
  ir.slot = t.slot_id; // the token just read: no second search, no second read
  ir.known = t;
  auto found = init_token_only(ir, *req_.secrets.so_pin, *req_.secrets.user_pin, &u.lock);
  auto now = module_->token_info(found.slot_id); // its serial, which C_InitToken may have set
  c.serial = now.serial;
  if (!c.serial.empty()) claim(job, c);
  audit_init(job, now, c.label);
  taken_slots_.insert(found.slot_id);
  seen_initialized_.insert(found.slot_id);
  job.serial = now.serial.empty() ? job.serial : now.serial;
  job.selector = exact_token_uri(now);
  job.initialized_now = true;
  u.initialized = found;
  u.label = c.label;
}

// Did an earlier run initialize a token for this blank row? True when its
// token was found again (U says what it still needs).
bool TokenClaims::resume(Job& job, const Claim& prev, Unfinished& u) {
  auto tokens = module_->tokens();
  if (!prev.serial.empty()) {
    auto it = std::find_if(tokens.begin(), tokens.end(), [&](auto& t) {
      return t.serial == prev.serial && (prev.label.empty() || t.label == prev.label) && !taken_slots_.count(t.slot_id);
    });
    if (it == tokens.end())
      fail(ExitCode::Token,
           "The token an earlier run initialized for this row (serial " + prev.serial + ", label '" + prev.label +
               "') is not present.",
           "Insert it again and rerun with the same state file; a new blank token is not taken for this row.");
    u.user_pin = *it;
    job.serial = it->serial;
    job.selector = exact_token_uri(*it);
    taken_slots_.insert(it->slot_id);
    return true;
  }
  // Killed after claiming, maybe inside C_InitToken: the token is
  // initialized with the claimed label, or still blank.
  std::vector<p11::TokenInfo> cands;
  for (auto& t : tokens)
    if (t.initialized() && t.label == prev.label && !taken_slots_.count(t.slot_id) &&
        (shared_serial(tokens, t.serial) || !used_serials_.count(t.serial)))
      cands.push_back(t);
  if (cands.size() > 1)
    fail(ExitCode::Token,
         "An earlier run was initializing a token for this row as '" + prev.label + "', and " +
             std::to_string(cands.size()) + " tokens now carry that label.",
         "Remove the extra tokens (or give this row another label) and run again.");
  if (cands.empty()) return false;
  Claim c{prev.label, cands[0].serial};
  claim(job, c);
  u.user_pin = cands[0];
  taken_slots_.insert(cands[0].slot_id);
  job.serial = c.serial;
  job.selector = exact_token_uri(cands[0]);
  return true;
}

Unfinished TokenClaims::take(Job& job, const p11::TokenInfo& named) {
  Unfinished u;
  std::lock_guard<std::mutex> lock(mutex_);
  const ManifestRow& r = *job.row;
  auto found = recorded_.claims.find(job.key);
  Claim prev = found != recorded_.claims.end() ? found->second : Claim{};
  if (r.token != "blank") {
    if (named.initialized()) {
      if (!prev.label.empty() && !named.user_pin_initialized() && req_.secrets.so_pin) u.user_pin = named;
      return u;
    }
    if (!req_.secrets.so_pin && req_.secrets.so_pin_problem) throw *req_.secrets.so_pin_problem;
    if (!req_.secrets.so_pin)
      fail(ExitCode::Pin, "The token '" + r.token + "' is blank: initializing it needs the SO PIN (--so-pin-source).");
    TokenLock blank_lock = lock_blank_tokens(*module_);
    initialize(job, named, job.selector, u);
    return u;
  }
  // A blank row. Another process's run may be choosing a blank token of this
  // module too: the choice and C_InitToken happen under the module's lock.
  TokenLock blank_lock = lock_blank_tokens(*module_);
  if ((!prev.serial.empty() || !prev.label.empty()) && resume(job, prev, u)) return u;
  // Take the next blank token.
  auto t = next_blank();
  if (!t)
    fail(ExitCode::Token, "No blank token is left for this row.",
         "Insert a blank token and run again with the same state file.");
  initialize(job, *t, t->serial.empty() ? "" : "serial:" + t->serial, u);
  return u;
}

} // namespace tokenprov::fleet_detail
