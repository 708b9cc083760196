// SPDX-License-Identifier: Apache-2.0
// CA pinning for a run of many enrollments (fleet): the CA asked once.
#include "tokenprov/scep.hpp"

namespace tokenprov::scep {

void pin_ca(Options& opts) {
  if (opts.url.empty() || !opts.ca_fingerprint.empty()) return;
  auto info = get_ca(opts);
  opts.ca_fingerprint = ossl::cert_fingerprint_sha256(info.ca.get());
  if (opts.progress)
    opts.progress("Pinned the CA certificate with SHA-256 fingerprint " + opts.ca_fingerprint + " for this run.");
}

} // namespace tokenprov::scep
