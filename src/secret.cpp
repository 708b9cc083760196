#include "tokenprov/secret.hpp"

#include <openssl/crypto.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

namespace tokenprov {

void Secret::wipe() noexcept {
  if (!value_.empty()) OPENSSL_cleanse(value_.data(), value_.size());
  value_.clear();
}

namespace {

// Reads one line (without its end) from fd; wipes the scratch buffer.
Secret read_line_fd(int fd, const std::string& where, const SecretRequest& req) {
  std::string buf;
  char c;
  for (;;) {
    ssize_t n = ::read(fd, &c, 1);
    if (n < 0) {
      if (errno == EINTR) continue;
      OPENSSL_cleanse(buf.data(), buf.size());
      fail(req.code, "Cannot read the " + req.what + " from " + where + ": " + std::strerror(errno) + ".");
    }
    if (n == 0 || c == '\n') break;
    buf.push_back(c);
    if (buf.size() > 4096) {
      OPENSSL_cleanse(buf.data(), buf.size());
      fail(req.code, "The " + req.what + " read from " + where + " is longer than 4096 bytes.");
    }
  }
  if (!buf.empty() && buf.back() == '\r') buf.pop_back();
  return Secret(std::move(buf));
}

Secret prompt_once(const std::string& text, const SecretRequest& req) {
  int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    fail(req.code, "No " + req.what + " source was given and there is no terminal to ask on.",
         "Give one as env:VAR, file:PATH or fd:N.");
  struct termios old {};
  bool have_term = ::tcgetattr(fd, &old) == 0;
  if (have_term) {
    struct termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;
    ::tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  (void)!::write(fd, text.data(), text.size());
  Secret s;
  try {
    s = read_line_fd(fd, "the terminal", req);
  } catch (...) {
    if (have_term) ::tcsetattr(fd, TCSAFLUSH, &old);
    ::close(fd);
    throw;
  }
  if (have_term) ::tcsetattr(fd, TCSAFLUSH, &old);
  ::close(fd);
  return s;
}

} // namespace

bool is_secret_source(const std::string& source) {
  return source == "prompt" || source.rfind("env:", 0) == 0 || source.rfind("file:", 0) == 0 ||
         source.rfind("fd:", 0) == 0;
}

Secret read_secret(const std::string& source, const SecretRequest& req) {
  Secret s;
  if (source.rfind("env:", 0) == 0) {
    std::string var = source.substr(4);
    const char* v = var.empty() ? nullptr : std::getenv(var.c_str());
    if (!v) fail(req.code, "The " + req.what + " source env:" + var + " names an environment variable that is not set.");
    s = Secret(std::string(v));
  } else if (source.rfind("file:", 0) == 0) {
    std::string path = source.substr(5);
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      fail(req.code, "Cannot open the " + req.what + " file '" + path + "': " + std::strerror(errno) + ".");
    try {
      s = read_line_fd(fd, "'" + path + "'", req);
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);
  } else if (source.rfind("fd:", 0) == 0) {
    std::string n = source.substr(3);
    char* end = nullptr;
    long fd = std::strtol(n.c_str(), &end, 10);
    if (n.empty() || *end != '\0' || fd < 0)
      fail(ExitCode::Usage, "The " + req.what + " source '" + source + "' is not fd:N with N a number.");
    s = read_line_fd(static_cast<int>(fd), "file descriptor " + n, req);
  } else if (source == "prompt" || source.empty()) {
    s = prompt_once("Enter the " + req.what + ": ", req);
    if (req.confirm) {
      Secret again = prompt_once("Enter the " + req.what + " again: ", req);
      if (again.str() != s.str()) fail(req.code, "The two " + req.what + " entries differ.");
    }
  } else {
    fail(ExitCode::Usage, "'" + source + "' is not a secret source.",
         "Use env:VAR, file:PATH, fd:N or prompt; secrets are never given as option values.");
  }
  if (s.empty()) fail(req.code, "The " + req.what + " from " + (source.empty() ? "prompt" : source.substr(0, source.find(':'))) + " is empty.");
  if (req.min_length && s.size() < req.min_length)
    fail(req.code, "The " + req.what + " is too short: at least " + std::to_string(req.min_length) + " characters are required.");
  if (req.max_length && s.size() > req.max_length)
    fail(req.code, "The " + req.what + " is too long: at most " + std::to_string(req.max_length) + " characters are allowed.");
  return s;
}

} // namespace tokenprov
