// SPDX-License-Identifier: Apache-2.0
// Private to src/flows: fleet's state file (what earlier runs recorded, and
// the appending of new lines to it).
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>

namespace tokenprov::fleet_detail {

// What an earlier run recorded in the state file.
struct Claim {
  std::string label;  // the label this row's token was being initialized with
  std::string serial; // the token it initialized (set once C_InitToken is done)
};
struct StateRecord {
  std::map<std::string, std::string> done; // row key -> token serial, rows finished with everything
  std::map<std::string, Claim> claims;     // row key -> token being initialized for it
};

StateRecord load_state(const std::string& path);

// The state file: JSON lines, each appended with one write(2) on an O_APPEND
// descriptor and fsync'ed before the run goes on. An exclusive flock keeps a
// second run off the same file while this one runs.
class StateFile {
public:
  explicit StateFile(std::string path);
  ~StateFile();
  StateFile(const StateFile&) = delete;
  StateFile& operator=(const StateFile&) = delete;

  void append(const nlohmann::json& j);

private:
  void write_line(const std::string& body);
  void sync_dir();
  std::string path_;
  int fd_ = -1;
};

} // namespace tokenprov::fleet_detail
