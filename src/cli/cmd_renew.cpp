// SPDX-License-Identifier: Apache-2.0
// renew: a new certificate for a key that has one (--rekey: a new key; the old one archived).
#include "commands.hpp"

#include "tokenprov/cmp.hpp"
#include "tokenprov/renew.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/uri.hpp"

#include <memory>

namespace tokenprov::cli {

namespace {
nlohmann::json cert_json(X509* c) {
  return {{"subject", ossl::name_oneline(X509_get_subject_name(c))},
          {"issuer", ossl::name_oneline(X509_get_issuer_name(c))},
          {"serial", ossl::serial_hex(c)},
          {"not_after", ossl::asn1_time_rfc3339(X509_get0_notAfter(c))}};
}

// --protocol cmp: kur (RFC 4210 section 5.3.5) signed with the current key and certificate.
void cmp_key_update(const Global& g, const RenewOptions& o, RenewRequest& req) {
  if (o.cmp_url.empty() || (o.ca_bundle.empty() && o.ca_fingerprint.empty()))
    fail(ExitCode::Usage, "renew --protocol cmp needs --cmp-url and --ca-bundle or --ca-fingerprint.");
  if (o.rekey)
    fail(ExitCode::Usage, "renew --rekey over CMP is not supported: CMP's key update (kur) "
                          "certifies the key that signs it.",
         "Renew the same key over CMP (without --rekey), or rekey over EST or SCEP.");
  auto copts = cmp_options(g, o.cmp_url, "", scep::normalize_fingerprint(o.ca_fingerprint), o.ca_bundle, o.wait, "");
  req.cmp_kur = cmp_kur_exchange(copts);
}

RenewRequest renew_request(const Global& g, const RenewOptions& o) {
  RenewRequest req;
  std::string proto = o.protocol;
  if (proto.empty() && !g.profile.empty()) proto = profile(g).protocol; // the profile's, else est
  req.protocol = parse_protocol(proto.empty() ? "est" : proto);
  req.key = o.key;
  req.rekey = o.rekey;
  if (req.protocol == EnrollProtocol::Est && o.est_url.empty())
    fail(ExitCode::Usage, "renew --protocol est needs --est-url and --ca-bundle.");
  if (req.protocol == EnrollProtocol::Scep && o.scep_url.empty())
    fail(ExitCode::Usage, "renew --protocol scep needs --scep-url (and --ca-fingerprint).");
  req.est = est_options(g, o.est_url, o.ca_bundle, o.wait);
  req.scep = scep_options(g, o.scep_url, scep::normalize_fingerprint(o.ca_fingerprint), o.wait);
  req.progress = [&g](const std::string& line) { status(g, line); };
  if (req.protocol == EnrollProtocol::Cmp) cmp_key_update(g, o, req);
  return req;
}

std::string renew_human(const RenewResult& res) {
  std::string human = "Renewed the certificate of '" + res.key.label + "' (id " + to_hex(res.key.id) +
                      "): valid until " + ossl::asn1_time_rfc3339(X509_get0_notAfter(res.cert.get())) + ".";
  if (res.archived_key)
    human += " New key; the old key and certificate are kept under id " + to_hex(res.archived_key->id) + " as '" +
             res.archived_label + "'.";
  else
    human += " The old certificate was removed.";
  return human;
}
} // namespace

int run_renew(const Global& global, const RenewOptions& o) {
  Global g = with_key_uri(global, o.key);
  RenewRequest req = renew_request(g, o);
  Secret pin = user_pin(g);
  auto ctx = open_token({module_path(g), g.token, TokenState::Initialized, true, &pin});
  auto res = renew(*ctx.session, req);
  nlohmann::json j = {{"protocol", protocol_name(req.protocol)},
                      {"rekey", o.rekey},
                      {"key", {{"label", res.key.label}, {"id", to_hex(res.key.id)}}},
                      {"certificate", cert_json(res.cert.get())},
                      {"old_certificate", cert_json(res.old_cert.get())},
                      {"old_certificate_state", res.old_cert_state}};
  if (res.archived_key) j["archived_key"] = {{"label", res.archived_key->label}, {"id", to_hex(res.archived_key->id)}};
  return finish(g, j, renew_human(res));
}

Command setup_renew(CLI::App& app, Global& g) {
  auto o = std::make_shared<RenewOptions>();
  auto* cmd = app.add_subcommand("renew", "a new certificate for a key that has one (--rekey: a new key; the old one archived)");
  cmd->add_option("--key", o->key, "the key whose certificate is renewed: pkcs11: URI, id:HEX or label")->required();
  cmd->add_flag("--rekey", o->rekey, "make a new key pair; the old key and certificate are kept, labelled archived");
  cmd->add_option("--protocol", o->protocol, "est (default), scep or cmp");
  cmd->add_option("--est-url", o->est_url, "the EST base, e.g. https://ca:8443/.well-known/est");
  cmd->add_option("--ca-bundle", o->ca_bundle, "the CA certificates the EST server's TLS certificate chains to");
  cmd->add_option("--scep-url", o->scep_url, "the CA's SCEP URL (--protocol scep)");
  cmd->add_option("--cmp-url", o->cmp_url, "the CA's CMP endpoint (--protocol cmp: key update signed with the current key)");
  cmd->add_option("--ca-fingerprint", o->ca_fingerprint, "SCEP, CMP: SHA-256 fingerprint of the CA certificate (hex)");
  cmd->add_option("--wait", o->wait, "seconds to wait for a pending (HTTP 202) answer (default 0)");
  return {cmd, [&g, o] { return run_renew(g, *o); }};
}

} // namespace tokenprov::cli
