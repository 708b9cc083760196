// SPDX-License-Identifier: Apache-2.0
#include "provision_options.hpp"

#include "tokenprov/audit.hpp"

namespace tokenprov::cli {

void register_provision(CLI::App& app, Global& g, Registry& r) {
  static ProvisionOpts po;
  auto* prov = app.add_subcommand("provision", "the one-shot flow a profile describes: init, keys, certificates, backups");
  prov->add_option("--subject", po.subject, "subject DN, e.g. /CN=Alice/O=Example")->required();
  prov->add_option("--san", po.sans, "subjectAltName TYPE:VALUE; repeatable");
  prov->add_option("--user", po.user, "{user} in the profile's templates (default: from the CN)");
  prov->add_option("--label", po.label, "label a blank token gets (default: the profile's template)");
  add_enrollment_options(prov, po);
  r.push_back({prov, [&g]() {
                 Prepared p;
                 prepare(g, po, p, true);
                 p.req.token = g.token;
                 p.req.subject = po.subject;
                 p.req.sans = po.sans;
                 p.req.user = po.user;
                 p.req.token_label = po.label;
                 p.req.progress = [&g](const std::string& line) { status(g, line); };
                 audit_check(po.audit_log); // an unwritable log is found before the token is touched
                 try {
                   auto res = provision(p.req, secrets_of(p));
                   auto j = res.to_json();
                   audit_append(po.audit_log, {{"event", "provision"}, {"ok", true}, {"token", res.token.serial}, {"result", j}});
                   std::string human = "Token '" + res.token.label + "' (serial " + res.token.serial + "): ";
                   human += res.complete ? "provisioned." : "keys made; awaiting certificates (run again with --cert-dir).";
                   for (auto& k : res.keys) {
                     human += "\n  " + k.label + " [" + k.algorithm + ", id " + k.id_hex + "]: key " + k.key_state +
                              ", certificate " + k.cert_state + (k.cert_serial.empty() ? "" : " (serial " + k.cert_serial + ")") +
                              ", backup " + k.backup_state + (k.backup_file.empty() ? "" : " (" + k.backup_file + ")") +
                              (k.signature_check == "not-requested" ? "" : ", signature check " + k.signature_check);
                   }
                   return finish(g, j, human);
                 } catch (const Error& e) {
                   audit_append(po.audit_log, {{"event", "provision"}, {"ok", false}, {"error", {{"code", static_cast<int>(e.code())}, {"message", e.what()}}}});
                   throw;
                 }
               }});
}

} // namespace tokenprov::cli
