// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/audit.hpp"

#include "tokenprov/error.hpp"
#include "tokenprov/utf8.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <mutex>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

namespace tokenprov {

std::string now_rfc3339() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string operator_name() {
  if (const char* u = std::getenv("TOKENPROV_OPERATOR"); u && *u) return u;
  if (struct passwd* pw = ::getpwuid(::geteuid())) return pw->pw_name;
  return std::to_string(::geteuid());
}

namespace {
// The log, opened for appending: a regular file only (O_NONBLOCK: a FIFO never hangs the open).
int open_log(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0600);
  if (fd < 0)
    fail(ExitCode::BadInput, "Cannot open the audit log '" + path + "': " + std::strerror(errno) + ".",
         "Give --audit-log a file in a folder you can write to; nothing was done.");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(ExitCode::BadInput, "The audit log '" + path + "' is not a regular file.",
         "Give --audit-log a regular file; nothing was done.");
  }
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}
} // namespace

void audit_check(const std::string& path) {
  if (path.empty()) return;
  ::close(open_log(path));
}

void audit_append(const std::string& path, nlohmann::json event) {
  if (path.empty()) return;
  static std::mutex m;
  nlohmann::json line = {{"time", now_rfc3339()}, {"operator", operator_name()}};
  line.update(event);
  std::string text = json_text(line) + "\n";
  std::lock_guard<std::mutex> lock(m);
  int fd = open_log(path);
  ssize_t n = ::write(fd, text.data(), text.size());
  int e = errno;
  ::fsync(fd);
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size()))
    fail(ExitCode::BadInput, "Cannot write the audit log '" + path + "': " + std::strerror(e) + ".");
}

} // namespace tokenprov
