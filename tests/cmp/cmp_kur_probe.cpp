// SPDX-License-Identifier: Apache-2.0
// Drives tokenprov::cmp::kur() (the library function `renew` will call) for
// tests/e2e/test_cmp_ca.py until the renew command exists:
//
//   TP_PIN=... cmp_kur_probe MODULE TOKEN KEY URL CA_FINGERPRINT
//
// Writes the new certificate beside the key (pickup), prints
// {"serial": ..., "polls": N, "mac_only": bool} and exits 0; a failure prints
// the message and exits with the error's contract code.
#include "tokenprov/cmp.hpp"
#include "tokenprov/pickup.hpp"
#include "tokenprov/token.hpp"

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  using namespace tokenprov;
  if (argc != 6) {
    std::fprintf(stderr, "usage: cmp_kur_probe MODULE TOKEN KEY URL CA_FINGERPRINT\n");
    return 2;
  }
  try {
    const char* pin_env = std::getenv("TP_PIN");
    Secret pin(pin_env ? pin_env : "");
    auto ctx = open_token({argv[1], argv[2], TokenState::Initialized, true, &pin});
    auto k = find_key(*ctx.session, argv[3]);
    auto current = find_leaf_certificate(*ctx.session, k, ossl::spki_der(public_key(*ctx.session, k).get()));
    if (!current) fail(ExitCode::BadInput, "the key has no certificate");
    cmp::Options o;
    o.url = argv[4];
    o.ca_fingerprint = argv[5];
    o.wait_seconds = 60;
    std::string serial;
    auto issued = cmp::kur(o, *ctx.session, k, current.get(), [&](const cmp::Issued& is) {
      std::vector<ossl::X509Ptr> certs;
      certs.push_back(ossl::dup(is.cert.get()));
      for (auto& c : is.chain) certs.push_back(ossl::dup(c.get()));
      auto r = pickup_certificates(*ctx.session, std::move(certs), {"", false, k}, o.url);
      serial = ossl::serial_hex(r.leaf.get());
    });
    std::printf("{\"serial\": \"%s\", \"old_serial\": \"%s\", \"polls\": %d, \"mac_only\": %s}\n", serial.c_str(),
                ossl::serial_hex(current.get()).c_str(), issued.polls, issued.mac_only ? "true" : "false");
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return static_cast<int>(e.code());
  }
}
