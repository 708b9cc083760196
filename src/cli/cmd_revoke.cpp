// SPDX-License-Identifier: Apache-2.0
// revoke --key SEL [--reason R]: CMP rr for the key's certificate (issue 16).
#include "commands.hpp"

#include "tokenprov/cmp.hpp"
#include "tokenprov/enroll.hpp"
#include "tokenprov/pickup.hpp"
#include "tokenprov/revoke.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/uri.hpp"

#include <memory>

namespace tokenprov::cli {

int run_revoke(const Global& global, const RevokeOptions& o) {
  if (!o.protocol.empty() && parse_protocol(o.protocol) != EnrollProtocol::Cmp)
    fail(ExitCode::Usage, "revoke speaks CMP only (--protocol cmp).");
  int reason = cmp::parse_revocation_reason(o.reason);
  Global g = with_key_uri(global, o.key);
  auto opts = cmp_options(g, o.cmp_url, o.reference, scep::normalize_fingerprint(o.ca_fingerprint), o.ca_bundle, 0, "");
  if (opts.ca_bundle.empty() && opts.ca_fingerprint.empty())
    fail(ExitCode::Usage, "revoke needs the CA's trust anchor: --ca-bundle FILE or --ca-fingerprint SHA256HEX.");
  Secret pin = user_pin(g);
  Secret secret;
  if (!o.secret_source.empty()) secret = secret_from(o.secret_source, "CA secret (PIN)", ExitCode::Ca);
  auto ctx = open_token({module_path(g), g.token, TokenState::Initialized, true, &pin});
  auto [k, leaf] = revoke_certificate(*ctx.session, o.key, opts, reason, o.secret_source.empty() ? nullptr : &secret);
  nlohmann::json j{{"key", {{"label", k.label}, {"id", to_hex(k.id)}}},
                   {"revoked",
                    {{"subject", ossl::name_oneline(X509_get_subject_name(leaf.get()))},
                     {"serial", ossl::serial_hex(leaf.get())},
                     {"issuer", ossl::name_oneline(X509_get_issuer_name(leaf.get()))}}},
                   {"reason", reason}};
  return finish(g, j,
                "The CA at " + o.cmp_url + " accepted the revocation of the certificate of '" + k.label + "' (serial " +
                    ossl::serial_hex(leaf.get()) + "). The token was not changed.");
}

Command setup_revoke(CLI::App& app, Global& g) {
  auto o = std::make_shared<RevokeOptions>();
  auto* cmd = app.add_subcommand("revoke", "ask the CA to revoke a key's certificate (CMP rr); the token is not changed");
  cmd->add_option("--key", o->key, "the key whose certificate is revoked (URI, label or id:HEX)")->required();
  cmd->add_option("--reason", o->reason, "CRL reason: keyCompromise, superseded, cessationOfOperation, ... or its number");
  cmd->add_option("--cmp-url", o->cmp_url, "the CA's CMP endpoint")->required();
  cmd->add_option("--reference", o->reference, "with --secret-source: protect the request with the CA's reference and secret");
  cmd->add_option("--secret-source", o->secret_source,
                  "the CA's secret: env:VAR, file:PATH, fd:N or prompt (default: sign with the key)");
  cmd->add_option("--ca-bundle", o->ca_bundle, "trusted CA certificates: the CA's answer must verify");
  cmd->add_option("--ca-fingerprint", o->ca_fingerprint, "SHA-256 fingerprint of the CA certificate (hex)");
  cmd->add_option("--protocol", o->protocol, "cmp (the only protocol revoke speaks)");
  return {cmd, [&g, o] { return run_revoke(g, *o); }};
}

} // namespace tokenprov::cli
