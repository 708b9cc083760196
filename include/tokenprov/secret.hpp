// SPDX-License-Identifier: Apache-2.0
// Secrets (PINs, SO PINs, challenges, passwords): never on the command line,
// never logged, wiped after use.
#pragma once

#include "tokenprov/error.hpp"

#include <string>
#include <string_view>

namespace tokenprov {

class Secret {
public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}
  ~Secret() { wipe(); }
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  Secret(Secret&& o) noexcept : value_(std::move(o.value_)) { o.wipe(); }
  Secret& operator=(Secret&& o) noexcept {
    if (this != &o) {
      wipe();
      value_ = std::move(o.value_);
      o.wipe();
    }
    return *this;
  }
  const std::string& str() const { return value_; }
  std::string_view view() const { return value_; }
  std::size_t size() const { return value_.size(); }
  bool empty() const { return value_.empty(); }
  void wipe() noexcept;

private:
  std::string value_;
};

struct SecretRequest {
  std::string what;        // "user PIN", "SO PIN", "backup password", "SCEP challenge"
  ExitCode code = ExitCode::Pin; // exit code when the source is missing/unreadable/too short
  bool confirm = false;    // a prompt asks twice
  std::size_t min_length = 0;
  std::size_t max_length = 0; // 0: no maximum
};

// Reads a secret from SOURCE: "env:VAR", "file:PATH", "fd:N" or "prompt"
// (the terminal, without echo). For file: and fd: the first line is taken.
Secret read_secret(const std::string& source, const SecretRequest& req);

// True when SOURCE names one of the accepted forms.
bool is_secret_source(const std::string& source);

} // namespace tokenprov
