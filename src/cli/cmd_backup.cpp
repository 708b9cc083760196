// SPDX-License-Identifier: Apache-2.0
// backup: a password-protected PKCS#12 of a key, its certificate and chain.
#include "commands.hpp"

#include "tokenprov/backup.hpp"
#include "tokenprov/profile.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/uri.hpp"

#include <algorithm>
#include <memory>

namespace tokenprov::cli {

namespace {
// The request and the password's minimum length (the profile's, else 8).
BackupRequest backup_request(const Global& g, const BackupOptions& o, std::size_t& min_pw) {
  BackupRequest req;
  req.key = o.key;
  req.out = o.out;
  req.cert_only = o.cert_only;
  req.force = o.force;
  min_pw = 8;
  std::string compat = o.compat;
  if (!g.profile.empty()) {
    const auto& p = profile(g);
    req.profile_forbids_export = !p.allow_export;
    req.profile_name = p.name;
    min_pw = p.backup_password_min;
    if (compat.empty()) compat = p.backup_compat;
  }
  req.compat = pkcs12::parse_compat(compat.empty() ? "modern" : compat);
  return req;
}

void password_notes(const Global& g, const BackupRequest& req, const Secret& pw) {
  if (req.compat == pkcs12::Compat::Legacy)
    status(g, "Note: the legacy format (3DES, SHA-1 MAC, 2048 iterations) is weak; use it only for "
              "devices that refuse the modern one, and keep the file safe.");
  if (std::any_of(pw.str().begin(), pw.str().end(), [](char ch) { return static_cast<unsigned char>(ch) > 0x7f; }))
    status(g, "Note: the password has non-ASCII characters; Java keytool refuses such PKCS#12 passwords.");
}
} // namespace

int run_backup(const Global& global, const BackupOptions& o) {
  Global g = with_key_uri(global, o.key); // a key URI can name its token, module and PIN source
  std::size_t min_pw = 8;
  BackupRequest req = backup_request(g, o, min_pw);
  Secret pin = user_pin(g);
  auto ctx = open_token({module_path(g), g.token, TokenState::Initialized, false, &pin});
  // Refuse before asking for a password when the policy forbids the export.
  auto k = backup_key(*ctx.session, req);
  Secret pw = secret_from(o.password_source, "backup password", ExitCode::BadInput, true, min_pw);
  password_notes(g, req, pw);
  status(g, "Writing the backup of '" + k.label + "' to " + req.out + " (" + pkcs12::compat_name(req.compat) + ")...");
  auto res = make_backup(*ctx.session, req, k, pw);
  nlohmann::json j = {{"file", res.path},
                      {"key", {{"label", res.key.label}, {"id", to_hex(res.key.id)}}},
                      {"with_key", res.with_key},
                      {"chain", res.chain},
                      {"compat", pkcs12::compat_name(req.compat)},
                      {"subject", res.leaf_subject}};
  return finish(g, j, "Wrote " + res.path + (res.with_key ? " (key, " : " (certificate only, ") + "certificate and " +
                          std::to_string(res.chain) + " CA certificate(s); mode 0600).");
}

Command setup_backup(CLI::App& app, Global& g) {
  auto o = std::make_shared<BackupOptions>();
  auto* cmd = app.add_subcommand("backup", "write a password-protected PKCS#12 backup of a key, its certificate and chain");
  cmd->add_option("--key", o->key, "the key: pkcs11: URI, id:HEX or label")->required();
  cmd->add_option("--out", o->out, "the PKCS#12 file to write (mode 0600)")->required();
  cmd->add_option("--compat", o->compat, "modern (AES-256, PBKDF2-SHA256; default) or legacy (3DES, SHA-1) for older devices");
  cmd->add_option("--password-source", o->password_source, "backup password: env:VAR, file:PATH, fd:N or prompt (asks twice)");
  cmd->add_flag("--cert-only", o->cert_only, "the certificates alone, without the private key");
  cmd->add_flag("--force", o->force, "replace an existing file");
  return {cmd, [&g, o] { return run_backup(g, *o); }};
}

} // namespace tokenprov::cli
