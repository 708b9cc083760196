// SPDX-License-Identifier: Apache-2.0
// keygen: a key pair on the token with an explicit key policy.
#include "commands.hpp"

#include "tokenprov/keys.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/uri.hpp"

#include <memory>

namespace tokenprov::cli {

int run_keygen(const Global& g, const KeygenOptions& o) {
  Algorithm a = parse_algorithm(o.algorithm);
  KeyPolicy pol;
  pol.label = o.label;
  if (!o.id.empty()) pol.id = [](const std::string& b) { return p11::Bytes(b.begin(), b.end()); }(from_hex(o.id));
  pol.exportable = o.exportable;
  if (!o.usage.empty()) pol.usage = parse_usage(split_commas(o.usage), a);
  check_export(g, pol.exportable, ExportAsk::Keygen);
  Secret pin = user_pin(g);
  auto ctx = open_token({module_path(g), g.token, TokenState::Initialized, true, &pin});
  status(g, "Generating a " + algorithm_name(a) + " key pair '" + pol.label + "' on token '" + ctx.token.label + "'...");
  auto k = generate_key(*ctx.session, a, pol);
  std::string idhex = to_hex(k.id);
  nlohmann::json j = {{"key",
                       {{"label", k.label},
                        {"id", idhex},
                        {"algorithm", algorithm_name(a)},
                        {"exportable", pol.exportable},
                        {"usage", usage_words(pol.usage ? pol.usage : default_usage(a))},
                        {"uri", object_uri(ctx.token, "private", k.label, std::string(k.id.begin(), k.id.end()))}}}};
  return finish(g, j, "Generated " + algorithm_name(a) + " key '" + k.label + "' with id " + idhex +
                          (pol.exportable ? " (exportable)." : " (never exportable)."));
}

Command setup_keygen(CLI::App& app, Global& g) {
  auto o = std::make_shared<KeygenOptions>();
  auto* cmd = app.add_subcommand("keygen", "generate a key pair on the token with an explicit key policy");
  cmd->add_option("--algorithm", o->algorithm, "rsa2048, rsa3072, rsa4096, ec-p256, ec-p384 or ed25519")->required();
  cmd->add_option("--label", o->label, "label of both halves (CKA_LABEL)")->required();
  cmd->add_option("--id", o->id, "CKA_ID in hex (default: SHA-1 of the public key)");
  cmd->add_flag("--exportable", o->exportable, "allow the private key to be backed up (CKA_EXTRACTABLE)");
  cmd->add_option("--usage", o->usage, "sign, decrypt, unwrap, derive (comma-separated)");
  return {cmd, [&g, o] { return run_keygen(g, *o); }};
}

} // namespace tokenprov::cli
