// SPDX-License-Identifier: Apache-2.0
// The CLI's shared options and output helpers. Commands only parse, call
// the library and print (commands.hpp).
#pragma once

#include "tokenprov/cmp.hpp"
#include "tokenprov/error.hpp"
#include "tokenprov/profile.hpp"
#include "tokenprov/est.hpp"
#include "tokenprov/export_policy.hpp"
#include "tokenprov/pickup.hpp"
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

// A subcommand and the run bound to its options (commands.hpp): main runs the
// one the command line chose and turns its Error into the exit code.
struct Command {
  CLI::App* app;
  std::function<int()> run;
};

// Status lines go to stderr (never stdout, which carries data and JSON).
void status(const Global& g, const std::string& line);
// Prints a command's JSON result with "ok": true, or nothing without --json.
void print_json(const nlohmann::json& j);
int finish(const Global& g, nlohmann::json result, const std::string& human);

// SCEP options from the command line: interactive CA confirmation on a terminal.
scep::Options scep_options(const Global& g, const std::string& url, const std::string& fingerprint, int wait);
// EST options from the command line (progress lines to stderr).
est::Options est_options(const Global& g, const std::string& url, const std::string& ca_bundle, int wait);

// CMP options from the command line (REQUEST: "", "ir" or "p10cr").
cmp::Options cmp_options(const Global& g, const std::string& url, const std::string& reference, const std::string& fp,
                         const std::string& ca_bundle, int wait, const std::string& request);

// pickup's result as JSON and as a sentence (enroll prints them too).
nlohmann::json pickup_json(const PickupResult& r);
std::string pickup_human(const PickupResult& r);

// Secrets from their sources. The user PIN defaults to a prompt.
Secret user_pin(const Global& g, std::size_t min_length = 0);
Secret so_pin(const Global& g);
Secret secret_from(const std::string& source, const std::string& what, ExitCode code, bool confirm = false,
                   std::size_t min_length = 0);

// The --profile a command runs with, read once per process (g.profile must be set).
const Profile& profile(const Global& g);
// "sign,decrypt" given once or repeated -> {"sign", "decrypt"}.
std::vector<std::string> split_commas(const std::vector<std::string>& in);

// Refuses (exit 4) an exportable key the --profile forbids (check_export_allowed());
// reads the profile only for an exportable key.
void check_export(const Global& g, bool exportable, ExportAsk ask);

// The module path a command uses: --module, a module the --token URI names
// (module-path, module-name), the profile's, $TOKENPROV_MODULE, p11-kit.
std::string module_path(const Global& g);

// The user PIN source: --pin-source, else the --token URI's pin-source.
std::string pin_source(const Global& g);

// For commands with --key: what a key URI says of its token, module and PIN
// source joins --token (g.token), so the key URI alone can name them.
Global with_key_uri(const Global& g, const std::string& key);

} // namespace tokenprov::cli
