// SPDX-License-Identifier: Apache-2.0
#include "common.hpp"

#include "tokenprov/enroll.hpp"
#include "tokenprov/profile.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/uri.hpp"

namespace tokenprov::cli {

namespace {
struct PickupOpts {
  std::string cert, ca_bundle;
  bool allow_expired = false;
};
} // namespace

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

void register_pickup(CLI::App& app, Global& g, Registry& r) {
  static PickupOpts po;
  auto* pickup = app.add_subcommand("pickup", "write the certificate the CA issued (PEM, DER, PKCS#7) beside its key");
  pickup->add_option("--cert", po.cert, "the certificate file (PEM, DER or PKCS#7 with its chain)")->required();
  pickup->add_option("--ca-bundle", po.ca_bundle, "trusted CA certificates: the chain must verify against them");
  pickup->add_flag("--allow-expired", po.allow_expired, "store an expired or not yet valid certificate");
  r.push_back({pickup, [&g]() {
                 auto certs = load_certificate_file(po.cert);
                 Secret pin = user_pin(g);
                 auto ctx = open_token({module_path(g), g.token, TokenState::Initialized, true, &pin});
                 status(g, "Read " + std::to_string(certs.size()) + " certificate(s) from " + po.cert + ".");
                 auto res = pickup_certificates(*ctx.session, std::move(certs), {po.ca_bundle, po.allow_expired}, po.cert);
                 return finish(g, pickup_json(res), pickup_human(res));
               }});
}

} // namespace tokenprov::cli
