// SPDX-License-Identifier: Apache-2.0
#include "common.hpp"

#include "tokenprov/keys.hpp"
#include "tokenprov/profile.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/uri.hpp"

namespace tokenprov::cli {

namespace {
struct KeygenOpts {
  std::string algorithm, label, id;
  bool exportable = false;
  std::vector<std::string> usage;
};
} // namespace

void register_keygen(CLI::App& app, Global& g, Registry& r) {
  static KeygenOpts ko;
  auto* keygen = app.add_subcommand("keygen", "generate a key pair on the token with an explicit key policy");
  keygen->add_option("--algorithm", ko.algorithm, "rsa2048, rsa3072, rsa4096, ec-p256, ec-p384 or ed25519")->required();
  keygen->add_option("--label", ko.label, "label of both halves (CKA_LABEL)")->required();
  keygen->add_option("--id", ko.id, "CKA_ID in hex (default: SHA-1 of the public key)");
  keygen->add_flag("--exportable", ko.exportable, "allow the private key to be backed up (CKA_EXTRACTABLE)");
  keygen->add_option("--usage", ko.usage, "sign, decrypt, unwrap, derive (comma-separated)");
  r.push_back({keygen, [&g]() {
                 Algorithm a = parse_algorithm(ko.algorithm);
                 KeyPolicy pol;
                 pol.label = ko.label;
                 if (!ko.id.empty()) pol.id = [](const std::string& b) { return p11::Bytes(b.begin(), b.end()); }(from_hex(ko.id));
                 pol.exportable = ko.exportable;
                 if (!ko.usage.empty()) pol.usage = parse_usage(split_commas(ko.usage), a);
                 if (!g.profile.empty() && pol.exportable && !profile(g).allow_export)
                   fail(ExitCode::Policy, "The profile '" + g.profile + "' forbids exportable keys; nothing was generated.",
                        "Leave out --exportable, or use a profile that permits export.");
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
               }});
}

} // namespace tokenprov::cli
