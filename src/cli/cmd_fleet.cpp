// SPDX-License-Identifier: Apache-2.0
#include "provision_options.hpp"

#include "tokenprov/fleet.hpp"
#include "tokenprov/ossl.hpp"
#include "tokenprov/uri_resolve.hpp"

#include <unistd.h>

#include <iostream>

namespace tokenprov::cli {

namespace {
struct FleetOpts {
  std::string manifest, state;
  int jobs = 1;
  bool dry_run = false;
};
} // namespace

void register_fleet(CLI::App& app, Global& g, Registry& r) {
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
