// SPDX-License-Identifier: Apache-2.0
// A SoftHSM2 sandbox per test: a temporary folder holding softhsm2.conf
// (from softhsm-config/softhsm2.conf.in) and its token folder; tokens are
// created with softhsm2-util, the independent writer. Everything is removed
// in the destructor. SOFTHSM2_CONF points at it while the fixture lives.
#pragma once

#include <string>
#include <vector>

namespace tokenprov::test {

inline constexpr const char* kSoftHsmModule = "/usr/lib/softhsm/libsofthsm2.so";
inline constexpr const char* kSoPin = "87654321";
inline constexpr const char* kUserPin = "123456";

class SoftHsm {
public:
  SoftHsm();
  ~SoftHsm();
  SoftHsm(const SoftHsm&) = delete;
  SoftHsm& operator=(const SoftHsm&) = delete;

  // Initializes the next free slot with softhsm2-util; returns the token's serial.
  std::string create_token(const std::string& label, const std::string& so_pin = kSoPin,
                           const std::string& pin = kUserPin);

  const std::string& dir() const { return dir_; }
  const std::string& conf() const { return conf_; }
  const std::string& token_dir() const { return token_dir_; }
  // Writes text to a file in the sandbox (mode 0600) and returns its path.
  std::string write_file(const std::string& name, const std::string& text) const;

private:
  std::string dir_, conf_, token_dir_;
  std::string old_conf_;
  bool had_old_conf_ = false;
};

// Runs a shell command line; returns the exit status, stdout in *out.
int run(const std::string& cmd, std::string* out = nullptr);
std::string shell_quote(const std::string& s);

} // namespace tokenprov::test
