// SPDX-License-Identifier: Apache-2.0
// pin change, pin unblock.
#include "common.hpp"

#include "tokenprov/token_admin.hpp"

namespace tokenprov::cli {

namespace {
struct PinOpts {
  std::string new_pin_source;
};
} // namespace

void register_pin(CLI::App& app, Global& g, Registry& r) {
  static PinOpts po;
  auto* pin = app.add_subcommand("pin", "change or unblock the user PIN");
  pin->require_subcommand(1, 1);
  auto* change = pin->add_subcommand("change", "change the user PIN (old from --pin-source, new from --new-pin-source)");
  change->add_option("--new-pin-source", po.new_pin_source, "the new user PIN: env:VAR, file:PATH, fd:N or prompt");
  auto* unblock = pin->add_subcommand("unblock", "set a new user PIN with the SO PIN (--so-pin-source)");
  unblock->add_option("--new-pin-source", po.new_pin_source, "the new user PIN: env:VAR, file:PATH, fd:N or prompt");
  r.push_back({change, [&g]() {
                 Secret old_pin = user_pin(g);
                 Secret new_pin = secret_from(po.new_pin_source, "new user PIN", ExitCode::Pin, true);
                 change_user_pin(module_path(g), g.token, old_pin, new_pin);
                 return finish(g, {}, "The user PIN was changed.");
               }});
  r.push_back({unblock, [&g]() {
                 Secret so = so_pin(g);
                 Secret new_pin = secret_from(po.new_pin_source, "new user PIN", ExitCode::Pin, true);
                 unblock_user_pin(module_path(g), g.token, so, new_pin);
                 return finish(g, {}, "A new user PIN was set.");
               }});
}

} // namespace tokenprov::cli
