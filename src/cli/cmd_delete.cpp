// SPDX-License-Identifier: Apache-2.0
#include "common.hpp"

#include "tokenprov/key_delete.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/uri.hpp"

namespace tokenprov::cli {

void register_delete(CLI::App& app, Global& g, Registry& r) {
  static DeleteRequest req;
  auto* del = app.add_subcommand("delete", "remove a key pair (and, when asked, its certificate) from the token");
  del->add_option("--key", req.key, "the key: pkcs11: URI, id:HEX or label")->required();
  del->add_flag("--force", req.force, "really erase it (without: nothing is removed, exit 8)");
  del->add_flag("--with-certificate", req.with_certificate, "remove the key's certificate too");
  r.push_back({del, [&g]() {
                 take_key_uri(g, req.key); // a key URI can name its token, module and PIN source
                 Secret pin = user_pin(g);
                 auto ctx = open_token({module_path(g), g.token, TokenState::Initialized, true, &pin});
                 auto res = delete_key(*ctx.session, req);
                 nlohmann::json certs = res.certificates;
                 nlohmann::json j = {{"deleted",
                                      {{"label", res.label},
                                       {"id", to_hex(res.id)},
                                       {"private_key", true},
                                       {"public_key", res.public_key},
                                       {"certificates", certs}}}};
                 std::string human = "Removed the key '" + res.label + "' (id " + to_hex(res.id) + ")" +
                                     (res.public_key ? " and its public key" : "") +
                                     (res.certificates.empty() ? std::string()
                                                               : ", with " + std::to_string(res.certificates.size()) +
                                                                     " certificate(s)") +
                                     " from token '" + ctx.token.label + "'.";
                 return finish(g, j, human);
               }});
}

} // namespace tokenprov::cli
