// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/fleet.hpp"
#include "fleet_state.hpp"
#include "tokenprov/interrupt.hpp"
#include "tokenprov/token_lock.hpp"

#include "tokenprov/audit.hpp"
#include "tokenprov/csr.hpp"
#include "tokenprov/p11/error.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/token_admin.hpp"
#include "tokenprov/utf8.hpp"

#include <openssl/x509.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <thread>

namespace tokenprov {

namespace {
using namespace fleet_detail;

// True when more than one of TOKENS carries SERIAL (so it names none of them).
bool shared_serial(const std::vector<p11::TokenInfo>& tokens, const std::string& serial) {
  return std::count_if(tokens.begin(), tokens.end(), [&](auto& t) { return t.serial == serial; }) > 1;
}


std::string cn_of(const std::string& subject) {
  return ossl::dn_common_name(subject);
}

struct Job {
  const ManifestRow* row = nullptr;
  std::string key;
  std::string selector; // what provision() gets: serial:HEX once known
  std::string serial;   // the token's serial once known
  bool initialized_now = false;
  bool finished = false; // failed (or checked, in a dry run) before the workers start
};

// The state file or the audit log could not be written: the run stops.
struct RecordError : Error {
  explicit RecordError(const Error& e) : Error(e) {}
};

nlohmann::json error_json(const Error& e) {
  nlohmann::json j = {{"code", static_cast<int>(e.code())}, {"message", e.what()}};
  if (!e.hint().empty()) j["hint"] = e.hint();
  return j;
}

} // namespace

FleetSummary run_fleet(const FleetRequest& req, const std::vector<ManifestRow>& rows) {
  FleetSummary sum;
  sum.total = rows.size();
  const ProvisionRequest& base = req.base;
  const bool dry = req.dry_run;
  if (req.jobs < 1) fail(ExitCode::Usage, "--jobs must be 1 or more.");

  bool any_blank = std::any_of(rows.begin(), rows.end(), [](auto& r) { return r.token == "blank"; });
  if (!dry) {
    // Problems every row would have: say so once, before anything is written.
    if (!req.secrets.user_pin) fail(ExitCode::Pin, "No user PIN was given (--pin-source).");
    if (any_blank && !req.secrets.so_pin && req.secrets.so_pin_problem) throw *req.secrets.so_pin_problem;
    if (any_blank && !req.secrets.so_pin)
      fail(ExitCode::Pin, "The manifest has blank rows: initializing those tokens needs the SO PIN (--so-pin-source).");
    if (!enrolls(base) && base.csr_dir.empty() && base.cert_dir.empty())
      fail(ExitCode::Usage,
           "Say where the certificates come from: --scep-url or --cmp-url (or the profile's), --csr-dir, or --cert-dir.");
    if (enrolls(base) && base.csr_dir.empty() && base.cert_dir.empty() && !req.secrets.challenge)
      fail(ExitCode::Ca, base.protocol == EnrollProtocol::Scep
                             ? "Enrolling over SCEP needs the challenge (--challenge-source)."
                             : "Enrolling over " + protocol_name(base.protocol) + " needs the CA's secret (--secret-source).");
    if (!base.backup_dir.empty() && !req.secrets.backup_password)
      fail(ExitCode::Usage, "--backup-dir needs --password-source for the backup password.");
  }

  std::optional<StateFile> state;
  if (!dry) state.emplace(req.state_file); // locks it before reading it
  if (!dry) audit_check(req.audit_log);    // an unwritable log is found before a token is touched
  auto recorded = load_state(req.state_file);

  std::vector<Job> jobs;
  for (auto& r : rows) {
    Job j;
    j.row = &r;
    j.key = manifest_row_key(r);
    if (recorded.done.count(j.key)) {
      ++sum.skipped;
      continue;
    }
    jobs.push_back(std::move(j));
  }

  auto module = p11::Module::load(base.module_path); // one module for every worker
  std::mutex out_mutex;
  std::size_t finished = sum.skipped;
  std::atomic<bool> stop{false};
  std::optional<Error> fatal;

  // Records and reports one finished row. Audit first, then the state file:
  // a crash between the two leaves the row to be redone (and audited again as
  // found present), never recorded without its audit line.
  auto emit = [&](const Job& job, nlohmann::json line, bool ok, bool done) {
    std::lock_guard<std::mutex> lock(out_mutex);
    line["row"] = job.row->row;
    line["ok"] = ok;
    if (!dry && !fatal) {
      try {
        nlohmann::json a = {{"event", "fleet-row"},
                            {"row", job.row->row},
                            {"ok", ok},
                            {"outcome", ok ? (done ? "done" : "awaiting-certificate") : "failed"},
                            {"token", line.value("token", "")},
                            {"subject", job.row->subject}};
        nlohmann::json ids = nlohmann::json::array(), serials = nlohmann::json::array();
        if (line.contains("keys"))
          for (auto& k : line["keys"]) {
            ids.push_back(k.value("id", ""));
            if (k.contains("certificate_serial")) serials.push_back(k["certificate_serial"]);
          }
        a["key_ids"] = ids;
        a["certificate_serials"] = serials;
        if (line.contains("keys")) a["keys"] = line["keys"];
        if (line.contains("error")) a["error"] = line["error"];
        audit_append(req.audit_log, a);
        nlohmann::json st = line;
        st["row_key"] = job.key;
        st["done"] = ok && done;
        state->append(st);
      } catch (const Error& e) {
        fatal.emplace(e);
        stop = true;
      }
    }
    if (ok)
      ++sum.ok;
    else
      ++sum.failed;
    ++finished;
    if (req.on_row) req.on_row(line);
    if (req.on_progress) req.on_progress(finished, sum.total, sum.failed);
  };
  auto fail_row = [&](Job& job, const nlohmann::json& err) {
    nlohmann::json line = {{"token", job.serial}, {"subject", job.row->subject}, {"error", err}};
    job.finished = true;
    emit(job, line, false, false);
  };

  // Text a row gives the token and its keys must be UTF-8: such a row fails on its own,
  // before any token is touched (the others go on).
  for (auto& job : jobs) {
    try {
      require_utf8(job.row->user, "user (manifest row " + std::to_string(job.row->row) + ", column 'user')");
      require_utf8(job.row->label, "label (manifest row " + std::to_string(job.row->row) + ", column 'label')");
    } catch (const Error& e) {
      fail_row(job, error_json(e));
    }
  }

  // ---- Which token each row gets --------------------------------------------
  // Tokens named by label or serial first; two rows naming one token is a bad manifest.
  // A token is known by its slot in this run, never by its serial alone:
  // tpm2-pkcs11 and NSS give every token the same serial.
  std::map<CK_SLOT_ID, std::size_t> slot_row;
  std::set<CK_SLOT_ID> taken_slots;   // tokens some row of this run has (blank rows must not take them)
  std::set<std::string> used_serials; // tokens earlier runs finished or initialized
  for (auto& [k, s] : recorded.done)
    if (!s.empty()) used_serials.insert(s);
  for (auto& [k, c] : recorded.claims)
    if (!c.serial.empty()) used_serials.insert(c.serial);
  std::vector<p11::TokenInfo> named(jobs.size());
  std::map<std::size_t, nlohmann::json> not_found; // reported once the manifest is known to be good
  // One scan of the slots for every named row: a scan per row (one
  // C_GetTokenInfo per slot, a card round trip each) made the start quadratic
  // in tokens (issue 19).
  std::optional<p11::SlotScan> scan_once;
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    Job& job = jobs[i];
    if (job.finished || job.row->token == "blank") continue;
    try {
      if (!scan_once) scan_once = module->scan();
      named[i] = find_token(*module, job.row->token, TokenState::Any, &*scan_once);
    } catch (const Error& e) {
      not_found[i] = error_json(e);
      continue;
    }
    job.serial = named[i].serial;
    job.selector = exact_token_uri(named[i]);
    if (auto [it, fresh] = slot_row.emplace(named[i].slot_id, job.row->row); !fresh)
      fail(ExitCode::BadInput,
           "The manifest '" + req.manifest + "', row " + std::to_string(job.row->row) + ", names the token '" +
               named[i].label + "' (serial " + job.serial + ", slot " + std::to_string(named[i].slot_id) +
               "), as row " + std::to_string(it->second) + " does.",
           "Each token may appear once in a manifest.");
    taken_slots.insert(named[i].slot_id);
  }
  for (auto& [i, err] : not_found)
    fail_row(jobs[i], err);

  auto label_for = [&](const ManifestRow& r, const std::string& serial) {
    if (!r.label.empty()) return r.label;
    std::map<std::string, std::string> vars{
        {"user", r.user.empty() ? user_from_subject(r.subject) : r.user}, {"cn", cn_of(r.subject)}, {"serial", serial}};
    // A token label is 32 bytes: cut at a character boundary.
    return utf8_prefix(expand_template(base.profile.token_label_template, vars), 32);
  };
  auto claim = [&](const Job& job, const Claim& c) {
    nlohmann::json j = {{"row_key", job.key},
                        {"row", job.row->row},
                        {"claim", c.serial.empty() ? "init" : "token"},
                        {"label", c.label}};
    if (!c.serial.empty()) j["serial"] = c.serial;
    try {
      state->append(j);
    } catch (const Error& e) {
      throw RecordError(e);
    }
  };
  auto audit_init = [&](const Job& job, const p11::TokenInfo& t, const std::string& label) {
    try {
      audit_append(
          req.audit_log,
          {{"event", "fleet-init-token"}, {"row", job.row->row}, {"ok", true}, {"token", t.serial}, {"label", label}});
    } catch (const Error& e) {
      throw RecordError(e);
    }
  };
  // A token whose C_InitToken ran but whose C_InitPIN did not (a crash between them).
  auto finish_user_pin = [&](const p11::TokenInfo& t) {
    if (t.user_pin_initialized()) return;
    p11::Session s(module, t.slot_id, true);
    s.login(CKU_SO, *req.secrets.so_pin);
    s.init_pin(*req.secrets.user_pin);
  };

  if (dry) {
    // Blank rows take distinct blank tokens, in order. A module may offer
    // fewer blank tokens than there are blank rows now and more later
    // (SoftHSM adds a free slot after each initialization): say so, no more.
    std::vector<p11::TokenInfo> blanks;
    for (auto& t : module->tokens())
      if (!t.initialized()) blanks.push_back(t);
    std::size_t next_blank = 0;
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      Job& job = jobs[i];
      if (job.finished) continue;
      nlohmann::json line = {{"token", job.serial}, {"subject", job.row->subject}, {"dry_run", true}};
      if (job.row->token == "blank") {
        if (recorded.claims.count(job.key) && !recorded.claims[job.key].serial.empty()) {
          line["token"] = recorded.claims[job.key].serial;
          line["initialized"] = true;
        } else if (next_blank < blanks.size()) {
          line["token"] = blanks[next_blank++].serial;
          line["initialized"] = false;
          line["label"] = label_for(*job.row, line["token"].get<std::string>());
        } else if (blanks.empty()) {
          fail_row(job, {{"code", static_cast<int>(ExitCode::Token)},
                         {"message", "No blank token is present for this blank row."}});
          continue;
        } else {
          line["initialized"] = false;
          line["label"] = label_for(*job.row, "");
          line["warning"] = "More blank rows than blank tokens present now (" + std::to_string(blanks.size()) +
                            "); the run needs one more blank token for this row by the time it gets to it.";
        }
      } else {
        line["initialized"] = named[i].initialized();
        line["label"] = named[i].label;
      }
      job.finished = true;
      emit(job, line, true, false);
    }
    return sum;
  }

  // ---- Readying each row's token, by the worker that takes the row ----------
  // Choosing a blank token and C_InitToken run one row at a time (init_mutex):
  // two rows must never take the same blank token, and SoftHSM2 shows its
  // next free slot only after the last blank one is initialized. What follows
  // C_InitToken (the SO login, C_InitPIN, then the row's keys) runs in
  // parallel; the module's slot-list lock (p11::Module) keeps SoftHSM2's
  // growing slot table away from the other workers' slot calls. Each
  // initialization is claimed in the state file before C_InitToken and again
  // with the serial right after it, so a run killed in between finds its token
  // again instead of taking another blank one.
  std::mutex init_mutex;
  std::set<CK_SLOT_ID> seen_initialized; // slots this run read an initialized token in (under init_mutex)
  // The next blank token no row has. Slots not known to hold an initialized
  // token are read first: the blank token is almost always there (SoftHSM2's
  // new free slot, a reader not used yet), so a fleet reads one or two slots
  // per row instead of every slot (which made runs quadratic in tokens). The
  // other slots are read only when those have none: a blank card put into a
  // reader used earlier in the run is still found.
  auto next_blank = [&]() -> std::optional<p11::TokenInfo> {
    auto ids = module->slots(true);
    std::stable_partition(ids.begin(), ids.end(), [&](CK_SLOT_ID id) { return !seen_initialized.count(id); });
    for (CK_SLOT_ID id : ids) {
      p11::TokenInfo t;
      try {
        t = module->token_info(id);
      } catch (const p11::P11Error&) {
        continue; // pulled, or a token the module cannot read: never a row's blank token
      }
      if (t.initialized()) {
        seen_initialized.insert(id);
        continue;
      }
      seen_initialized.erase(id);
      if (!taken_slots.count(id)) return t;
    }
    return std::nullopt;
  };
  // What a row's token still needs once init_mutex is released.
  struct Unfinished {
    std::optional<p11::TokenInfo> initialized; // C_InitToken done here (the token as found): set the user PIN
    std::string label;
    std::optional<p11::TokenInfo> user_pin; // an earlier run's token without a user PIN: set it
    TokenLock lock;                          // the token this row initialized (token_lock.hpp)
  };
  // Under init_mutex: the row's token is chosen and, if blank, initialized.
  auto take_token = [&](Job& job, std::size_t i) {
    Unfinished u;
    std::lock_guard<std::mutex> lock(init_mutex);
    const ManifestRow& r = *job.row;
    Claim prev = recorded.claims.count(job.key) ? recorded.claims[job.key] : Claim{};
    auto initialize = [&](const p11::TokenInfo& t, const std::string& selector) {
      Claim c{label_for(r, t.serial), ""};
      claim(job, c);
      InitRequest ir{base.module_path, selector, c.label, false, base.profile.user_pin.min_length};
      ir.slot = t.slot_id; // the token just read: no second search, no second read
      ir.known = t;
      auto found = init_token_only(ir, *req.secrets.so_pin, *req.secrets.user_pin, &u.lock);
      auto now = module->token_info(found.slot_id); // its serial, which C_InitToken may have set
      c.serial = now.serial;
      if (!c.serial.empty()) claim(job, c);
      audit_init(job, now, c.label);
      taken_slots.insert(found.slot_id);
      seen_initialized.insert(found.slot_id);
      job.serial = now.serial.empty() ? job.serial : now.serial;
      job.selector = exact_token_uri(now);
      job.initialized_now = true;
      u.initialized = found;
      u.label = c.label;
    };
    if (r.token != "blank") {
      const p11::TokenInfo& t = named[i];
      if (t.initialized()) {
        if (!prev.label.empty() && !t.user_pin_initialized() && req.secrets.so_pin) u.user_pin = t;
        return u;
      }
      if (!req.secrets.so_pin && req.secrets.so_pin_problem) throw *req.secrets.so_pin_problem;
      if (!req.secrets.so_pin)
        fail(ExitCode::Pin,
             "The token '" + r.token + "' is blank: initializing it needs the SO PIN (--so-pin-source).");
      TokenLock blank_lock = lock_blank_tokens(*module);
      initialize(t, job.selector);
      return u;
    }
    // A blank row. Another process's run may be choosing a blank token of this
    // module too: the choice and C_InitToken happen under the module's lock.
    TokenLock blank_lock = lock_blank_tokens(*module);
    // Did an earlier run initialize a token for it?
    if (!prev.serial.empty() || !prev.label.empty()) {
      auto tokens = module->tokens();
      if (!prev.serial.empty()) {
        auto it = std::find_if(tokens.begin(), tokens.end(), [&](auto& t) {
          return t.serial == prev.serial && (prev.label.empty() || t.label == prev.label) &&
                 !taken_slots.count(t.slot_id);
        });
        if (it == tokens.end())
          fail(ExitCode::Token,
               "The token an earlier run initialized for this row (serial " + prev.serial + ", label '" + prev.label +
                   "') is not present.",
               "Insert it again and rerun with the same state file; a new blank token is not taken for this row.");
        u.user_pin = *it;
        job.serial = it->serial;
        job.selector = exact_token_uri(*it);
        taken_slots.insert(it->slot_id);
        return u;
      }
      // Killed after claiming, maybe inside C_InitToken: the token is
      // initialized with the claimed label, or still blank.
      std::vector<p11::TokenInfo> cands;
      for (auto& t : tokens)
        if (t.initialized() && t.label == prev.label && !taken_slots.count(t.slot_id) &&
            (shared_serial(tokens, t.serial) || !used_serials.count(t.serial)))
          cands.push_back(t);
      if (cands.size() > 1)
        fail(ExitCode::Token,
             "An earlier run was initializing a token for this row as '" + prev.label + "', and " +
                 std::to_string(cands.size()) + " tokens now carry that label.",
             "Remove the extra tokens (or give this row another label) and run again.");
      if (cands.size() == 1) {
        Claim c{prev.label, cands[0].serial};
        claim(job, c);
        u.user_pin = cands[0];
        taken_slots.insert(cands[0].slot_id);
        job.serial = c.serial;
        job.selector = exact_token_uri(cands[0]);
        return u;
      }
    }
    // Take the next blank token.
    auto t = next_blank();
    if (!t)
      fail(ExitCode::Token, "No blank token is left for this row.",
           "Insert a blank token and run again with the same state file.");
    initialize(*t, t->serial.empty() ? "" : "serial:" + t->serial);
    return u;
  };
  // The whole of readying row I's token; in parallel but for take_token.
  // Returns the row's token lock, held by the worker until the row is done.
  auto ready_token = [&](Job& job, std::size_t i) {
    // A token the row names: another process's run may be working on it; wait
    // for it outside init_mutex (the other workers go on meanwhile).
    TokenLock named_lock;
    if (job.row->token != "blank" && named[i].initialized()) named_lock = lock_token(named[i]);
    Unfinished u = take_token(job, i);
    if (u.initialized)
      finish_token_init(module, *u.initialized, u.label, *req.secrets.so_pin, *req.secrets.user_pin,
                        base.profile.user_pin.min_length);
    if (u.user_pin) finish_user_pin(*u.user_pin);
    return u.lock.held() ? std::move(u.lock) : std::move(named_lock);
  };

  // ---- The workers: one row (one token, one session) each at a time --------
  std::vector<std::pair<Job*, std::size_t>> todo;
  for (std::size_t i = 0; i < jobs.size(); ++i)
    if (!jobs[i].finished) todo.emplace_back(&jobs[i], i);
  std::atomic<std::size_t> next{0};
  // A PIN refused by one token (CKR_PIN_INCORRECT) is not tried on the others:
  // every row shares it, and every token would lose a try to the same wrong
  // PIN. (Rows already logging in at that moment, at most --jobs - 1 of them,
  // still make their one attempt.) Anything else about one token's PIN (not
  // set, locked, expired) fails that row only.
  std::atomic<bool> pin_refused{false};
  std::mutex pin_mutex;
  std::string pin_refused_by, pin_refused_which;
  auto note_refused = [&](const Error& e, const Job& job) {
    auto* pe = dynamic_cast<const p11::P11Error*>(&e);
    if (!pe || pe->rv() != CKR_PIN_INCORRECT || pin_refused.exchange(true)) return;
    std::lock_guard<std::mutex> lock(pin_mutex);
    pin_refused_by = job.serial.empty() ? "'" + job.row->token + "'" : job.serial;
    bool so = pe->function() == "C_InitToken" || std::string_view(e.what()).rfind("The SO PIN", 0) == 0;
    pin_refused_which = so ? "SO PIN" : "user PIN";
  };
  auto work = [&]() {
    for (;;) {
      if (stop || interrupted()) return; // a signal: no new row (the rows under way roll back their step)
      std::size_t i = next.fetch_add(1);
      if (i >= todo.size()) return;
      Job& job = *todo[i].first;
      const ManifestRow& r = *job.row;
      if (pin_refused) {
        nlohmann::json line = {{"token", job.serial}, {"subject", r.subject}};
        std::lock_guard<std::mutex> lock(pin_mutex);
        line["error"] = {{"code", static_cast<int>(ExitCode::Pin)},
                         {"message", "Not attempted: the " + pin_refused_which + " was refused by token " +
                                         pin_refused_by + "; fix the PIN source and run again with the same state file."}};
        emit(job, line, false, false);
        continue;
      }
      TokenLock row_lock; // this row's token, until its provision is done
      try {
        row_lock = ready_token(job, todo[i].second);
      } catch (const RecordError& e) {
        std::lock_guard<std::mutex> lock(out_mutex);
        if (!fatal) fatal.emplace(e);
        stop = true;
        return;
      } catch (const Error& e) {
        note_refused(e, job);
        fail_row(job, error_json(e));
        continue;
      } catch (const std::exception& e) {
        fail_row(job, {{"code", 1}, {"message", std::string("Internal error: ") + e.what()}});
        continue;
      }
      nlohmann::json line = {{"token", job.serial}, {"subject", r.subject}};
      try {
        ProvisionRequest pr = base;
        pr.progress = nullptr;
        pr.token = job.selector;
        pr.subject = r.subject;
        pr.sans = r.sans;
        pr.user = r.user;
        pr.token_label = r.label;
        auto res = provision(pr, req.secrets);
        auto j = res.to_json();
        line["token"] = res.token.serial;
        line["label"] = res.token.label;
        line["initialized"] = job.initialized_now || res.initialized_now;
        line["complete"] = res.complete;
        line["keys"] = j["keys"];
        emit(job, line, true, res.complete);
      } catch (const Error& e) {
        note_refused(e, job);
        line["error"] = error_json(e);
        emit(job, line, false, false);
      } catch (const std::exception& e) {
        line["error"] = {{"code", 1}, {"message", std::string("Internal error: ") + e.what()}};
        emit(job, line, false, false);
      } catch (...) {
        line["error"] = {{"code", 1}, {"message", "Internal error."}};
        emit(job, line, false, false);
      }
    }
  };

  int n_workers = std::max(1, std::min<int>(req.jobs, static_cast<int>(std::max<std::size_t>(todo.size(), 1))));
  std::vector<std::thread> workers;
  for (int j = 1; j < n_workers; ++j)
    workers.emplace_back(work);
  work();
  for (auto& t : workers)
    t.join();
  if (fatal) throw *fatal;
  // Stopped by a signal: the rows finished are in the state file, the rest are
  // for the rerun with the same state file.
  check_interrupt(ExitCode::FleetFailed, "during the fleet run (" + std::to_string(finished) + " of " +
                                             std::to_string(sum.total) + " rows finished and recorded)");
  return sum;
}

} // namespace tokenprov
