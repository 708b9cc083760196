// SPDX-License-Identifier: Apache-2.0
// The SCEP, CMP and EST options commands build from their command lines.
#include "common.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace tokenprov::cli {

namespace {
bool interactive(const Global& g) { return !g.json && ::isatty(STDIN_FILENO) && ::isatty(STDERR_FILENO); }

bool ask_trust(const std::string& fp, const std::string& subject) {
  int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  std::string q = "The CA presents itself as '" + subject + "'\nwith SHA-256 fingerprint " + fp +
                  ".\nCompare it with the fingerprint your CA published. Trust it? [y/N] ";
  (void)!::write(fd, q.data(), q.size());
  char c = 0;
  bool yes = ::read(fd, &c, 1) == 1 && (c == 'y' || c == 'Y');
  ::close(fd);
  return yes;
}
} // namespace

scep::Options scep_options(const Global& g, const std::string& url, const std::string& fp, int wait) {
  scep::Options o;
  o.url = url;
  o.ca_fingerprint = fp;
  o.interactive = interactive(g);
  o.wait_seconds = wait;
  o.confirm_ca = ask_trust;
  o.progress = [&g](const std::string& line) { status(g, line); };
  return o;
}

cmp::Options cmp_options(const Global& g, const std::string& url, const std::string& reference, const std::string& fp,
                         const std::string& ca_bundle, int wait, const std::string& request) {
  cmp::Options o;
  o.url = url;
  o.reference = reference;
  o.ca_fingerprint = fp;
  o.ca_bundle = ca_bundle;
  o.wait_seconds = wait;
  if (request.empty() || request == "auto") o.request = cmp::RequestKind::Auto;
  else if (request == "ir") o.request = cmp::RequestKind::Ir;
  else if (request == "p10cr") o.request = cmp::RequestKind::P10cr;
  else fail(ExitCode::Usage, "Unknown CMP request '" + request + "'.", "Use --cmp-request ir or p10cr.");
  o.progress = [&g](const std::string& line) { status(g, line); };
  return o;
}

est::Options est_options(const Global& g, const std::string& url, const std::string& ca_bundle, int wait) {
  est::Options o;
  o.url = url;
  o.ca_bundle = ca_bundle;
  o.wait_seconds = wait;
  o.progress = [&g](const std::string& line) { status(g, line); };
  return o;
}

} // namespace tokenprov::cli
