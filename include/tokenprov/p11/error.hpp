// SPDX-License-Identifier: Apache-2.0
// CK_RV -> typed exception, with the constant's name and a hint a person can act on.
#pragma once

#include "tokenprov/error.hpp"
#include "tokenprov/p11/pkcs11.hpp"

#include <string>

namespace tokenprov::p11 {

// "CKR_PIN_INCORRECT" for 0xa0; "CKR_0x..." for an unknown value.
std::string rv_name(CK_RV rv);

// The exit code the contract assigns to a return value.
ExitCode rv_exit_code(CK_RV rv);

class P11Error : public Error {
public:
  P11Error(CK_RV rv, std::string function, const std::string& message, std::string hint)
      : Error(rv_exit_code(rv), message, std::move(hint)), rv_(rv), function_(std::move(function)) {}
  CK_RV rv() const noexcept { return rv_; }
  const std::string& function() const noexcept { return function_; }

private:
  CK_RV rv_;
  std::string function_;
};

// Throws P11Error unless rv == CKR_OK. `what` says what we were doing
// ("generating the key pair 'alice'"), to head the message.
void check(CK_RV rv, const char* function, const std::string& what = {});

} // namespace tokenprov::p11
