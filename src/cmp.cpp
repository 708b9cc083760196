// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/cmp.hpp"

namespace tokenprov::cmp {

Issued enroll(const Options& opts, p11::Session&, const KeyRef&, const std::string&, const std::vector<std::string>&,
              const Secret&, const StoreFn&) {
  fail(ExitCode::Usage, "CMP enrollment at " + opts.url + " is not available in this build yet.");
}

} // namespace tokenprov::cmp
