// SPDX-License-Identifier: Apache-2.0
// The commands, one file each (src/cli/cmd_<command>.cpp), in the shape of
// CLI11's examples/subcom_in_files: setup_<command>() adds the subcommand and
// declares its options into an options struct it owns (a shared_ptr the run
// holds), run_<command>() reads the secrets, calls the library and prints.
// main.cpp only wires them up and runs the one the command line chose.
#pragma once

#include "common.hpp"

#include "tokenprov/key_delete.hpp"

#include <optional>
#include <string>
#include <vector>

namespace tokenprov::cli {

int run_list(const Global& g);
Command setup_list(CLI::App& app, Global& g);

struct InitOptions {
  std::string label;
  bool force = false;
};
int run_init(const Global& g, const InitOptions& o);
Command setup_init(CLI::App& app, Global& g);

// pin change and pin unblock: one subcommand "pin" with two of its own.
struct PinOptions {
  std::string new_pin_source;
};
int run_pin_change(const Global& g, const PinOptions& o);
int run_pin_unblock(const Global& g, const PinOptions& o);
Command setup_pin(CLI::App& app, Global& g);

struct KeygenOptions {
  std::string algorithm, label, id;
  bool exportable = false;
  std::vector<std::string> usage;
};
int run_keygen(const Global& g, const KeygenOptions& o);
Command setup_keygen(CLI::App& app, Global& g);

struct CsrOptions {
  std::string key, subject, out = "-";
  std::vector<std::string> sans;
  bool pss = false, force = false;
};
int run_csr(const Global& g, const CsrOptions& o);
Command setup_csr(CLI::App& app, Global& g);

struct PickupOptions {
  std::string cert, ca_bundle;
  bool allow_expired = false;
};
int run_pickup(const Global& g, const PickupOptions& o);
Command setup_pickup(CLI::App& app, Global& g);

struct EnrollOptions {
  std::string protocol, scep_url, challenge_source, algorithm = "rsa2048", label, subject, ca_fingerprint, id;
  std::string cmp_url, reference, secret_source, ca_bundle, key, cmp_request;
  std::string est_url, est_user; // --protocol est
  std::vector<std::string> sans;
  bool exportable = false, allow_expired = false;
  int wait = 0;
};
int run_enroll(const Global& g, const EnrollOptions& o);
Command setup_enroll(CLI::App& app, Global& g);

struct BackupOptions {
  std::string key, out, compat, password_source;
  bool cert_only = false, force = false;
};
int run_backup(const Global& g, const BackupOptions& o);
Command setup_backup(CLI::App& app, Global& g);

struct RestoreOptions {
  std::string in, password_source, label, role;
  std::vector<std::string> usage;
  bool exportable = false;
};
int run_restore(const Global& g, const RestoreOptions& o);
Command setup_restore(CLI::App& app, Global& g);

// provision's options; fleet takes the enrollment, certificate, backup and
// audit ones (add_enrollment_options() in provision_options.cpp).
struct ProvisionOptions {
  std::string subject, user, label, scep_url, challenge_source, ca_fingerprint, csr_dir, cert_dir, backup_dir,
      password_source, audit_log;
  std::string protocol, cmp_url, reference, secret_source, ca_bundle, cmp_request, est_url, est_user;
  std::vector<std::string> sans;
  bool allow_expired = false;
  bool check_signature = false;
  int wait = 0;
  std::optional<double> renew_expiring; // --renew-expiring DAYS
  bool rekey = false;
};
int run_provision(const Global& g, const ProvisionOptions& o);
Command setup_provision(CLI::App& app, Global& g);

struct FleetOptions {
  std::string manifest, state;
  int jobs = 1;
  bool dry_run = false;
  ProvisionOptions provision; // enrollment, certificates, backups, audit log
};
int run_fleet(const Global& g, const FleetOptions& o);
Command setup_fleet(CLI::App& app, Global& g);

struct RevokeOptions {
  std::string key, reason, protocol, cmp_url, reference, secret_source, ca_bundle, ca_fingerprint;
};
int run_revoke(const Global& g, const RevokeOptions& o);
Command setup_revoke(CLI::App& app, Global& g);

using DeleteOptions = DeleteRequest; // the options are the request
int run_delete(const Global& g, const DeleteOptions& o);
Command setup_delete(CLI::App& app, Global& g);

struct StatusOptions {
  std::optional<double> expiring;
};
int run_status(const Global& g, const StatusOptions& o);
Command setup_status(CLI::App& app, Global& g);

struct RenewOptions {
  std::string key, protocol, est_url, ca_bundle, scep_url, ca_fingerprint, cmp_url;
  bool rekey = false;
  int wait = 0;
};
int run_renew(const Global& g, const RenewOptions& o);
Command setup_renew(CLI::App& app, Global& g);

} // namespace tokenprov::cli
