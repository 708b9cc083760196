// SPDX-License-Identifier: Apache-2.0
// init: SO PIN and label, then the user PIN.
#include "commands.hpp"

#include "tokenprov/profile.hpp"
#include "tokenprov/token_admin.hpp"
#include "tokenprov/uri.hpp"

#include <memory>

namespace tokenprov::cli {

int run_init(const Global& g, const InitOptions& o) {
  std::size_t min_pin = 0;
  if (!g.profile.empty()) min_pin = profile(g).user_pin.min_length;
  Secret so = so_pin(g);
  Secret pin = user_pin(g, min_pin);
  InitRequest req{module_path(g), g.token, o.label, o.force, min_pin};
  status(g, "Initializing the token as '" + o.label + "'...");
  auto t = init_token(req, so, pin);
  return finish(g, {{"token", {{"label", t.label}, {"serial", t.serial}, {"uri", token_uri(t)}}}},
                "Token '" + t.label + "' (serial " + t.serial + ") is initialized.");
}

Command setup_init(CLI::App& app, Global& g) {
  auto o = std::make_shared<InitOptions>();
  auto* cmd = app.add_subcommand("init", "initialize a token: SO PIN and label, then the user PIN");
  cmd->add_option("--label", o->label, "the token's label (at most 32 bytes)")->required();
  cmd->add_flag("--force", o->force, "re-initialize a token that is initialized already (ERASES it)");
  return {cmd, [&g, o] { return run_init(g, *o); }};
}

} // namespace tokenprov::cli
