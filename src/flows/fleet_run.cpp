// SPDX-License-Identifier: Apache-2.0
// One fleet run (fleet_run.hpp): checks, the tokens rows name, the dry run,
// the workers and one row.
#include "fleet_run.hpp"

#include "tokenprov/audit.hpp"
#include "tokenprov/interrupt.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/token_admin.hpp"
#include "tokenprov/utf8.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <map>
#include <system_error>
#include <thread>

namespace tokenprov::fleet_detail {

FleetRun::FleetRun(const FleetRequest& req, const std::vector<ManifestRow>& rows)
    : req_(req), base_(req.base), rows_(rows) {}

// Problems every row would have: said once, before anything is written.
namespace {

// The manifest's optional column `renew`: empty (the run's --renew-expiring),
// a number of days (renew what expires within it), or `all` (renew every
// certificate of the row's token now).
std::optional<double> row_renewal(const ManifestRow& r, const std::string& manifest) {
  auto it = r.extra.find("renew");
  if (it == r.extra.end() || it->second.empty()) return std::nullopt;
  const std::string& v = it->second;
  if (v == "all") return std::numeric_limits<double>::infinity();
  try {
    std::size_t used = 0;
    double days = std::stod(v, &used);
    if (used == v.size() && std::isfinite(days) && days >= 0) return days;
  } catch (const std::exception&) {
  }
  fail(ExitCode::BadInput,
       "The manifest '" + manifest + "', row " + std::to_string(r.row) + ", column 'renew': '" + v +
           "' is neither a number of days nor 'all'.",
       "Leave it empty, give the days within which a certificate is renewed (e.g. 30), or 'all'.");
}

} // namespace

void FleetRun::validate() const {
  if (req_.jobs < 1) fail(ExitCode::Usage, "--jobs must be 1 or more.");
  for (auto& r : rows_)
    (void)row_renewal(r, req_.manifest); // a bad value is a bad manifest, whether or not this is a dry run
  if (req_.dry_run) return;
  const auto& s = req_.secrets;
  bool any_blank = std::any_of(rows_.begin(), rows_.end(), [](auto& r) { return r.token == "blank"; });
  if (!s.user_pin) fail(ExitCode::Pin, "No user PIN was given (--pin-source).");
  if (any_blank && !s.so_pin && s.so_pin_problem) throw *s.so_pin_problem;
  if (any_blank && !s.so_pin)
    fail(ExitCode::Pin, "The manifest has blank rows: initializing those tokens needs the SO PIN (--so-pin-source).");
  check_sources(base_, s);
  // Renewals are authenticated by the current certificates: a run that renews may
  // need no enrollment secret (a row whose key must be enrolled fails on its own).
  bool renews = base_.renew_within_days ||
                std::any_of(rows_.begin(), rows_.end(), [this](auto& r) { return row_renewal(r, req_.manifest).has_value(); });
  if (enrolls(base_) && base_.csr_dir.empty() && base_.cert_dir.empty() && !s.challenge && !renews)
    fail_no_enrollment_secret(base_.protocol);
}

// Text a row gives the token and its keys must be UTF-8: such a row fails on
// its own, before any token is touched (the others go on).
void FleetRun::check_row_text() {
  for (auto& job : jobs_) {
    try {
      require_utf8(job.row->user, "user (manifest row " + std::to_string(job.row->row) + ", column 'user')");
      require_utf8(job.row->label, "label (manifest row " + std::to_string(job.row->row) + ", column 'label')");
    } catch (const Error& e) {
      recorder_->fail(job, error_json(e));
    }
  }
}

// Tokens named by label or serial, found with one scan of the slots for every
// named row: a scan per row (one C_GetTokenInfo per slot, a card round trip
// each) made the start quadratic in tokens (issue 19). Two rows naming one
// token is a bad manifest. A token is known by its slot in this run, never by
// its serial alone: tpm2-pkcs11 and NSS give every token the same serial.
void FleetRun::resolve_named() {
  named_.assign(jobs_.size(), {});
  std::map<CK_SLOT_ID, std::size_t> slot_row;
  std::map<std::size_t, nlohmann::json> not_found; // reported once the manifest is known to be good
  std::optional<p11::SlotScan> scan_once;
  for (std::size_t i = 0; i < jobs_.size(); ++i) {
    Job& job = jobs_[i];
    if (job.finished || job.row->token == "blank") continue;
    try {
      if (!scan_once) scan_once = module_->scan();
      named_[i] = find_token(*module_, job.row->token, TokenState::Any, &*scan_once);
    } catch (const Error& e) {
      not_found[i] = error_json(e);
      continue;
    }
    job.serial = named_[i].serial;
    job.selector = exact_token_uri(named_[i]);
    if (auto [it, fresh] = slot_row.emplace(named_[i].slot_id, job.row->row); !fresh)
      fail(ExitCode::BadInput,
           "The manifest '" + req_.manifest + "', row " + std::to_string(job.row->row) + ", names the token '" +
               named_[i].label + "' (serial " + job.serial + ", slot " + std::to_string(named_[i].slot_id) +
               "), as row " + std::to_string(it->second) + " does.",
           "Each token may appear once in a manifest.");
    claims_->reserve(named_[i].slot_id);
  }
  for (auto& [i, err] : not_found)
    recorder_->fail(jobs_[i], err);
}

// Blank rows take distinct blank tokens, in order. A module may offer fewer
// blank tokens than there are blank rows now and more later (SoftHSM adds a
// free slot after each initialization): say so, no more.
FleetSummary FleetRun::dry_run() {
  std::vector<p11::TokenInfo> blanks;
  for (auto& t : module_->tokens())
    if (!t.initialized()) blanks.push_back(t);
  std::size_t next_blank = 0;
  for (std::size_t i = 0; i < jobs_.size(); ++i) {
    Job& job = jobs_[i];
    if (job.finished) continue;
    nlohmann::json line = {{"token", job.serial}, {"subject", job.row->subject}, {"dry_run", true}};
    auto claimed = recorded_.claims.find(job.key);
    if (job.row->token != "blank") {
      line["initialized"] = named_[i].initialized();
      line["label"] = named_[i].label;
    } else if (claimed != recorded_.claims.end() && !claimed->second.serial.empty()) {
      line["token"] = claimed->second.serial;
      line["initialized"] = true;
    } else if (next_blank < blanks.size()) {
      line["token"] = blanks[next_blank++].serial;
      line["initialized"] = false;
      line["label"] = claims_->label_for(*job.row, line["token"].get<std::string>());
    } else if (blanks.empty()) {
      recorder_->fail(job, {{"code", static_cast<int>(ExitCode::Token)},
                            {"message", "No blank token is present for this blank row."}});
      continue;
    } else {
      line["initialized"] = false;
      line["label"] = claims_->label_for(*job.row, "");
      line["warning"] = "More blank rows than blank tokens present now (" + std::to_string(blanks.size()) +
                        "); the run needs one more blank token for this row by the time it gets to it.";
    }
    job.finished = true;
    recorder_->finish(job, line, true, false);
  }
  return recorder_->summary();
}

// A token whose C_InitToken ran but whose C_InitPIN did not (a crash between them).
void FleetRun::finish_user_pin(const p11::TokenInfo& t) {
  if (t.user_pin_initialized()) return;
  // token_admin's, with its PIN-length check against the profile and the token.
  (void)set_first_user_pin(module_, t, *req_.secrets.so_pin, *req_.secrets.user_pin, base_.profile.user_pin.min_length);
}

// The whole of readying row I's token, in parallel but for TokenClaims::take.
// Returns the row's token lock, held by the worker until the row is done.
TokenLock FleetRun::ready_token(Job& job, std::size_t i) {
  // A token the row names: another process's run may be working on it; wait
  // for it outside the hand-out lock (the other workers go on meanwhile).
  TokenLock named_lock;
  if (job.row->token != "blank" && named_[i].initialized()) named_lock = lock_token(named_[i]);
  Unfinished u = claims_->take(job, named_[i]);
  if (u.initialized)
    finish_token_init(module_, *u.initialized, u.label, *req_.secrets.so_pin, *req_.secrets.user_pin,
                      base_.profile.user_pin.min_length);
  if (u.user_pin) finish_user_pin(*u.user_pin);
  return u.lock.held() ? std::move(u.lock) : std::move(named_lock);
}

// One row: its token readied, then provisioned; the outcome recorded.
void FleetRun::one_row(Job& job, std::size_t i) {
  if (auto err = pin_.not_attempted()) {
    recorder_->fail(job, *err);
    return;
  }
  TokenLock row_lock; // this row's token, until its provision is done
  ProvisionResult res;
  try {
    row_lock = ready_token(job, i);
    ProvisionRequest pr = base_;
    pr.progress = nullptr;
    pr.token = job.selector;
    pr.subject = job.row->subject;
    pr.sans = job.row->sans;
    pr.user = job.row->user;
    pr.token_label = job.row->label;
    if (auto days = row_renewal(*job.row, req_.manifest)) pr.renew_within_days = days;
    res = provision(pr, req_.secrets);
  } catch (const RecordError&) {
    throw;
  } catch (const Error& e) {
    pin_.note(e, job);
    throw;
  }
  auto j = res.to_json();
  nlohmann::json line = {{"token", res.token.serial},
                         {"subject", job.row->subject},
                         {"label", res.token.label},
                         {"initialized", job.initialized_now || res.initialized_now},
                         {"complete", res.complete},
                         {"keys", j["keys"]}};
  if (!res.renewals.empty()) line["renewals"] = j["renewals"];
  recorder_->finish(job, line, true, res.complete);
}

// The rows, one (one token, one session) at a time until none is left.
// Whatever a row throws fails that row only (an Error keeps its code,
// anything else is code 1), and the worker goes on with the next; only the
// state file or the audit log failing stops the run.
void FleetRun::work() {
  for (;;) {
    if (recorder_->stopped() || interrupted()) return; // a signal: no new row (the rows under way roll back their step)
    std::size_t n = next_.fetch_add(1);
    if (n >= todo_.size()) return;
    Job& job = *todo_[n].first;
    std::optional<nlohmann::json> err;
    try {
      one_row(job, todo_[n].second);
    } catch (const RecordError& e) {
      recorder_->stop(e);
      return;
    } catch (const Error& e) {
      err = error_json(e);
    } catch (const std::exception& e) {
      err = internal_error_json(e.what());
    } catch (...) {
      err = internal_error_json(nullptr);
    }
    if (err && !job.recorded) recorder_->fail(job, *err);
  }
}

// A worker thread's body: nothing leaves it. What work() cannot put on a row
// (the recorder itself failing) stops the run with that error.
void FleetRun::worker() {
  try {
    work();
  } catch (const Error& e) {
    recorder_->stop(e);
  } catch (const std::exception& e) {
    recorder_->stop(Error(ExitCode::Internal, std::string("Internal error: ") + e.what()));
  } catch (...) {
    recorder_->stop(Error(ExitCode::Internal, "Internal error."));
  }
}

void FleetRun::run_workers() {
  for (std::size_t i = 0; i < jobs_.size(); ++i)
    if (!jobs_[i].finished) todo_.emplace_back(&jobs_[i], i);
  int n_workers = std::max(1, std::min<int>(req_.jobs, static_cast<int>(std::max<std::size_t>(todo_.size(), 1))));
  // Joined on every path: a std::jthread joins in its destructor. A thread
  // that cannot be started leaves the rows to the others.
  std::vector<std::jthread> workers;
  for (int w = 1; w < n_workers; ++w) {
    try {
      workers.emplace_back([this] { worker(); });
    } catch (const std::system_error&) {
      break;
    }
  }
  worker();
}

FleetSummary FleetRun::run() {
  validate();
  if (!req_.dry_run) state_.emplace(req_.state_file); // locks it before reading it
  if (!req_.dry_run) audit_check(req_.audit_log);    // an unwritable log is found before a token is touched
  recorded_ = load_state(req_.state_file);
  std::size_t skipped = 0;
  for (auto& r : rows_) {
    Job j;
    j.row = &r;
    j.key = manifest_row_key(r);
    if (recorded_.done.count(j.key)) {
      ++skipped;
      continue;
    }
    jobs_.push_back(std::move(j));
  }
  module_ = p11::Module::load(base_.module_path); // one module for every worker
  StateFile* state = state_ ? &*state_ : nullptr;
  recorder_.emplace(req_, state, rows_.size(), skipped);
  claims_.emplace(req_, module_, recorded_, state);
  check_row_text();
  resolve_named();
  if (req_.dry_run) return dry_run();
  run_workers();
  recorder_->throw_if_stopped();
  // Stopped by a signal: the rows finished are in the state file, the rest are
  // for the rerun with the same state file.
  check_interrupt(ExitCode::FleetFailed, "during the fleet run (" + std::to_string(recorder_->finished()) + " of " +
                                             std::to_string(rows_.size()) + " rows finished and recorded)");
  return recorder_->summary();
}

} // namespace tokenprov::fleet_detail
