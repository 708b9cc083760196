// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/error.hpp"

namespace tokenprov {

const char* exit_code_name(ExitCode c) noexcept {
  switch (c) {
  case ExitCode::Ok: return "ok";
  case ExitCode::Internal: return "internal";
  case ExitCode::Usage: return "usage";
  case ExitCode::Pin: return "pin";
  case ExitCode::Policy: return "policy";
  case ExitCode::BadInput: return "bad-input";
  case ExitCode::Token: return "token";
  case ExitCode::Ca: return "ca";
  case ExitCode::Exists: return "exists";
  case ExitCode::Expiring: return "expiring";
  case ExitCode::FleetFailed: return "fleet-failed";
  }
  return "unknown";
}

} // namespace tokenprov
