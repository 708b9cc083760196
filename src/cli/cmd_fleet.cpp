// SPDX-License-Identifier: Apache-2.0
// fleet: provision many tokens from a CSV manifest.
#include "provision_options.hpp"

#include "tokenprov/fleet.hpp"
#include "tokenprov/uri_resolve.hpp"

#include <unistd.h>

#include <iostream>
#include <memory>

namespace tokenprov::cli {

namespace {
// The run's request without its output callbacks; reads the secrets (none for a dry run).
FleetRequest fleet_request(const Global& g, const FleetOptions& o, Prepared& p) {
  FleetRequest fr;
  fr.manifest = o.manifest;
  fr.jobs = o.jobs;
  fr.state_file = o.state;
  fr.dry_run = o.dry_run;
  fr.audit_log = o.provision.audit_log;
  if (o.dry_run) {
    p.req.profile = profile(g);
    p.req.module_path = resolve_module_path(g.module, p.req.profile.module);
  } else {
    prepare(g, o.provision, p, true);
    // Workers run side by side: no CA confirmation prompt per row. An unpinned CA is
    // looked at (and confirmed on a terminal, refused otherwise) once, here, and its
    // fingerprint pinned for every row.
    scep::pin_ca(p.req.scep);
  }
  fr.base = p.req;
  fr.base.progress = nullptr;
  // Workers run side by side: no per-step messages from them.
  fr.base.scep.progress = nullptr;
  fr.base.cmp.progress = nullptr;
  fr.secrets = secrets_of(p);
  return fr;
}

// The progress bar lives on stderr's last line when stderr is a terminal;
// rows and messages clear it first, the next progress call redraws it.
void print_progress(FleetRequest& fr, const Global& g, bool tty) {
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
    std::cerr << "\r[" << std::string(filled, '#') << std::string(width - filled, '.') << "] " << done << "/" << total
              << (failed ? ", " + std::to_string(failed) + " failed" : std::string()) << std::flush;
  };
}

std::string summary_line(const FleetSummary& sum, bool dry_run) {
  std::string summary = std::string(dry_run ? "Fleet dry run: " : "Fleet: ") + std::to_string(sum.total) +
                        " rows: " + std::to_string(sum.ok) + (dry_run ? " checked, " : " done, ") +
                        std::to_string(sum.failed) + " failed";
  if (sum.skipped) summary += ", " + std::to_string(sum.skipped) + " done before (state file)";
  return summary + ".";
}
} // namespace

int run_fleet(const Global& g, const FleetOptions& o) {
  if (g.profile.empty()) fail(ExitCode::Usage, "fleet needs --profile.");
  if (o.jobs < 1) fail(ExitCode::Usage, "--jobs must be 1 or more.");
  auto rows = read_manifest(o.manifest); // a bad manifest fails before any prompt
  Prepared p;
  FleetRequest fr = fleet_request(g, o, p);
  bool tty = ::isatty(STDERR_FILENO) && !g.quiet;
  print_progress(fr, g, tty);
  auto sum = tokenprov::run_fleet(fr, rows);
  if (tty) std::cerr << "\n";
  status(g, summary_line(sum, o.dry_run));
  return sum.failed ? static_cast<int>(ExitCode::FleetFailed) : 0;
}

Command setup_fleet(CLI::App& app, Global& g) {
  auto o = std::make_shared<FleetOptions>();
  auto* cmd = app.add_subcommand("fleet", "provision many tokens from a CSV manifest");
  cmd->add_option("--manifest", o->manifest, "CSV with a header: token, subject, [san, user, label]")->required();
  cmd->add_option("--jobs", o->jobs, "tokens provisioned at once (default 1)");
  cmd->add_option("--state", o->state, "record finished rows here; a rerun with it completes the rest");
  cmd->add_flag("--dry-run", o->dry_run, "check the manifest and find the tokens; write nothing");
  add_enrollment_options(cmd, o->provision);
  return {cmd, [&g, o] { return run_fleet(g, *o); }};
}

} // namespace tokenprov::cli
