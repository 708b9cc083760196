// SPDX-License-Identifier: Apache-2.0
// provision: the one-shot flow a profile describes: init, keys, certificates, backups.
#include "provision_options.hpp"

#include "tokenprov/provision_audit.hpp"

#include <memory>

namespace tokenprov::cli {

namespace {
std::string provision_human(const ProvisionResult& res) {
  std::string human = "Token '" + res.token.label + "' (serial " + res.token.serial + "): ";
  human += res.complete ? "provisioned." : "keys made; awaiting certificates (run again with --cert-dir).";
  for (auto& k : res.keys) {
    human += "\n  " + k.summary();
  }
  return human;
}
} // namespace

int run_provision(const Global& g, const ProvisionOptions& o) {
  Prepared p;
  prepare(g, o, p, true);
  p.req.token = g.token;
  p.req.subject = o.subject;
  p.req.sans = o.sans;
  p.req.user = o.user;
  p.req.token_label = o.label;
  p.req.progress = [&g](const std::string& line) { status(g, line); };
  auto res = provision_audited(p.req, secrets_of(p), o.audit_log);
  return finish(g, res.to_json(), provision_human(res));
}

Command setup_provision(CLI::App& app, Global& g) {
  auto o = std::make_shared<ProvisionOptions>();
  auto* cmd = app.add_subcommand("provision", "the one-shot flow a profile describes: init, keys, certificates, backups");
  cmd->add_option("--subject", o->subject, "subject DN, e.g. /CN=Alice/O=Example")->required();
  cmd->add_option("--san", o->sans, "subjectAltName TYPE:VALUE; repeatable");
  cmd->add_option("--user", o->user, "{user} in the profile's templates (default: from the CN)");
  cmd->add_option("--label", o->label, "label a blank token gets (default: the profile's template)");
  add_enrollment_options(cmd, *o);
  return {cmd, [&g, o] { return run_provision(g, *o); }};
}

} // namespace tokenprov::cli
