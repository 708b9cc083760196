// SPDX-License-Identifier: Apache-2.0
#include "common.hpp"

#include "tokenprov/fileio.hpp"

#include <algorithm>

#include "tokenprov/backup.hpp"
#include "tokenprov/profile.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/uri.hpp"

namespace tokenprov::cli {

namespace {
struct BackupOpts {
  std::string key, out, compat, password_source;
  bool cert_only = false, force = false;
};
} // namespace

void register_backup(CLI::App& app, Global& g, Registry& r) {
  static BackupOpts bo;
  auto* backup = app.add_subcommand("backup", "write a password-protected PKCS#12 backup of a key, its certificate and chain");
  backup->add_option("--key", bo.key, "the key: pkcs11: URI, id:HEX or label")->required();
  backup->add_option("--out", bo.out, "the PKCS#12 file to write (mode 0600)")->required();
  backup->add_option("--compat", bo.compat, "modern (AES-256, PBKDF2-SHA256; default) or legacy (3DES, SHA-1) for older devices");
  backup->add_option("--password-source", bo.password_source, "backup password: env:VAR, file:PATH, fd:N or prompt (asks twice)");
  backup->add_flag("--cert-only", bo.cert_only, "the certificates alone, without the private key");
  backup->add_flag("--force", bo.force, "replace an existing file");
  r.push_back({backup, [&g]() {
                 take_key_uri(g, bo.key); // a key URI can name its token, module and PIN source
                 BackupRequest req;
                 req.key = bo.key;
                 req.out = bo.out;
                 req.cert_only = bo.cert_only;
                 req.force = bo.force;
                 std::size_t min_pw = 8;
                 std::string compat = bo.compat;
                 if (!g.profile.empty()) {
                   const auto& p = profile(g);
                   req.profile_forbids_export = !p.allow_export;
                   req.profile_name = p.name;
                   min_pw = p.backup_password_min;
                   if (compat.empty()) compat = p.backup_compat;
                 }
                 req.compat = pkcs12::parse_compat(compat.empty() ? "modern" : compat);
                 Secret pin = user_pin(g);
                 auto ctx = open_token({module_path(g), g.token, TokenState::Initialized, false, &pin});
                 // Refuse before asking for a password when the policy forbids the export.
                 auto k = backup_key(*ctx.session, req);
                 Secret pw = secret_from(bo.password_source, "backup password", ExitCode::BadInput, true, min_pw);
                 if (req.compat == pkcs12::Compat::Legacy)
                   status(g, "Note: the legacy format (3DES, SHA-1 MAC, 2048 iterations) is weak; use it only for "
                             "devices that refuse the modern one, and keep the file safe.");
                 if (std::any_of(pw.str().begin(), pw.str().end(), [](char ch) { return static_cast<unsigned char>(ch) > 0x7f; }))
                   status(g, "Note: the password has non-ASCII characters; Java keytool refuses such PKCS#12 passwords.");
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
               }});
}

} // namespace tokenprov::cli
