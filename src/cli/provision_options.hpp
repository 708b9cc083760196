// SPDX-License-Identifier: Apache-2.0
// What provision and fleet share: the enrollment, certificate, backup and
// audit options, and the secrets a run reads once.
#pragma once

#include "commands.hpp"

#include "tokenprov/provision.hpp"

#include <optional>

namespace tokenprov::cli {

void add_enrollment_options(CLI::App* cmd, ProvisionOptions& o);

struct Prepared {
  ProvisionRequest req;
  Secret pin, so, challenge, password;
  std::optional<Error> so_problem; // the SO PIN source gave none: told only where one is needed
  bool need_so = false;
};

// Reads the secrets a run needs, once.
void prepare(const Global& g, const ProvisionOptions& o, Prepared& p, bool blank_possible);

ProvisionSecrets secrets_of(const Prepared& p);

} // namespace tokenprov::cli
