// SPDX-License-Identifier: Apache-2.0
#include "common.hpp"

#include "tokenprov/audit.hpp"
#include "tokenprov/fleet.hpp"
#include "tokenprov/ossl.hpp"
#include "tokenprov/provision.hpp"
#include "tokenprov/uri_resolve.hpp"

#include <unistd.h>

#include <optional>

namespace tokenprov::cli {

namespace {
struct ProvisionOpts {
  std::string subject, user, label, scep_url, challenge_source, ca_fingerprint, csr_dir, cert_dir, backup_dir,
      password_source, audit_log;
  std::string protocol, cmp_url, reference, secret_source, ca_bundle, cmp_request;
  std::vector<std::string> sans;
  bool allow_expired = false;
  bool check_signature = false;
  int wait = 0;
};
struct FleetOpts {
  std::string manifest, state;
  int jobs = 1;
  bool dry_run = false;
};

void add_enrollment_options(CLI::App* cmd, ProvisionOpts& o) {
  cmd->add_option("--scep-url", o.scep_url, "enroll over SCEP at this URL (default: the profile's)");
  cmd->add_option("--challenge-source", o.challenge_source, "the SCEP challenge: env:VAR, file:PATH, fd:N or prompt");
  cmd->add_option("--protocol", o.protocol, "scep or cmp (default: the profile's, else scep)");
  cmd->add_option("--cmp-url", o.cmp_url, "enroll over CMP at this URL (default: the profile's [cmp] url)");
  cmd->add_option("--reference", o.reference, "the CMP reference number (senderKID; not secret)");
  cmd->add_option("--secret-source", o.secret_source, "the CMP shared secret (PIN): env:VAR, file:PATH, fd:N or prompt");
  cmd->add_option("--cmp-request", o.cmp_request, "ir (RSA keys) or p10cr; default: ir for RSA, p10cr for others");
  cmd->add_option("--ca-bundle", o.ca_bundle, "trusted CA certificates (CMP)");
  cmd->add_option("--ca-fingerprint", o.ca_fingerprint, "SHA-256 fingerprint of the CA certificate (hex)");
  cmd->add_option("--wait", o.wait, "seconds to keep polling a pending SCEP or CMP request");
  cmd->add_option("--csr-dir", o.csr_dir, "write CSRs here and stop awaiting the certificates");
  cmd->add_option("--cert-dir", o.cert_dir, "pick the certificates up from files in this folder");
  cmd->add_option("--backup-dir", o.backup_dir, "write PKCS#12 backups of keys the profile marks for backup here");
  cmd->add_option("--password-source", o.password_source, "backup password: env:VAR, file:PATH, fd:N or prompt");
  cmd->add_option("--audit-log", o.audit_log, "append a JSON line per token to this file");
  cmd->add_flag("--allow-expired", o.allow_expired, "store an expired or not yet valid certificate");
  cmd->add_flag("--check-signature", o.check_signature,
                "once a key has its certificate, sign random bytes on the token and verify them with the certificate");
}

struct Prepared {
  ProvisionRequest req;
  Secret pin, so, challenge, password;
  std::optional<Error> so_problem; // the SO PIN source gave none: told only where one is needed
  bool need_so = false;
};

// Reads the secrets a run needs, once.
void prepare(const Global& g, const ProvisionOpts& o, Prepared& p, bool blank_possible) {
  if (g.profile.empty()) fail(ExitCode::Usage, "provision needs --profile.");
  p.req.profile = profile(g);
  p.req.module_path = resolve_module_for(g.module, p.req.profile.module, g.token);
  std::string proto = o.protocol.empty() ? p.req.profile.protocol : o.protocol;
  p.req.protocol = parse_protocol(proto.empty() ? "scep" : proto);
  if (p.req.protocol == EnrollProtocol::Scep) {
    p.req.scep = scep_options(g, o.scep_url.empty() ? p.req.profile.scep_url : o.scep_url,
                              scep::normalize_fingerprint(o.ca_fingerprint.empty() ? p.req.profile.ca_fingerprint : o.ca_fingerprint),
                              o.wait);
  } else if (p.req.protocol == EnrollProtocol::Cmp) {
    p.req.cmp = cmp_options(g, o.cmp_url.empty() ? p.req.profile.cmp_url : o.cmp_url, o.reference,
                            scep::normalize_fingerprint(o.ca_fingerprint.empty() ? p.req.profile.cmp_ca_fingerprint
                                                                                 : o.ca_fingerprint),
                            o.ca_bundle, o.wait, o.cmp_request);
    if (!p.req.cmp.url.empty() && p.req.cmp.ca_bundle.empty() && p.req.cmp.ca_fingerprint.empty())
      fail(ExitCode::Usage, "CMP enrollment needs the CA's trust anchor: --ca-bundle FILE or --ca-fingerprint SHA256HEX.");
  }
  p.req.csr_dir = o.csr_dir;
  p.req.cert_dir = o.cert_dir;
  p.req.backup_dir = o.backup_dir;
  p.req.allow_expired = o.allow_expired;
  p.req.check_signature = o.check_signature;
  p.pin = user_pin(g, p.req.profile.user_pin.min_length);
  if (blank_possible && !g.so_pin_source.empty()) {
    try {
      p.so = so_pin(g);
    } catch (const Error& e) {
      if (e.code() != ExitCode::Pin) throw;
      p.so_problem.emplace(e); // e.g. an empty value: a token that needs no SO PIN is not stopped by it
    }
  }
  if (p.req.protocol == EnrollProtocol::Scep && !p.req.scep.url.empty() && !o.challenge_source.empty())
    p.challenge = secret_from(o.challenge_source, "SCEP challenge", ExitCode::Ca);
  if (p.req.protocol == EnrollProtocol::Cmp && !p.req.cmp.url.empty() && !o.secret_source.empty())
    p.challenge = secret_from(o.secret_source, "CA secret (PIN)", ExitCode::Ca);
  if (!o.backup_dir.empty())
    p.password = secret_from(o.password_source, "backup password", ExitCode::BadInput, true, p.req.profile.backup_password_min);
}

ProvisionSecrets secrets_of(const Prepared& p) {
  ProvisionSecrets s;
  s.user_pin = &p.pin;
  s.so_pin = p.so.empty() ? nullptr : &p.so;
  s.so_pin_problem = p.so_problem ? &*p.so_problem : nullptr;
  s.challenge = p.challenge.empty() ? nullptr : &p.challenge;
  s.backup_password = p.password.empty() ? nullptr : &p.password;
  return s;
}
} // namespace

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
                     human += "\n  " + k.summary();
                   }
                   return finish(g, j, human);
                 } catch (const Error& e) {
                   audit_append(po.audit_log, {{"event", "provision"}, {"ok", false}, {"error", {{"code", static_cast<int>(e.code())}, {"message", e.what()}}}});
                   throw;
                 }
               }});

  static FleetOpts fo;
  static ProvisionOpts fpo;
  auto* fleet = app.add_subcommand("fleet", "provision many tokens from a CSV manifest");
  fleet->add_option("--manifest", fo.manifest, "CSV with a header: token, subject, [san, user, label]")->required();
  fleet->add_option("--jobs", fo.jobs, "tokens provisioned at once (default 1)");
  fleet->add_option("--state", fo.state, "record finished rows here; a rerun with it completes the rest");
  fleet->add_flag("--dry-run", fo.dry_run, "check the manifest and find the tokens; write nothing");
  add_enrollment_options(fleet, fpo);
  r.push_back({fleet, [&g]() {
                 FleetRequest fr;
                 fr.manifest = fo.manifest;
                 fr.jobs = fo.jobs;
                 fr.state_file = fo.state;
                 fr.dry_run = fo.dry_run;
                 fr.audit_log = fpo.audit_log;
                 Prepared p;
                 if (g.profile.empty()) fail(ExitCode::Usage, "fleet needs --profile.");
                 if (fo.jobs < 1) fail(ExitCode::Usage, "--jobs must be 1 or more.");
                 auto rows = read_manifest(fo.manifest); // a bad manifest fails before any prompt
                 if (fo.dry_run) {
                   p.req.profile = profile(g);
                   p.req.module_path = resolve_module_path(g.module, p.req.profile.module);
                 } else {
                   prepare(g, fpo, p, true);
                 }
                 fr.base = p.req;
                 fr.base.progress = nullptr;
                 // Workers run side by side: no per-step messages from them, and no CA
                 // confirmation prompt per row. An unpinned CA is looked at (and confirmed on a
                 // terminal, refused otherwise) once, here, and its fingerprint pinned for every row.
                 fr.base.scep.progress = nullptr;
                 fr.base.cmp.progress = nullptr;
                 if (!fo.dry_run && !fr.base.scep.url.empty() && fr.base.scep.ca_fingerprint.empty()) {
                   auto opts = p.req.scep;
                   auto info = scep::get_ca(opts);
                   fr.base.scep.ca_fingerprint = ossl::cert_fingerprint_sha256(info.ca.get());
                   status(g, "Pinned the CA certificate with SHA-256 fingerprint " + fr.base.scep.ca_fingerprint + " for this run.");
                 }
                 fr.secrets = secrets_of(p);
                 // The progress bar lives on stderr's last line when stderr is a terminal;
                 // rows and messages clear it first, the next progress call redraws it.
                 bool tty = ::isatty(STDERR_FILENO) && !g.quiet;
                 fr.on_row = [tty, &g](const nlohmann::json& line) {
                   if (tty) std::cerr << "\r\033[K" << std::flush;
                   print_json(line);
                   if (!line.value("ok", false) && line.contains("error")) {
                     std::string tok = line.value("token", "");
                     status(g, "Row " + std::to_string(line.value("row", 0)) + (tok.empty() ? "" : " (token " + tok + ")") +
                                   " failed: " + line["error"].value("message", ""));
                   } else if (line.contains("warning")) {
                     status(g, "Row " + std::to_string(line.value("row", 0)) + ": " + line.value("warning", ""));
                   }
                 };
                 fr.on_progress = [tty](std::size_t done, std::size_t total, std::size_t failed) {
                   if (!tty || total == 0) return;
                   constexpr std::size_t width = 30;
                   std::size_t filled = done * width / total;
                   std::cerr << "\r[" << std::string(filled, '#') << std::string(width - filled, '.') << "] " << done << "/"
                             << total << (failed ? ", " + std::to_string(failed) + " failed" : std::string()) << std::flush;
                 };
                 auto sum = run_fleet(fr, rows);
                 if (tty) std::cerr << "\n";
                 std::string summary = std::string(fo.dry_run ? "Fleet dry run: " : "Fleet: ") + std::to_string(sum.total) +
                                       " rows: " + std::to_string(sum.ok) + (fo.dry_run ? " checked, " : " done, ") +
                                       std::to_string(sum.failed) + " failed";
                 if (sum.skipped) summary += ", " + std::to_string(sum.skipped) + " done before (state file)";
                 status(g, summary + ".");
                 return sum.failed ? static_cast<int>(ExitCode::FleetFailed) : 0;
               }});
}

} // namespace tokenprov::cli
