// SPDX-License-Identifier: Apache-2.0
#include "common.hpp"

#include "tokenprov/profile.hpp"
#include "tokenprov/token_admin.hpp"
#include "tokenprov/uri.hpp"

namespace tokenprov::cli {

namespace {
struct InitOpts {
  std::string label;
  bool force = false;
};
} // namespace

void register_init(CLI::App& app, Global& g, Registry& r) {
  static InitOpts io;
  auto* init = app.add_subcommand("init", "initialize a token: SO PIN and label, then the user PIN");
  init->add_option("--label", io.label, "the token's label (at most 32 bytes)")->required();
  init->add_flag("--force", io.force, "re-initialize a token that is initialized already (ERASES it)");
  r.push_back({init, [&g]() {
                 std::size_t min_pin = 0;
                 if (!g.profile.empty()) min_pin = profile(g).user_pin.min_length;
                 Secret so = so_pin(g);
                 Secret pin = user_pin(g, min_pin);
                 InitRequest req{module_path(g), g.token, io.label, io.force, min_pin};
                 status(g, "Initializing the token as '" + io.label + "'...");
                 auto t = init_token(req, so, pin);
                 return finish(g, {{"token", {{"label", t.label}, {"serial", t.serial}, {"uri", token_uri(t)}}}},
                               "Token '" + t.label + "' (serial " + t.serial + ") is initialized.");
               }});
}

} // namespace tokenprov::cli
