// SPDX-License-Identifier: Apache-2.0
// delete: a key pair (and, when asked, its certificate) removed from the token.
#include "commands.hpp"

#include "tokenprov/key_delete.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/uri.hpp"

#include <memory>

namespace tokenprov::cli {

int run_delete(const Global& global, const DeleteOptions& o) {
  Global g = with_key_uri(global, o.key); // a key URI can name its token, module and PIN source
  Secret pin = user_pin(g);
  auto ctx = open_token({module_path(g), g.token, TokenState::Initialized, true, &pin});
  auto res = delete_key(*ctx.session, o);
  nlohmann::json certs = res.certificates;
  nlohmann::json j = {{"deleted",
                       {{"label", res.label},
                        {"id", to_hex(res.id)},
                        {"private_key", true},
                        {"public_key", res.public_key},
                        {"certificates", certs}}}};
  std::string human =
      "Removed the key '" + res.label + "' (id " + to_hex(res.id) + ")" + (res.public_key ? " and its public key" : "") +
      (res.certificates.empty() ? std::string() : ", with " + std::to_string(res.certificates.size()) + " certificate(s)") +
      " from token '" + ctx.token.label + "'.";
  return finish(g, j, human);
}

Command setup_delete(CLI::App& app, Global& g) {
  auto o = std::make_shared<DeleteOptions>();
  auto* cmd = app.add_subcommand("delete", "remove a key pair (and, when asked, its certificate) from the token");
  cmd->add_option("--key", o->key, "the key: pkcs11: URI, id:HEX or label")->required();
  cmd->add_flag("--force", o->force, "really erase it (without: nothing is removed, exit 8)");
  cmd->add_flag("--with-certificate", o->with_certificate, "remove the key's certificate too");
  return {cmd, [&g, o] { return run_delete(g, *o); }};
}

} // namespace tokenprov::cli
