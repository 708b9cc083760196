// SPDX-License-Identifier: Apache-2.0
// Fleet's output (Recorder) and the note of a refused PIN (PinRefusal).
#include "fleet_run.hpp"

#include "tokenprov/audit.hpp"
#include "tokenprov/p11/error.hpp"

#include <string_view>

namespace tokenprov::fleet_detail {

nlohmann::json error_json(const Error& e) {
  nlohmann::json j = {{"code", static_cast<int>(e.code())}, {"message", e.what()}};
  if (!e.hint().empty()) j["hint"] = e.hint();
  return j;
}

nlohmann::json internal_error_json(const char* what) {
  return {{"code", static_cast<int>(ExitCode::Internal)},
          {"message", what ? std::string("Internal error: ") + what : std::string("Internal error.")}};
}

Recorder::Recorder(const FleetRequest& req, StateFile* state, std::size_t total, std::size_t skipped)
    : req_(req), state_(state), finished_(skipped) {
  sum_.total = total;
  sum_.skipped = skipped;
}

// Audit first, then the state file: a crash between the two leaves the row to
// be redone (and audited again as found present), never recorded without its
// audit line.
void Recorder::record(const Job& job, const nlohmann::json& line, bool ok, bool done) {
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
  audit_append(req_.audit_log, a);
  nlohmann::json st = line;
  st["row_key"] = job.key;
  st["done"] = ok && done;
  state_->append(st);
}

void Recorder::finish(Job& job, nlohmann::json line, bool ok, bool done) {
  std::lock_guard<std::mutex> lock(mutex_);
  line["row"] = job.row->row;
  line["ok"] = ok;
  if (state_ && !fatal_) {
    try {
      record(job, line, ok, done);
    } catch (const Error& e) {
      fatal_.emplace(e);
      stop_ = true;
    }
  }
  job.recorded = true;
  if (ok)
    ++sum_.ok;
  else
    ++sum_.failed;
  ++finished_;
  auto err = report(line);
  if (!err || !ok) return; // a failed row whose report fails too: it is counted failed, nothing more to say
  --sum_.ok;
  ++sum_.failed;
  report({{"row", job.row->row},
          {"ok", false},
          {"token", line.value("token", "")},
          {"subject", job.row->subject},
          {"error", *err}});
}

std::optional<nlohmann::json> Recorder::report(const nlohmann::json& line) {
  try {
    if (req_.on_row) req_.on_row(line);
    if (req_.on_progress) req_.on_progress(finished_, sum_.total, sum_.failed);
    return std::nullopt;
  } catch (const Error& e) {
    return error_json(e);
  } catch (const std::exception& e) {
    return internal_error_json(e.what());
  } catch (...) {
    return internal_error_json(nullptr);
  }
}

void Recorder::fail(Job& job, const nlohmann::json& err) {
  nlohmann::json line = {{"token", job.serial}, {"subject", job.row->subject}, {"error", err}};
  job.finished = true;
  finish(job, line, false, false);
}

void Recorder::stop(const Error& e) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!fatal_) fatal_.emplace(e);
  stop_ = true;
}

void Recorder::throw_if_stopped() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (fatal_) throw *fatal_;
}

FleetSummary Recorder::summary() {
  std::lock_guard<std::mutex> lock(mutex_);
  return sum_;
}

std::size_t Recorder::finished() {
  std::lock_guard<std::mutex> lock(mutex_);
  return finished_;
}

void PinRefusal::note(const Error& e, const Job& job) {
  auto* pe = dynamic_cast<const p11::P11Error*>(&e);
  if (!pe || pe->rv() != CKR_PIN_INCORRECT || refused_.exchange(true)) return;
  std::lock_guard<std::mutex> lock(mutex_);
  by_ = job.serial.empty() ? "'" + job.row->token + "'" : job.serial;
  bool so = pe->function() == "C_InitToken" || std::string_view(e.what()).rfind("The SO PIN", 0) == 0;
  which_ = so ? "SO PIN" : "user PIN";
}

std::optional<nlohmann::json> PinRefusal::not_attempted() {
  if (!refused_) return std::nullopt;
  std::lock_guard<std::mutex> lock(mutex_);
  return nlohmann::json{{"code", static_cast<int>(ExitCode::Pin)},
                        {"message", "Not attempted: the " + which_ + " was refused by token " + by_ +
                                        "; fix the PIN source and run again with the same state file."}};
}

} // namespace tokenprov::fleet_detail
