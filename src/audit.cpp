#include "tokenprov/audit.hpp"

#include "tokenprov/error.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <mutex>
#include <pwd.h>
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

void audit_append(const std::string& path, nlohmann::json event) {
  if (path.empty()) return;
  static std::mutex m;
  nlohmann::json line = {{"time", now_rfc3339()}, {"operator", operator_name()}};
  line.update(event);
  std::string text = line.dump() + "\n";
  std::lock_guard<std::mutex> lock(m);
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) fail(ExitCode::BadInput, "Cannot open the audit log '" + path + "': " + std::strerror(errno) + ".");
  ssize_t n = ::write(fd, text.data(), text.size());
  int e = errno;
  ::fsync(fd);
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size()))
    fail(ExitCode::BadInput, "Cannot write the audit log '" + path + "': " + std::strerror(e) + ".");
}

} // namespace tokenprov
