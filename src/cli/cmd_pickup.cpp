// SPDX-License-Identifier: Apache-2.0
// pickup: the certificate the CA issued, written beside its key. Its output
// (pickup_json(), pickup_human()) is enroll's too.
#include "commands.hpp"

#include "tokenprov/enroll.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/uri.hpp"

#include <memory>

namespace tokenprov::cli {

nlohmann::json pickup_json(const PickupResult& r) {
  nlohmann::json chain = nlohmann::json::array();
  for (auto& c : r.chain)
    chain.push_back({{"subject", ossl::name_oneline(X509_get_subject_name(c.get()))}, {"serial", ossl::serial_hex(c.get())}});
  return {{"key", {{"label", r.key.label}, {"id", to_hex(r.key.id)}}},
          {"certificate",
           {{"subject", ossl::name_oneline(X509_get_subject_name(r.leaf.get()))},
            {"issuer", ossl::name_oneline(X509_get_issuer_name(r.leaf.get()))},
            {"serial", ossl::serial_hex(r.leaf.get())},
            {"not_after", ossl::asn1_time_rfc3339(X509_get0_notAfter(r.leaf.get()))}}},
          {"chain", chain},
          {"written", r.written},
          {"already_present", r.present},
          {"ignored", r.ignored}};
}

std::string pickup_human(const PickupResult& r) {
  std::string s = "Certificate for '" + ossl::name_oneline(X509_get_subject_name(r.leaf.get())) + "' belongs to key '" +
                  r.key.label + "' (id " + to_hex(r.key.id) + "); chain of " +
                  std::to_string(r.chain.size()) + ". Wrote " + std::to_string(r.written) + " certificate(s)";
  if (r.present) s += ", " + std::to_string(r.present) + " already on the token";
  s += ".";
  for (auto& i : r.ignored) s += "\nIgnored a certificate outside the chain: " + i;
  return s;
}

int run_pickup(const Global& g, const PickupOptions& o) {
  auto certs = load_certificate_file(o.cert);
  Secret pin = user_pin(g);
  auto ctx = open_token({module_path(g), g.token, TokenState::Initialized, true, &pin});
  status(g, "Read " + std::to_string(certs.size()) + " certificate(s) from " + o.cert + ".");
  auto res = pickup_certificates(*ctx.session, std::move(certs), {o.ca_bundle, o.allow_expired}, o.cert);
  return finish(g, pickup_json(res), pickup_human(res));
}

Command setup_pickup(CLI::App& app, Global& g) {
  auto o = std::make_shared<PickupOptions>();
  auto* cmd = app.add_subcommand("pickup", "write the certificate the CA issued (PEM, DER, PKCS#7) beside its key");
  cmd->add_option("--cert", o->cert, "the certificate file (PEM, DER or PKCS#7 with its chain)")->required();
  cmd->add_option("--ca-bundle", o->ca_bundle, "trusted CA certificates: the chain must verify against them");
  cmd->add_flag("--allow-expired", o->allow_expired, "store an expired or not yet valid certificate");
  return {cmd, [&g, o] { return run_pickup(g, *o); }};
}

} // namespace tokenprov::cli
