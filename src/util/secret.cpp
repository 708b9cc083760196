// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/secret.hpp"

#include "tokenprov/fileio.hpp"

#include <openssl/crypto.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <csignal>
#include <fcntl.h>
#include <iterator>
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

// While a prompt has echo off: the terminal and its settings, for the signal
// handler that puts them back when Ctrl-C (or SIGTERM, SIGHUP) ends the run.
volatile sig_atomic_t g_tty_fd = -1;
struct termios g_tty_saved {};
const int kPromptSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

extern "C" void restore_tty_and_die(int sig) {
  if (g_tty_fd >= 0) {
    ::tcsetattr(g_tty_fd, TCSAFLUSH, &g_tty_saved); // async-signal-safe
    (void)!::write(g_tty_fd, "\n", 1);
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig); // the default action: the exit status says which signal
}

// Echo off on FD until destruction, with the signal handlers above meanwhile.
class EchoOff {
public:
  explicit EchoOff(int fd) : fd_(fd) {
    if (::tcgetattr(fd, &old_) != 0) return;
    g_tty_saved = old_;
    struct sigaction sa {};
    sa.sa_handler = restore_tty_and_die;
    sigemptyset(&sa.sa_mask);
    for (std::size_t i = 0; i < std::size(kPromptSignals); ++i)
      ::sigaction(kPromptSignals[i], &sa, &prev_[i]);
    g_tty_fd = fd;
    struct termios quiet = old_;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;
    ::tcsetattr(fd, TCSAFLUSH, &quiet);
    active_ = true;
  }
  ~EchoOff() {
    if (!active_) return;
    ::tcsetattr(fd_, TCSAFLUSH, &old_);
    g_tty_fd = -1;
    for (std::size_t i = 0; i < std::size(kPromptSignals); ++i)
      ::sigaction(kPromptSignals[i], &prev_[i], nullptr);
  }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;

private:
  int fd_;
  struct termios old_ {};
  struct sigaction prev_[std::size(kPromptSignals)] {};
  bool active_ = false;
};

Secret prompt_once(const std::string& text, const SecretRequest& req) {
  int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    fail(req.code, "No " + req.what + " source was given and there is no terminal to ask on.",
         "Give one as env:VAR, file:PATH or fd:N.");
  Secret s;
  try {
    EchoOff quiet(fd);
    (void)!::write(fd, text.data(), text.size());
    s = read_line_fd(fd, "the terminal", req);
  } catch (...) {
    ::close(fd);
    throw;
  }
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
    // A regular file only (a FIFO would hang, a device never end): fd:N is for pipes.
    InputKind kind = input::secret;
    std::string what = req.what + " file";
    kind.what = what.c_str();
    int fd = open_input_file(path, kind, req.code);
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
    // The value is not shown: it may be the secret itself (--pin-source 1234).
    fail(ExitCode::Usage, "The " + req.what + " source is not a secret source (its value is not shown).",
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
