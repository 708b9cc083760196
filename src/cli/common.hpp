// SPDX-License-Identifier: Apache-2.0
// The CLI's shared options and output helpers. Commands only parse, call
// the library and print.
#pragma once

#include "tokenprov/error.hpp"
#include "tokenprov/profile.hpp"
#include "tokenprov/est.hpp"
#include "tokenprov/scep.hpp"
#include "tokenprov/secret.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

namespace tokenprov::cli {

struct Global {
  std::string module;
  std::string profile;
  std::string token;
  std::string pin_source;
  std::string so_pin_source;
  bool json = false;
  bool quiet = false;
};

struct Command {
  CLI::App* app;
  std::function<int()> run;
};

using Registry = std::vector<Command>;

// Each command file registers its subcommands.
void register_list(CLI::App& app, Global& g, Registry& r);
void register_init(CLI::App& app, Global& g, Registry& r);
void register_keys(CLI::App& app, Global& g, Registry& r);
void register_pickup(CLI::App& app, Global& g, Registry& r);
void register_backup(CLI::App& app, Global& g, Registry& r);
void register_provision(CLI::App& app, Global& g, Registry& r);
void register_status(CLI::App& app, Global& g, Registry& r);
void register_renew(CLI::App& app, Global& g, Registry& r);

// enroll --protocol est: the options cmd_pickup.cpp's enroll parsed, run by cmd_renew.cpp.
struct EnrollCliEst {
  std::string est_url, est_user, secret_source, ca_bundle, algorithm, label, id, subject, key;
  std::vector<std::string> sans;
  bool exportable = false, allow_expired = false;
  int wait = 0;
};
int run_enroll_est(const Global& g, const EnrollCliEst& e);

// Status lines go to stderr (never stdout, which carries data and JSON).
void status(const Global& g, const std::string& line);
// Prints a command's JSON result with "ok": true, or nothing without --json.
void print_json(const nlohmann::json& j);
int finish(const Global& g, nlohmann::json result, const std::string& human);

// SCEP options from the command line: interactive CA confirmation on a terminal.
scep::Options scep_options(const Global& g, const std::string& url, const std::string& fingerprint, int wait);
// EST options from the command line (progress lines to stderr).
est::Options est_options(const Global& g, const std::string& url, const std::string& ca_bundle, int wait);

// Secrets from their sources. The user PIN defaults to a prompt.
Secret user_pin(const Global& g, std::size_t min_length = 0);
Secret so_pin(const Global& g);
Secret secret_from(const std::string& source, const std::string& what, ExitCode code, bool confirm = false,
                   std::size_t min_length = 0);

// The --profile a command runs with, read once per process (g.profile must be set).
const Profile& profile(const Global& g);
// "sign,decrypt" given once or repeated -> {"sign", "decrypt"}.
std::vector<std::string> split_commas(const std::vector<std::string>& in);

// The module path a command uses: --module, a module the --token URI names
// (module-path, module-name), the profile's, $TOKENPROV_MODULE, p11-kit.
std::string module_path(const Global& g);

// The user PIN source: --pin-source, else the --token URI's pin-source.
std::string pin_source(const Global& g);

// For commands with --key: what a key URI says of its token, module and PIN
// source joins --token (g.token), so the key URI alone can name them.
void take_key_uri(Global& g, const std::string& key);

} // namespace tokenprov::cli
