// SPDX-License-Identifier: Apache-2.0
// One tokenprov run per token at a time, across processes: an flock(2) on a
// lock file per token, which the kernel releases when its holder exits (a
// killed run never leaves a token locked). A second run waits for the first,
// with a message, at most lock_settings().wait_seconds, then fails with exit 6.
//
// Keys: an initialized token is known by its manufacturer, model, serial and
// label (tpm2-pkcs11 and NSS give every token one serial: the label tells them
// apart; the same token reached directly and through p11-kit's proxy shares
// its lock). Blank tokens have no label yet: choosing a blank token and
// C_InitToken run under one lock per module (its real path). Order: the blank
// lock before a token lock, never the other way round.
#pragma once

#include "tokenprov/p11/module.hpp"

#include <functional>
#include <string>

namespace tokenprov {

struct LockSettings {
  int wait_seconds = 300; // 0: refuse at once when another run holds the token
  std::function<void(const std::string&)> on_wait; // told once per wait (the CLI prints it on stderr)
};
LockSettings& lock_settings();

// A held lock; released on destruction. Re-entrant per thread: a fleet worker
// holding its row's token lock can call provision, which takes it again.
class TokenLock {
public:
  TokenLock() = default;
  ~TokenLock();
  TokenLock(TokenLock&& o) noexcept : key_(std::move(o.key_)) { o.key_.clear(); }
  TokenLock& operator=(TokenLock&& o) noexcept;
  TokenLock(const TokenLock&) = delete;
  TokenLock& operator=(const TokenLock&) = delete;
  bool held() const { return !key_.empty(); }
  void release() noexcept;

private:
  friend TokenLock acquire_lock(const std::string&, const std::string&);
  explicit TokenLock(std::string key) : key_(std::move(key)) {}
  std::string key_;
};

// The lock of an initialized token (what it names in messages: its label and serial).
TokenLock lock_token(const p11::TokenInfo& token);
// The lock over choosing a blank token of MODULE and initializing it.
TokenLock lock_blank_tokens(const p11::Module& module);
// The key lock_token() uses: equal keys, one lock.
std::string token_lock_key(const p11::TokenInfo& token);

// The folder of the lock files: /run/lock/tokenprov-UID, else
// $XDG_RUNTIME_DIR/tokenprov, else /tmp/tokenprov-UID (mode 0700, ours).
std::string lock_dir();

// Low level: the lock named KEY, described as WHAT in messages.
TokenLock acquire_lock(const std::string& key, const std::string& what);

} // namespace tokenprov
