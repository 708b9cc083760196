// SPDX-License-Identifier: Apache-2.0
#include "commands.hpp"

#include "tokenprov/status.hpp"
#include "tokenprov/uri.hpp"

#include <cmath>
#include <cstdio>
#include <memory>
#include <sstream>

namespace tokenprov::cli {

namespace {
std::string left_text(long long secs) {
  long long a = secs < 0 ? -secs : secs;
  char buf[64];
  if (a >= 86400) std::snprintf(buf, sizeof buf, "%.1f days", static_cast<double>(a) / 86400.0);
  else std::snprintf(buf, sizeof buf, "%lld h %02lld min", a / 3600, (a % 3600) / 60);
  return secs < 0 ? std::string("expired ") + buf + " ago" : std::string(buf) + " left";
}

std::string human(const StatusReport& r) {
  std::ostringstream o;
  if (r.tokens.empty()) o << "No initialized token found.\n";
  for (auto& u : r.unreadable)
    o << "Slot " << u.slot_id << ": the module cannot read its token (" << p11::rv_name(u.rv) << ").\n";
  std::string token;
  for (auto& c : r.certificates) {
    if (c.token_uri != token) {
      token = c.token_uri;
      o << "Token '" << c.token_label << "'  serial " << c.token_serial << "\n";
    }
    o << "  " << (c.expiring ? "EXPIRING " : "") << (c.authority ? "CA   " : "leaf ") << "'" << c.label << "' id "
      << (c.id.empty() ? "-" : to_hex(c.id)) << ": " << c.subject << "\n"
      << "       issuer " << c.issuer << "; until " << c.not_after << " (" << left_text(c.seconds_left) << ")";
    if (!c.key_class.empty()) o << "; key '" << c.key_label << "'" << (c.key_class == "public-key" ? " (public half seen)" : "");
    else if (!c.authority) o << "; no key with this id";
    o << "\n";
  }
  for (auto& t : r.tokens) {
    bool any = false;
    for (auto& c : r.certificates) any = any || c.token_serial == t.serial;
    if (!any) o << "Token '" << t.label << "'  serial " << t.serial << ": no certificate.\n";
  }
  if (!r.not_logged_in.empty())
    o << "Private objects were not read on " << r.not_logged_in.size()
      << " token(s) (no PIN source): keys are matched by their public halves.\n";
  if (r.window_days) {
    char d[32];
    std::snprintf(d, sizeof d, "%g", *r.window_days);
    o << r.expiring << " certificate(s) expire within " << d << " day(s) or have expired.\n";
  }
  return o.str();
}
} // namespace

int run_status(const Global& g, const StatusOptions& o) {
  auto module = p11::Module::load(module_path(g));
  Secret pin;
  bool login = !pin_source(g).empty(); // only with a PIN source: certificates are public
  if (login) pin = user_pin(g);
  StatusRequest req;
  req.selector = g.token;
  req.pin = login ? &pin : nullptr;
  req.expiring_days = o.expiring;
  auto rep = certificate_status(module, req);
  finish(g, to_json(rep), human(rep));
  return rep.window_days && rep.expiring > 0 ? static_cast<int>(ExitCode::Expiring) : 0;
}

Command setup_status(CLI::App& app, Global& g) {
  auto o = std::make_shared<StatusOptions>();
  auto* cmd = app.add_subcommand("status",
                                 "every certificate on the token(s): key, issuer, end of validity, days left; "
                                 "exit 9 with --expiring when one expires within DAYS");
  cmd->add_option("--expiring", o->expiring,
                  "exit 9 when a certificate expires within DAYS (a number, fractions allowed) or has expired");
  return {cmd, [&g, o] { return run_status(g, *o); }};
}

} // namespace tokenprov::cli
