// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/export_policy.hpp"

#include "tokenprov/error.hpp"

namespace tokenprov {

void check_export_allowed(const std::string& profile, bool allow_export, bool exportable, ExportAsk ask) {
  if (profile.empty() || !exportable || allow_export) return;
  std::string refused = "The profile '" + profile + "' forbids exportable keys";
  switch (ask) {
  case ExportAsk::Keygen:
    fail(ExitCode::Policy, refused + "; nothing was generated.", "Leave out --exportable, or use a profile that permits export.");
  case ExportAsk::Enroll:
    fail(ExitCode::Policy, refused + "; nothing was generated.");
  case ExportAsk::Restore:
    fail(ExitCode::Policy, refused + ".");
  }
}

} // namespace tokenprov
