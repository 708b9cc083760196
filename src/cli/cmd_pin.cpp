// SPDX-License-Identifier: Apache-2.0
// pin change, pin unblock.
#include "commands.hpp"

#include "tokenprov/token_admin.hpp"

#include <memory>

namespace tokenprov::cli {

int run_pin_change(const Global& g, const PinOptions& o) {
  Secret old_pin = user_pin(g);
  Secret new_pin = secret_from(o.new_pin_source, "new user PIN", ExitCode::Pin, true);
  change_user_pin(module_path(g), g.token, old_pin, new_pin);
  return finish(g, {}, "The user PIN was changed.");
}

int run_pin_unblock(const Global& g, const PinOptions& o) {
  Secret so = so_pin(g);
  Secret new_pin = secret_from(o.new_pin_source, "new user PIN", ExitCode::Pin, true);
  unblock_user_pin(module_path(g), g.token, so, new_pin);
  return finish(g, {}, "A new user PIN was set.");
}

Command setup_pin(CLI::App& app, Global& g) {
  auto o = std::make_shared<PinOptions>();
  auto* pin = app.add_subcommand("pin", "change or unblock the user PIN");
  pin->require_subcommand(1, 1);
  auto* change = pin->add_subcommand("change", "change the user PIN (old from --pin-source, new from --new-pin-source)");
  change->add_option("--new-pin-source", o->new_pin_source, "the new user PIN: env:VAR, file:PATH, fd:N or prompt");
  auto* unblock = pin->add_subcommand("unblock", "set a new user PIN with the SO PIN (--so-pin-source)");
  unblock->add_option("--new-pin-source", o->new_pin_source, "the new user PIN: env:VAR, file:PATH, fd:N or prompt");
  return {pin, [&g, o, change] { return change->parsed() ? run_pin_change(g, *o) : run_pin_unblock(g, *o); }};
}

} // namespace tokenprov::cli
