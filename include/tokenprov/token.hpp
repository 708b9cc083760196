// SPDX-License-Identifier: Apache-2.0
// Finding the module and the token a command works on, and opening a
// logged-in session on it.
#pragma once

#include "tokenprov/p11/module.hpp"
#include "tokenprov/secret.hpp"
#include "tokenprov/token_lock.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tokenprov {

inline constexpr const char* kP11KitProxy = "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so";

// --module, else the profile's module, else $TOKENPROV_MODULE, else p11-kit's proxy.
std::string resolve_module_path(const std::string& cli_module, const std::string& profile_module);

enum class TokenState { Any, Initialized, Blank };

// Finds a token by selector: an RFC 7512 URI, "serial:HEX", or a plain
// label. An empty selector takes the only token in STATE (several: Error(Usage)
// asking for --token). Not found: Error(Token) naming the selector.
// KNOWN: the scan of the module's slots the caller made just before (fleet,
// one scan for every row); find_token then reads no slot of its own.
p11::TokenInfo find_token(const p11::Module& module, const std::string& selector, TokenState state = TokenState::Any,
                          const p11::SlotScan* known = nullptr);

// A URI that names this token alone on its module while the module stays
// loaded: the token's attributes plus its slot-id (for modules whose tokens
// share a serial).
std::string exact_token_uri(const p11::TokenInfo& token);

// One line per token, each starting on a new line, for a person to pick from:
// label, serial, slot and the token's exact_token_uri().
std::string candidates(const std::vector<p11::TokenInfo>& tokens);

// A module, a token and a session on it, logged in when a PIN was given.
struct TokenContext {
  TokenLock lock; // read-write contexts: this run's lock on the token, released last
  std::shared_ptr<p11::Module> module;
  p11::TokenInfo token;
  std::unique_ptr<p11::Session> session;
};

struct OpenOptions {
  std::string module_path;
  std::string selector;
  TokenState state = TokenState::Initialized;
  bool read_write = false;
  const Secret* user_pin = nullptr; // log in as user when set
};

// A read-write context holds the token's lock (token_lock.hpp): a second run
// waits for it, and the token is read again once the lock is held.
TokenContext open_token(const OpenOptions& opts);

} // namespace tokenprov
