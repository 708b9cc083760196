// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/token_lock.hpp"

#include "tokenprov/interrupt.hpp"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <sys/file.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace tokenprov {

LockSettings& lock_settings() {
  static LockSettings s;
  return s;
}

namespace {

struct Held {
  int fd = -1;
  std::thread::id owner;
  int count = 0;
};
std::mutex g_mutex;
std::map<std::string, Held>& held_locks() {
  static std::map<std::string, Held> m;
  return m;
}

// The lock file's name: two 64-bit FNV-1a hashes of the key (different
// offset bases), in hex. Stable across builds and versions, so every tokenprov
// on the machine agrees; the PKCS#11 layer does not use OpenSSL. A collision
// would only make two tokens share one lock.
std::string key_hash_hex(const std::string& s) {
  std::string out;
  for (std::uint64_t h : {std::uint64_t{14695981039346656037ull}, std::uint64_t{0x6c62272e07bb0142ull}}) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ull;
    }
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    out += buf;
  }
  return out;
}

// A folder of ours alone: created 0700 when missing; one that is not a
// folder, not ours, or open to others is not used.
bool usable_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) return false;
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) return false;
  if ((st.st_mode & 077) != 0 && ::chmod(dir.c_str(), 0700) != 0) return false;
  return ::access(dir.c_str(), W_OK | X_OK) == 0;
}

int holder_pid(int fd) {
  char buf[32] = {};
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return 0;
  return std::atoi(buf);
}

} // namespace

std::string lock_dir() {
  std::string uid = std::to_string(::geteuid());
  std::vector<std::string> cands{"/run/lock/tokenprov-" + uid};
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x == '/') cands.push_back(std::string(x) + "/tokenprov");
  cands.push_back("/tmp/tokenprov-" + uid);
  for (auto& d : cands)
    if (usable_dir(d)) return d;
  fail(ExitCode::Token,
       "No folder for tokenprov's token locks could be made (tried /run/lock/tokenprov-" + uid +
           ", $XDG_RUNTIME_DIR/tokenprov and /tmp/tokenprov-" + uid + "); nothing was changed.",
       "Each must be a folder owned by this user with mode 0700, or not exist: remove or fix one of them.");
}

TokenLock acquire_lock(const std::string& key, const std::string& what) {
  const LockSettings& cfg = lock_settings();
  const int wait = std::max(0, cfg.wait_seconds);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait);
  const std::string path = lock_dir() + "/" + key_hash_hex(key) + ".lock";
  bool told = false;
  for (;;) {
    int pid = 0;
    {
      std::lock_guard<std::mutex> g(g_mutex);
      auto it = held_locks().find(key);
      if (it != held_locks().end()) {
        if (it->second.owner == std::this_thread::get_id()) {
          ++it->second.count;
          return TokenLock(key);
        }
        pid = ::getpid(); // another thread of this run
      } else {
        int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
          fail(ExitCode::Token,
               "Cannot open the lock file '" + path + "' for " + what + ": " + std::strerror(errno) +
                   "; nothing was changed.",
               "Check the folder " + lock_dir() + " (it must be this user's, mode 0700).");
        int rc;
        do {
          rc = ::flock(fd, LOCK_EX | LOCK_NB);
        } while (rc != 0 && errno == EINTR);
        if (rc == 0) {
          std::string me = std::to_string(::getpid()) + "\n";
          if (::ftruncate(fd, 0) == 0) (void)!::pwrite(fd, me.data(), me.size(), 0);
          held_locks()[key] = Held{fd, std::this_thread::get_id(), 1};
          return TokenLock(key);
        }
        int err = errno;
        pid = holder_pid(fd);
        ::close(fd);
        if (err != EWOULDBLOCK)
          fail(ExitCode::Token, "Cannot lock '" + path + "' for " + what + ": " + std::strerror(err) + "; nothing was changed.");
      }
    }
    std::string who = "another tokenprov run" + (pid > 0 ? " (process " + std::to_string(pid) + ")" : std::string());
    if (std::chrono::steady_clock::now() >= deadline)
      fail(ExitCode::Token,
           "The " + what + " is in use by " + who +
               (wait > 0 ? ", still after waiting " + std::to_string(wait) + " s" : std::string()) +
               "; this run changed nothing.",
           "One tokenprov run works on a token at a time: wait for that run to finish, then run again "
           "(--lock-wait SECONDS sets how long to wait; 0 refuses at once).");
    if (!told) {
      told = true;
      if (cfg.on_wait)
        cfg.on_wait("The " + what + " is in use by " + who + "; waiting for it (at most " + std::to_string(wait) +
                    " s, --lock-wait)...");
    }
    interruptible_sleep(std::chrono::milliseconds(100), ExitCode::Token, "while waiting for the " + what);
  }
}

TokenLock::~TokenLock() { release(); }

TokenLock& TokenLock::operator=(TokenLock&& o) noexcept {
  if (this != &o) {
    release();
    key_ = std::move(o.key_);
    o.key_.clear();
  }
  return *this;
}

void TokenLock::release() noexcept {
  if (key_.empty()) return;
  std::lock_guard<std::mutex> g(g_mutex);
  auto it = held_locks().find(key_);
  if (it != held_locks().end() && --it->second.count <= 0) {
    ::close(it->second.fd); // the kernel drops the flock with the last descriptor
    held_locks().erase(it);
  }
  key_.clear();
}

std::string token_lock_key(const p11::TokenInfo& t) {
  return "token\n" + t.manufacturer + "\n" + t.model + "\n" + t.serial + "\n" + t.label;
}

TokenLock lock_token(const p11::TokenInfo& t) {
  if (!t.initialized()) fail(ExitCode::Internal, "lock_token() was given a blank token.");
  return acquire_lock(token_lock_key(t), "token '" + t.label + "' (serial " + t.serial + ")");
}

TokenLock lock_blank_tokens(const p11::Module& module) {
  std::string path = module.path();
  if (char* real = ::realpath(path.c_str(), nullptr)) {
    path = real;
    std::free(real);
  }
  return acquire_lock("blank\n" + path, "choice of a blank token through the module '" + module.path() + "'");
}

} // namespace tokenprov
