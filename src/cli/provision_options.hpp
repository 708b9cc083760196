// SPDX-License-Identifier: Apache-2.0
// The options provision and fleet share: enrollment, certificates, backups,
// audit; and the secrets a run reads once.
#pragma once

#include "common.hpp"

#include "tokenprov/provision.hpp"

#include <optional>

namespace tokenprov::cli {

struct ProvisionOpts {
  std::string subject, user, label, scep_url, challenge_source, ca_fingerprint, csr_dir, cert_dir, backup_dir,
      password_source, audit_log;
  std::string protocol, cmp_url, reference, secret_source, ca_bundle, cmp_request;
  std::vector<std::string> sans;
  bool allow_expired = false;
  bool check_signature = false;
  int wait = 0;
};

void add_enrollment_options(CLI::App* cmd, ProvisionOpts& o);

struct Prepared {
  ProvisionRequest req;
  Secret pin, so, challenge, password;
  std::optional<Error> so_problem; // the SO PIN source gave none: told only where one is needed
  bool need_so = false;
};

// Reads the secrets a run needs, once.
void prepare(const Global& g, const ProvisionOpts& o, Prepared& p, bool blank_possible);

ProvisionSecrets secrets_of(const Prepared& p);

} // namespace tokenprov::cli
