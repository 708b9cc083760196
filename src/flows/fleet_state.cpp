// SPDX-License-Identifier: Apache-2.0
#include "fleet_state.hpp"

#include "tokenprov/error.hpp"
#include "tokenprov/utf8.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace tokenprov::fleet_detail {

StateRecord load_state(const std::string& path) {
  StateRecord st;
  if (path.empty()) return st;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("row_key") || !j["row_key"].is_string())
      continue; // a line cut by a crash: that row was not finished
    std::string key = j["row_key"].get<std::string>();
    if (j.contains("claim")) {
      auto& c = st.claims[key];
      if (j.contains("label") && j["label"].is_string()) c.label = j["label"].get<std::string>();
      if (j.contains("serial") && j["serial"].is_string()) c.serial = j["serial"].get<std::string>();
    } else if (j.value("ok", false) && j.value("done", false)) {
      st.done[key] = j.contains("token") && j["token"].is_string() ? j["token"].get<std::string>() : "";
    }
  }
  return st;
}

StateFile::StateFile(std::string path) : path_(std::move(path)) {
  if (path_.empty()) return;
  struct stat st {};
  bool existed = ::stat(path_.c_str(), &st) == 0;
  fd_ = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) fail(ExitCode::BadInput, "Cannot open the state file '" + path_ + "': " + std::strerror(errno) + ".");
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd_);
    fd_ = -1;
    fail(ExitCode::BadInput, "The state file '" + path_ + "' is in use by another fleet run.",
         "Wait for that run to end; two runs on one state file would provision the same rows twice.");
  }
  if (!existed) sync_dir(); // the new file's name is durable too
  // A line cut by a crash has no newline: end it, so the next line stands on its own.
  off_t size = ::lseek(fd_, 0, SEEK_END);
  char last = '\n';
  if (size > 0 && ::pread(fd_, &last, 1, size - 1) == 1 && last != '\n') write_line("");
}

StateFile::~StateFile() {
  if (fd_ >= 0) ::close(fd_);
}

void StateFile::append(const nlohmann::json& j) {
  if (fd_ >= 0) write_line(json_text(j));
}

void StateFile::write_line(const std::string& body) {
  std::string text = body + "\n";
  ssize_t n;
  do {
    n = ::write(fd_, text.data(), text.size()); // one write(2) of one whole line
  } while (n < 0 && errno == EINTR);
  int e = errno;
  if (n != static_cast<ssize_t>(text.size()))
    fail(ExitCode::BadInput,
         "Cannot write the state file '" + path_ +
             "': " + (n < 0 ? std::string(std::strerror(e)) : std::string("short write")) + ".",
         "Free some space and run again with the same state file: what is recorded is kept.");
  if (::fsync(fd_) != 0)
    fail(ExitCode::BadInput, "Cannot flush the state file '" + path_ + "' to disk: " + std::strerror(errno) + ".");
}

void StateFile::sync_dir() {
  auto slash = path_.rfind('/');
  std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash));
  int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d >= 0) {
    ::fsync(d);
    ::close(d);
  }
}

} // namespace tokenprov::fleet_detail
