// SPDX-License-Identifier: Apache-2.0
// tokenprov: provisions PKCS#11 smart cards and USB tokens.
// main only wires the commands up and maps failures to exit codes.
#include "commands.hpp"

#include "tokenprov/interrupt.hpp"
#include "tokenprov/p11/error.hpp"
#include "tokenprov/token_lock.hpp"
#include "tokenprov/p11/timing.hpp"
#include "tokenprov/utf8.hpp"

#include <openssl/crypto.h>

#include <iostream>

using namespace tokenprov;
using namespace tokenprov::cli;

namespace {

int report(const Global& g, ExitCode code, const std::string& message, const std::string& hint) {
  // A label or path in the message may hold bytes that are not UTF-8: shown as \xNN.
  std::cerr << "tokenprov: " << escape_invalid_utf8(message) << "\n";
  if (!hint.empty()) std::cerr << "  " << escape_invalid_utf8(hint) << "\n";
  if (g.json) {
    nlohmann::json err = {{"code", static_cast<int>(code)}, {"message", message}};
    if (!hint.empty()) err["hint"] = hint;
    print_json({{"ok", false}, {"error", err}});
  }
  return static_cast<int>(code);
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"tokenprov: provision PKCS#11 smart cards and USB tokens: keys generated on the token, "
               "certificates picked up from a file or over SCEP, PKCS#12 backups where the key policy permits."};
  app.set_version_flag("--version", std::string("tokenprov ") + TOKENPROV_VERSION);
  app.require_subcommand(1, 1);
  app.fallthrough();

  Global g;
  app.add_option("--module", g.module, "PKCS#11 module (default: the profile's, $TOKENPROV_MODULE, p11-kit proxy)");
  app.add_option("--profile", g.profile, "token profile: a name in tokens/ or a path to a .toml file");
  app.add_option("--token", g.token, "which token: pkcs11: URI, serial:HEX or a label");
  app.add_option("--pin-source", g.pin_source, "user PIN from env:VAR, file:PATH, fd:N or prompt");
  app.add_option("--so-pin-source", g.so_pin_source, "SO PIN from env:VAR, file:PATH, fd:N or prompt");
  app.add_flag("--json", g.json, "print one JSON document on stdout; messages stay on stderr");
  app.add_flag("-q,--quiet", g.quiet, "no progress lines on stderr");
  int lock_wait = 300;
  app.add_option("--lock-wait", lock_wait,
                 "seconds to wait for a token another tokenprov run is working on (default 300; 0: refuse at once)")
      ->check(CLI::Range(0, 86400));
  bool timings = false;
  app.add_flag("--timings", timings, "at exit, print the wall time and the time spent in PKCS#11 calls to stderr");

  // In the order --help lists them. Subcommands fall through to the global options (app.fallthrough()).
  const Command commands[] = {setup_list(app, g),     setup_init(app, g),      setup_pin(app, g),
                              setup_keygen(app, g),   setup_csr(app, g),       setup_pickup(app, g),
                              setup_enroll(app, g),   setup_backup(app, g),    setup_restore(app, g),
                              setup_provision(app, g), setup_fleet(app, g),    setup_revoke(app, g),
                              setup_delete(app, g),   setup_status(app, g),    setup_renew(app, g)};

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return static_cast<int>(ExitCode::Usage);
  }

  // SIGINT, SIGTERM, SIGHUP: a flag the run checks; it rolls back and exits with a contract code.
  install_interrupt_handlers();
  lock_settings().wait_seconds = lock_wait;
  lock_settings().on_wait = [&g](const std::string& line) { status(g, line); };
  if (timings) p11::timing::enable();
  p11::timing::PrintAtExit print_timings; // after the command's own messages
  for (auto& c : commands) {
    if (!c.app->parsed()) continue;
    try {
      return c.run();
    } catch (const Error& e) {
      return report(g, e.code(), e.what(), e.hint());
    } catch (const std::bad_alloc&) {
      return report(g, ExitCode::Internal, "Out of memory.", "");
    } catch (const std::exception& e) {
      return report(g, ExitCode::Internal, std::string("Internal error: ") + e.what(),
                    "This is a bug in tokenprov; please report it with the command you ran.");
    }
  }
  return report(g, ExitCode::Usage, "No command was given.", "See 'tokenprov --help'.");
}
