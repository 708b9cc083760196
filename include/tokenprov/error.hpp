// SPDX-License-Identifier: Apache-2.0
// Typed errors and the contract's exit codes. Every failure the library
// reports is a tokenprov::Error carrying the exit code it maps to; the CLI
// turns it into a message and a status in one place (src/cli/main.cpp).
#pragma once

#include <stdexcept>
#include <string>

namespace tokenprov {

// Exit codes fixed by shared/cli-contract.md.
enum class ExitCode : int {
  Ok = 0,
  Internal = 1,     // unexpected internal error (a bug)
  Usage = 2,        // usage error
  Pin = 3,          // PIN wrong, locked, missing, too short
  Policy = 4,       // refused by key policy
  BadInput = 5,     // unreadable/corrupt file, wrong password, no matching key, validity, bad manifest/profile
  Token = 6,        // module will not load, token not found, device error, token full
  Ca = 7,           // CA or enrollment failure
  Exists = 8,       // refused to overwrite or erase without --force
  Expiring = 9,     // status --expiring: a certificate expires within the window
  FleetFailed = 10, // fleet finished and at least one token failed
};

const char* exit_code_name(ExitCode c) noexcept;

class Error : public std::runtime_error {
public:
  Error(ExitCode code, const std::string& message, std::string hint = {})
      : std::runtime_error(message), code_(code), hint_(std::move(hint)) {}
  ExitCode code() const noexcept { return code_; }
  // A sentence telling the user what to do next; may be empty.
  const std::string& hint() const noexcept { return hint_; }

private:
  ExitCode code_;
  std::string hint_;
};

// Convenience constructors, so call sites read as sentences.
[[noreturn]] inline void fail(ExitCode code, const std::string& message, std::string hint = {}) {
  throw Error(code, message, std::move(hint));
}

} // namespace tokenprov
