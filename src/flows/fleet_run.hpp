// SPDX-License-Identifier: Apache-2.0
// Private to src/flows: one fleet run (run_fleet() builds a FleetRun and runs
// it). Two locks, each owned by the small class whose methods take it:
// TokenClaims hands out tokens (which blank or named token a row gets, and a
// blank token's C_InitToken), Recorder writes what a finished row produced
// (audit line, state line, the caller's callbacks). No method of one calls the
// other while holding its lock.
#pragma once

#include "fleet_state.hpp"

#include "tokenprov/error.hpp"
#include "tokenprov/fleet.hpp"
#include "tokenprov/p11/module.hpp"
#include "tokenprov/token_lock.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace tokenprov::fleet_detail {

struct Job {
  const ManifestRow* row = nullptr;
  std::string key;
  std::string selector; // what provision() gets: serial:HEX once known
  std::string serial;   // the token's serial once known
  bool initialized_now = false;
  bool finished = false; // failed (or checked, in a dry run) before the workers start
  bool recorded = false; // its outcome is recorded and counted (Recorder::finish)
};

// The state file or the audit log could not be written: the run stops.
struct RecordError : Error {
  explicit RecordError(const Error& e) : Error(e) {}
};

nlohmann::json error_json(const Error& e);
// What a row gets for an exception that is not an Error (WHAT null: not even a std::exception): code 1.
nlohmann::json internal_error_json(const char* what);

// Owns the output lock: one finished row's audit line, then its state line
// (one write and fsync each; a crash between the two leaves the row to be
// redone, never recorded without its audit line), the counts, and the
// caller's on_row and on_progress, all under it. Never held across a
// PKCS#11 call. A callback that throws on a good row makes the row failed in
// the counts and in a second report; what is recorded stays, as it is what
// the token holds. Nothing thrown by a callback leaves the Recorder.
class Recorder {
public:
  Recorder(const FleetRequest& req, StateFile* state, std::size_t total, std::size_t skipped);
  // Records and reports one finished row.
  void finish(Job& job, nlohmann::json line, bool ok, bool done);
  // Records and reports a row that failed with ERR.
  void fail(Job& job, const nlohmann::json& err);
  // The state file or the audit log failed: no new row is started, and the run ends with E.
  void stop(const Error& e);
  bool stopped() const { return stop_; }
  // After the workers: the first recording error, if any, is thrown.
  void throw_if_stopped();
  FleetSummary summary();
  std::size_t finished();

private:
  void record(const Job& job, const nlohmann::json& line, bool ok, bool done); // with mutex_ held
  std::optional<nlohmann::json> report(const nlohmann::json& line);            // with mutex_ held; the error

  const FleetRequest& req_;
  StateFile* state_; // null in a dry run
  std::mutex mutex_;
  FleetSummary sum_;      // guarded by mutex_
  std::size_t finished_;  // guarded by mutex_
  std::optional<Error> fatal_; // guarded by mutex_
  std::atomic<bool> stop_{false};
};

// What a row's token still needs once the hand-out lock is released.
struct Unfinished {
  std::optional<p11::TokenInfo> initialized; // C_InitToken done here (the token as found): set the user PIN
  std::string label;
  std::optional<p11::TokenInfo> user_pin; // an earlier run's token without a user PIN: set it
  TokenLock lock;                          // the token this row initialized (token_lock.hpp)
};

// Owns the hand-out lock: which token each row gets. Choosing a blank token
// and its C_InitToken run one row at a time: two rows must never take the same
// blank token, and SoftHSM2 shows its next free slot only after the last
// blank one is initialized. What follows C_InitToken (the SO login,
// C_InitPIN, then the row's keys) runs outside it, in parallel; the module's
// slot-list lock (p11::Module) keeps SoftHSM2's growing slot table away from
// the other workers' slot calls. Each initialization is claimed in the state
// file before C_InitToken and again with the serial right after it, so a run
// killed in between finds its token again instead of taking another blank one.
class TokenClaims {
public:
  TokenClaims(const FleetRequest& req, std::shared_ptr<p11::Module> module, const StateRecord& recorded,
              StateFile* state);
  // A token a row names (before the workers start). False when another row has it already.
  bool reserve(CK_SLOT_ID slot);
  // The row's token chosen and, if blank, initialized. NAMED is the token a
  // named row found (unused for a blank row).
  Unfinished take(Job& job, const p11::TokenInfo& named);
  // The label a blank token gets for row R (the manifest's, else the profile's template).
  std::string label_for(const ManifestRow& r, const std::string& serial) const;

private:
  // With mutex_ held, all of them.
  void initialize(Job& job, const p11::TokenInfo& t, const std::string& selector, Unfinished& u);
  bool resume(Job& job, const Claim& prev, Unfinished& u);
  std::optional<p11::TokenInfo> next_blank();
  void claim(const Job& job, const Claim& c);
  void audit_init(const Job& job, const p11::TokenInfo& t, const std::string& label);

  const FleetRequest& req_;
  std::shared_ptr<p11::Module> module_;
  const StateRecord& recorded_;
  StateFile* state_;
  std::mutex mutex_;
  std::set<CK_SLOT_ID> taken_slots_;      // tokens some row of this run has (blank rows must not take them)
  std::set<CK_SLOT_ID> seen_initialized_; // slots this run read an initialized token in
  std::set<std::string> used_serials_;    // tokens earlier runs finished or initialized
};

// A PIN refused by one token (CKR_PIN_INCORRECT) is not tried on the others:
// every row shares it, and every token would lose a try to the same wrong PIN.
// (Rows already logging in at that moment, at most --jobs - 1 of them, still
// make their one attempt.) Anything else about one token's PIN (not set,
// locked, expired) fails that row only. Its lock guards only the note.
class PinRefusal {
public:
  void note(const Error& e, const Job& job);
  // The error a row not attempted gets, once a PIN was refused.
  std::optional<nlohmann::json> not_attempted();

private:
  std::atomic<bool> refused_{false};
  std::mutex mutex_;
  std::string by_, which_; // guarded by mutex_
};

class FleetRun {
public:
  FleetRun(const FleetRequest& req, const std::vector<ManifestRow>& rows);
  FleetSummary run();

private:
  void validate() const;
  void check_row_text();
  void resolve_named();
  FleetSummary dry_run();
  void run_workers();
  void worker();
  void work();
  void one_row(Job& job, std::size_t i);
  TokenLock ready_token(Job& job, std::size_t i);
  void finish_user_pin(const p11::TokenInfo& t);

  const FleetRequest& req_;
  const ProvisionRequest& base_;
  const std::vector<ManifestRow>& rows_;
  std::optional<StateFile> state_;
  StateRecord recorded_;
  std::vector<Job> jobs_;
  std::vector<p11::TokenInfo> named_; // per job: the token a named row found
  std::shared_ptr<p11::Module> module_;
  std::optional<Recorder> recorder_;
  std::optional<TokenClaims> claims_;
  PinRefusal pin_;
  std::vector<std::pair<Job*, std::size_t>> todo_;
  std::atomic<std::size_t> next_{0};
};

} // namespace tokenprov::fleet_detail
