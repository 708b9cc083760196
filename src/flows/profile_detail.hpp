// SPDX-License-Identifier: Apache-2.0
// What profile.cpp (parsing) and profile_files.cpp (finding the files) share;
// private to src/flows.
#pragma once

#include <string>
#include <vector>

namespace tokenprov::profile_detail {

inline std::string join(const std::vector<std::string>& items, const char* sep = ", ") {
  std::string out;
  for (const auto& s : items) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

} // namespace tokenprov::profile_detail
