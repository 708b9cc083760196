// SPDX-License-Identifier: Apache-2.0
// Fleet enrollment: many tokens from a CSV manifest, N workers (one session
// per token), one JSON line per finished row, a durable state file so that a
// killed run started again completes the rest with nothing lost or doubled.
#pragma once

#include "tokenprov/provision.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace tokenprov {

struct ManifestRow {
  std::size_t row = 0;  // 1-based, header excluded
  std::string token;    // label, serial:HEX, or "blank"
  std::string subject;  // DN
  std::vector<std::string> sans;
  std::string user;
  std::string label;    // label a blank token gets
  std::map<std::string, std::string> extra;
};

// Reads and checks the manifest (libcsv): header with at least `token` and
// `subject`; every DN and SAN well formed; no token twice. Error(BadInput)
// naming the file, the row and the column otherwise.
std::vector<ManifestRow> read_manifest(const std::string& path);

// Identifies a row in the state file. A token named by label or serial
// appears once per manifest, so token + subject is unique; blank rows are
// told apart by subject, user and the label they give the token.
std::string manifest_row_key(const ManifestRow& r);

struct FleetRequest {
  std::string manifest;
  int jobs = 1;
  std::string state_file;
  std::string audit_log;
  bool dry_run = false;
  ProvisionRequest base;  // profile, module, SCEP, dirs; per-row fields are filled in
  ProvisionSecrets secrets;
  std::function<void(const nlohmann::json&)> on_row;                       // each finished row
  std::function<void(std::size_t, std::size_t, std::size_t)> on_progress; // done, total, failed
};

struct FleetSummary {
  std::size_t total = 0, ok = 0, failed = 0, skipped = 0;
};

FleetSummary run_fleet(const FleetRequest& req, const std::vector<ManifestRow>& rows);

} // namespace tokenprov
