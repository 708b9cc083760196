// SPDX-License-Identifier: Apache-2.0
#include "common.hpp"

#include "tokenprov/csr.hpp"
#include "tokenprov/fileio.hpp"
#include "tokenprov/keys.hpp"
#include "tokenprov/profile.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/uri.hpp"

#include <sys/stat.h>

namespace tokenprov::cli {

namespace {
struct KeygenOpts {
  std::string algorithm, label, id;
  bool exportable = false;
  std::vector<std::string> usage;
};
struct CsrOpts {
  std::string key, subject, out = "-";
  std::vector<std::string> sans;
  bool pss = false, force = false;
};

} // namespace

void register_keys(CLI::App& app, Global& g, Registry& r) {
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

  static CsrOpts co;
  auto* csr = app.add_subcommand("csr", "make a PKCS#10 request signed by a token key (PEM)");
  csr->add_option("--key", co.key, "the key: pkcs11: URI, id:HEX or label")->required();
  csr->add_option("--subject", co.subject, "subject DN, e.g. /CN=Alice/O=Example")->required();
  csr->add_option("--san", co.sans, "subjectAltName TYPE:VALUE (email, dns, uri, upn); repeatable");
  csr->add_option("--out", co.out, "output file; - or none is stdout");
  csr->add_flag("--pss", co.pss, "sign with RSA-PSS (SHA-256) instead of PKCS#1 v1.5");
  csr->add_flag("--force", co.force, "replace an existing output file");
  r.push_back({csr, [&g]() {
                 take_key_uri(g, co.key); // a key URI can name its token, module and PIN source
                 ossl::parse_dn(co.subject);
                 for (auto& s : co.sans) check_san(s);
                 Secret pin = user_pin(g);
                 auto ctx = open_token({module_path(g), g.token, TokenState::Initialized, false, &pin});
                 auto k = find_key(*ctx.session, co.key);
                 CsrRequest req{co.subject, co.sans, co.pss ? SigScheme::RsaPss : SigScheme::Default, nullptr};
                 if (co.pss && k.type != CKK_RSA) fail(ExitCode::Usage, "--pss needs an RSA key; '" + k.label + "' is not one.");
                 auto x = make_csr(*ctx.session, k, req);
                 std::string pem = ossl::to_pem(x.get());
                 if (g.json) {
                   if (co.out != "-") write_file_atomic(co.out, pem, 0644, co.force);
                   return finish(g, {{"csr", pem}, {"key", k.label}, {"out", co.out}}, "");
                 }
                 write_file_atomic(co.out, pem, 0644, co.force);
                 if (co.out != "-") status(g, "Wrote the request for key '" + k.label + "' to " + co.out + ".");
                 return 0;
               }});
}

} // namespace tokenprov::cli
