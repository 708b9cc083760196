// SPDX-License-Identifier: Apache-2.0
// csr: a PKCS#10 request signed by a token key (PEM).
#include "commands.hpp"

#include "tokenprov/csr.hpp"
#include "tokenprov/fileio.hpp"
#include "tokenprov/keys.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/uri.hpp"

#include <memory>

namespace tokenprov::cli {

int run_csr(const Global& global, const CsrOptions& o) {
  Global g = with_key_uri(global, o.key); // a key URI can name its token, module and PIN source
  ossl::parse_dn(o.subject);
  for (auto& s : o.sans) check_san(s);
  Secret pin = user_pin(g);
  auto ctx = open_token({module_path(g), g.token, TokenState::Initialized, false, &pin});
  CsrRequest req{o.subject, o.sans, o.pss ? SigScheme::RsaPss : SigScheme::Default, nullptr};
  auto [k, x] = make_key_csr(*ctx.session, o.key, req);
  std::string pem = ossl::to_pem(x.get());
  if (g.json) {
    if (o.out != "-") write_file_atomic(o.out, pem, 0644, o.force);
    return finish(g, {{"csr", pem}, {"key", k.label}, {"out", o.out}}, "");
  }
  write_file_atomic(o.out, pem, 0644, o.force);
  if (o.out != "-") status(g, "Wrote the request for key '" + k.label + "' to " + o.out + ".");
  return 0;
}

Command setup_csr(CLI::App& app, Global& g) {
  auto o = std::make_shared<CsrOptions>();
  auto* cmd = app.add_subcommand("csr", "make a PKCS#10 request signed by a token key (PEM)");
  cmd->add_option("--key", o->key, "the key: pkcs11: URI, id:HEX or label")->required();
  cmd->add_option("--subject", o->subject, "subject DN, e.g. /CN=Alice/O=Example")->required();
  cmd->add_option("--san", o->sans, "subjectAltName TYPE:VALUE (email, dns, uri, upn); repeatable");
  cmd->add_option("--out", o->out, "output file; - or none is stdout");
  cmd->add_flag("--pss", o->pss, "sign with RSA-PSS (SHA-256) instead of PKCS#1 v1.5");
  cmd->add_flag("--force", o->force, "replace an existing output file");
  return {cmd, [&g, o] { return run_csr(g, *o); }};
}

} // namespace tokenprov::cli
