#include "tokenprov/fleet.hpp"

#include "tokenprov/audit.hpp"
#include "tokenprov/csr.hpp"
#include "tokenprov/token_admin.hpp"

#include <csv.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <unistd.h>

namespace tokenprov {

namespace {

struct CsvParse {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> cur;
};

void on_field(void* s, size_t n, void* data) {
  static_cast<CsvParse*>(data)->cur.emplace_back(static_cast<char*>(s), n);
}
void on_record(int, void* data) {
  auto* p = static_cast<CsvParse*>(data);
  p->records.push_back(std::move(p->cur));
  p->cur.clear();
}

std::string trim(std::string s) {
  s.erase(0, s.find_first_not_of(" \t\r"));
  auto e = s.find_last_not_of(" \t\r");
  s.erase(e == std::string::npos ? 0 : e + 1);
  return s;
}

} // namespace

std::vector<ManifestRow> read_manifest(const std::string& path) {
  auto data = ossl::read_file(path);
  struct csv_parser parser;
  if (csv_init(&parser, CSV_STRICT | CSV_APPEND_NULL | CSV_EMPTY_IS_NULL) != 0)
    fail(ExitCode::Internal, "Cannot start the CSV parser.");
  CsvParse p;
  std::size_t n = csv_parse(&parser, data.data(), data.size(), on_field, on_record, &p);
  bool ok = n == data.size() && csv_fini(&parser, on_field, on_record, &p) == 0;
  int err = csv_error(&parser);
  csv_free(&parser);
  if (!ok)
    fail(ExitCode::BadInput, "The manifest '" + path + "' is not valid CSV: " + csv_strerror(err) + " (after record " +
                                 std::to_string(p.records.size()) + ").",
         "Check the quoting of that line.");
  if (p.records.empty()) fail(ExitCode::BadInput, "The manifest '" + path + "' is empty; it needs a header row.");
  std::vector<std::string> header;
  for (auto& h : p.records[0]) header.push_back(trim(h));
  auto col = [&](const std::string& name) -> int {
    auto it = std::find(header.begin(), header.end(), name);
    return it == header.end() ? -1 : static_cast<int>(it - header.begin());
  };
  for (const char* req : {"token", "subject"})
    if (col(req) < 0)
      fail(ExitCode::BadInput, "The manifest '" + path + "' has no '" + req + "' column.",
           "The header needs at least: token,subject (optional: san,user,label).");
  std::set<std::string> seen_header;
  for (auto& h : header)
    if (!seen_header.insert(h).second) fail(ExitCode::BadInput, "The manifest '" + path + "' names the column '" + h + "' twice.");

  std::vector<ManifestRow> rows;
  std::set<std::string> tokens;
  for (std::size_t i = 1; i < p.records.size(); ++i) {
    auto& rec = p.records[i];
    if (rec.size() == 1 && trim(rec[0]).empty()) continue; // blank line
    std::string where = "The manifest '" + path + "', row " + std::to_string(i);
    if (rec.size() != header.size())
      fail(ExitCode::BadInput, where + ", has " + std::to_string(rec.size()) + " fields; the header has " +
                                   std::to_string(header.size()) + ".");
    ManifestRow r;
    r.row = i;
    for (std::size_t c = 0; c < header.size(); ++c) {
      std::string v = trim(rec[c]);
      const std::string& h = header[c];
      if (h == "token") r.token = v;
      else if (h == "subject") r.subject = v;
      else if (h == "user") r.user = v;
      else if (h == "label") r.label = v;
      else if (h == "san") {
        std::stringstream ss(v);
        std::string part;
        while (std::getline(ss, part, ';'))
          if (!trim(part).empty()) r.sans.push_back(trim(part));
      } else r.extra[h] = v;
    }
    if (r.token.empty()) fail(ExitCode::BadInput, where + ", has no token.", "Use a label, serial:HEX, or blank.");
    if (r.subject.empty()) fail(ExitCode::BadInput, where + ", has no subject.");
    try {
      ossl::parse_dn(r.subject);
      for (auto& s : r.sans) check_san(s);
    } catch (const Error& e) {
      fail(ExitCode::BadInput, where + ": " + e.what());
    }
    if (r.label.size() > 32) fail(ExitCode::BadInput, where + ", has a label longer than 32 bytes.");
    if (r.token != "blank" && !tokens.insert(r.token).second)
      fail(ExitCode::BadInput, where + ", names the token '" + r.token + "' a second time.",
           "Each token may appear once in a manifest.");
    rows.push_back(std::move(r));
  }
  if (rows.empty()) fail(ExitCode::BadInput, "The manifest '" + path + "' has no rows.");
  return rows;
}

namespace {

std::set<std::string> load_state(const std::string& path) {
  std::set<std::string> done;
  if (path.empty()) return done;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue; // a line cut by a kill
    if (j.value("ok", false) && j.contains("row_key")) done.insert(j["row_key"].get<std::string>());
  }
  return done;
}

void append_state(const std::string& path, const nlohmann::json& line) {
  if (path.empty()) return;
  std::string text = line.dump() + "\n";
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) fail(ExitCode::BadInput, "Cannot open the state file '" + path + "': " + std::strerror(errno) + ".");
  ssize_t n = ::write(fd, text.data(), text.size()); // one write(2) of one line: appended whole
  ::fsync(fd);
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size())) fail(ExitCode::BadInput, "Cannot write the state file '" + path + "'.");
}

} // namespace

FleetSummary run_fleet(const FleetRequest& req, const std::vector<ManifestRow>& rows) {
  FleetSummary sum;
  sum.total = rows.size();
  auto done_before = load_state(req.state_file);
  std::vector<const ManifestRow*> todo;
  for (auto& r : rows) {
    if (done_before.count(r.key())) ++sum.skipped;
    else todo.push_back(&r);
  }

  auto module = p11::Module::load(req.base.module_path); // one module for every worker
  std::mutex out_mutex, claim_mutex;
  std::atomic<std::size_t> next{0};
  std::size_t finished = sum.skipped;

  auto emit = [&](const ManifestRow& r, nlohmann::json line, bool ok) {
    std::lock_guard<std::mutex> lock(out_mutex);
    line["row"] = r.row;
    line["ok"] = ok;
    if (!req.dry_run) {
      nlohmann::json st = line;
      st["row_key"] = r.key();
      append_state(req.state_file, st);
      audit_append(req.audit_log, {{"event", "fleet-row"}, {"row", r.row}, {"ok", ok}, {"token", line.value("token", "")},
                                   {"result", line}});
    }
    if (ok) ++sum.ok;
    else ++sum.failed;
    ++finished;
    if (req.on_row) req.on_row(line);
    if (req.on_progress) req.on_progress(finished, sum.total, sum.failed);
  };

  auto work = [&]() {
    for (;;) {
      std::size_t i = next.fetch_add(1);
      if (i >= todo.size()) return;
      const ManifestRow& r = *todo[i];
      nlohmann::json line = {{"token", ""}, {"subject", r.subject}};
      try {
        std::string selector = r.token;
        if (req.dry_run) {
          auto t = find_token(*module, r.token == "blank" ? "" : r.token,
                              r.token == "blank" ? TokenState::Blank : TokenState::Any);
          line["token"] = t.serial;
          line["dry_run"] = true;
          line["initialized"] = t.initialized();
          emit(r, line, true);
          continue;
        }
        ProvisionRequest pr = req.base;
        pr.subject = r.subject;
        pr.sans = r.sans;
        pr.user = r.user;
        pr.token_label = r.label;
        if (r.token == "blank") {
          // Claim the next blank token: one worker at a time finds and initializes it.
          std::lock_guard<std::mutex> lock(claim_mutex);
          auto t = find_token(*module, "", TokenState::Blank);
          if (!req.secrets.so_pin) fail(ExitCode::Pin, "Blank tokens need the SO PIN (--so-pin-source).");
          std::map<std::string, std::string> vars{{"user", r.user.empty() ? user_from_subject(r.subject) : r.user},
                                                  {"cn", ""},
                                                  {"serial", t.serial}};
          std::string label = r.label.empty() ? expand_template(pr.profile.token_label_template, vars) : r.label;
          if (label.size() > 32) label.resize(32);
          InitRequest ir{pr.module_path, t.serial.empty() ? "" : "serial:" + t.serial, label, false,
                         pr.profile.user_pin.min_length};
          auto done = init_token(ir, *req.secrets.so_pin, *req.secrets.user_pin);
          selector = "serial:" + done.serial;
        } else {
          // Resolve the token first so a failure still names its serial.
          line["token"] = find_token(*module, r.token, TokenState::Any).serial;
        }
        pr.token = selector;
        auto res = provision(pr, req.secrets);
        line["token"] = res.token.serial;
        auto j = res.to_json();
        line["label"] = res.token.label;
        line["complete"] = res.complete;
        line["keys"] = j["keys"];
        emit(r, line, true);
      } catch (const Error& e) {
        line["error"] = {{"code", static_cast<int>(e.code())}, {"message", e.what()}};
        emit(r, line, false);
      } catch (const std::exception& e) {
        line["error"] = {{"code", 1}, {"message", std::string("Internal error: ") + e.what()}};
        emit(r, line, false);
      }
    }
  };

  int jobs = std::max(1, std::min<int>(req.jobs, static_cast<int>(std::max<std::size_t>(todo.size(), 1))));
  std::vector<std::thread> workers;
  for (int j = 1; j < jobs; ++j) workers.emplace_back(work);
  work();
  for (auto& t : workers) t.join();
  return sum;
}

} // namespace tokenprov
