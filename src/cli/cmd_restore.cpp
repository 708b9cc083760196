// SPDX-License-Identifier: Apache-2.0
// restore: a PKCS#12 backup's key, certificate and chain put on the token.
#include "commands.hpp"

#include "tokenprov/backup.hpp"
#include "tokenprov/fileio.hpp"
#include "tokenprov/profile.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/uri.hpp"

#include <memory>

namespace tokenprov::cli {

namespace {
// The restored key's policy: --usage and --exportable, else the profile key
// --role names, else the defaults of the backup's key type.
void restore_policy(const Global& g, const RestoreOptions& o, RestoreRequest& req) {
  req.exportable = o.exportable;
  if (!o.role.empty()) {
    if (g.profile.empty()) fail(ExitCode::Usage, "--role names a key of a profile; give the profile with --profile.");
    const KeySpec* spec = profile(g).find_key(o.role);
    if (!spec) fail(ExitCode::Usage, "The profile '" + g.profile + "' has no key with the role '" + o.role + "'.");
    req.usage = usage_from_words(spec->usage);
    req.exportable = req.exportable || spec->exportable;
  }
  if (!o.usage.empty()) req.usage = usage_from_words(split_commas(o.usage));
  check_export(g, req.exportable, ExportAsk::Restore);
}
} // namespace

int run_restore(const Global& g, const RestoreOptions& o) {
  RestoreRequest req;
  req.in = o.in;
  req.label = o.label;
  restore_policy(g, o, req);
  auto data = read_input_file(o.in, input::pkcs12); // a missing file fails before any prompt
  (void)data;
  Secret pin = user_pin(g);
  Secret pw = secret_from(o.password_source, "backup password", ExitCode::BadInput);
  auto ctx = open_token({module_path(g), g.token, TokenState::Initialized, true, &pin});
  auto res = restore_backup(*ctx.session, req, pw);
  nlohmann::json j = {{"key",
                       {{"label", res.key.label},
                        {"id", to_hex(res.key.id)},
                        {"usage", usage_words(res.usage)},
                        {"exportable", req.exportable}}},
                      {"certificates_written", res.certs_written},
                      {"resumed", res.resumed},
                      {"subject", res.leaf_subject}};
  return finish(g, j,
                std::string(res.resumed ? "Completed the interrupted restore: " : "") + "Restored key '" + res.key.label +
                    "' with " + std::to_string(res.certs_written) + " certificate(s) to token '" + ctx.token.label + "'.");
}

Command setup_restore(CLI::App& app, Global& g) {
  auto o = std::make_shared<RestoreOptions>();
  auto* cmd = app.add_subcommand("restore", "put a PKCS#12 backup's key, certificate and chain on the token");
  cmd->add_option("--in", o->in, "the PKCS#12 file")->required();
  cmd->add_option("--password-source", o->password_source, "its password: env:VAR, file:PATH, fd:N or prompt");
  cmd->add_option("--label", o->label, "label for the key and certificate (default: the file's friendly name)");
  cmd->add_flag("--exportable", o->exportable, "let the restored key be backed up again");
  cmd->add_option("--usage", o->usage,
                  "sign, decrypt, unwrap, derive (comma-separated; default: the profile key's, else sign,decrypt for RSA "
                  "and sign for EC)");
  cmd->add_option("--role", o->role, "take usage and exportability from this key of the --profile");
  return {cmd, [&g, o] { return run_restore(g, *o); }};
}

} // namespace tokenprov::cli
