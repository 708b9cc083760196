// SPDX-License-Identifier: Apache-2.0
#include "common.hpp"

#include "tokenprov/csr.hpp"
#include "tokenprov/fileio.hpp"
#include "tokenprov/keys.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/uri.hpp"

namespace tokenprov::cli {

namespace {
struct CsrOpts {
  std::string key, subject, out = "-";
  std::vector<std::string> sans;
  bool pss = false, force = false;
};

} // namespace

void register_csr(CLI::App& app, Global& g, Registry& r) {
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
