// SPDX-License-Identifier: Apache-2.0
// enroll: keygen (or --key) + request + SCEP, CMP or EST enrollment + pickup.
#include "commands.hpp"

#include "tokenprov/enroll.hpp"
#include "tokenprov/profile.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/uri.hpp"

#include <memory>

namespace tokenprov::cli {

namespace {
EnrollProtocol enroll_protocol(const Global& g, const EnrollOptions& o) {
  std::string proto = o.protocol;
  if (proto.empty() && !g.profile.empty()) proto = profile(g).protocol;
  return parse_protocol(proto.empty() ? "scep" : proto);
}

// The protocol's options, checked before any secret is read.
void protocol_options(const Global& g, const EnrollOptions& o, EnrollRequest& req) {
  std::string fp = scep::normalize_fingerprint(o.ca_fingerprint);
  if (req.protocol == EnrollProtocol::Scep) {
    if (o.scep_url.empty()) fail(ExitCode::Usage, "SCEP enrollment needs --scep-url.");
    req.scep = scep_options(g, o.scep_url, fp, o.wait);
  } else if (req.protocol == EnrollProtocol::Cmp) {
    req.cmp = cmp_options(g, o.cmp_url, o.reference, fp, o.ca_bundle, o.wait, o.cmp_request);
  } else if (req.protocol == EnrollProtocol::Est) {
    if (o.est_url.empty()) fail(ExitCode::Usage, "EST enrollment needs --est-url.");
    if (o.est_user.empty()) fail(ExitCode::Usage, "EST enrollment needs --est-user (and --secret-source).");
    if (o.ca_bundle.empty())
      fail(ExitCode::Usage, "EST enrollment needs --ca-bundle: the CA certificates the server's TLS certificate chains to.",
           "tokenprov does not use the system's CA store for EST.");
    req.est = est_options(g, o.est_url, o.ca_bundle, o.wait);
    req.est.user = o.est_user;
    if (!g.profile.empty()) req.csrattrs_allow = profile(g).est_csrattrs_allow;
  }
}

EnrollRequest enroll_request(const Global& g, const EnrollOptions& o, EnrollProtocol protocol) {
  EnrollRequest req;
  req.protocol = protocol;
  if (o.key.empty() && o.label.empty())
    fail(ExitCode::Usage, "enroll needs --label for the new key, or --key for an existing one.");
  req.algorithm = parse_algorithm(o.algorithm);
  req.policy.label = o.label;
  if (!o.id.empty()) {
    auto raw = from_hex(o.id);
    req.policy.id.assign(raw.begin(), raw.end());
  }
  req.policy.exportable = o.exportable;
  check_export(g, o.exportable, ExportAsk::Enroll);
  req.subject = o.subject;
  req.sans = o.sans;
  req.allow_expired = o.allow_expired;
  ossl::parse_dn(o.subject);
  for (auto& s : o.sans) check_san(s);
  protocol_options(g, o, req);
  return req;
}

Secret enroll_secret(const EnrollOptions& o, EnrollProtocol protocol) {
  if (protocol == EnrollProtocol::Scep) return secret_from(o.challenge_source, "SCEP challenge", ExitCode::Ca);
  if (protocol == EnrollProtocol::Est) return secret_from(o.secret_source, "EST password", ExitCode::Ca);
  return secret_from(o.secret_source, "CA secret (PIN)", ExitCode::Ca);
}

nlohmann::json enroll_json(const EnrollRequest& req, const EnrollResult& res) {
  auto j = pickup_json(res.pickup);
  j["protocol"] = protocol_name(req.protocol);
  j["ca_fingerprint"] = res.ca_fingerprint;
  if (req.protocol == EnrollProtocol::Est) j["csrattrs"] = {{"applied", res.csrattrs_applied}, {"ignored", res.csrattrs_ignored}};
  if (req.protocol == EnrollProtocol::Cmp) {
    j["polls"] = res.polls;
    j["trust"] = res.trust_note;
  }
  return j;
}
} // namespace

int run_enroll(const Global& global, const EnrollOptions& o) {
  EnrollProtocol protocol = enroll_protocol(global, o);
  Global g = o.key.empty() ? global : with_key_uri(global, o.key); // a key URI can name its token
  EnrollRequest req = enroll_request(g, o, protocol);
  Secret pin = user_pin(g);
  Secret secret = enroll_secret(o, req.protocol);
  auto ctx = open_token({module_path(g), g.token, TokenState::Initialized, true, &pin});
  EnrollResult res = enroll_key(*ctx.session, o.key, req, secret);
  std::string human = "Enrolled. " + pickup_human(res.pickup);
  if (!res.trust_note.empty()) human += "\n" + res.trust_note;
  return finish(g, enroll_json(req, res), human);
}

Command setup_enroll(CLI::App& app, Global& g) {
  auto o = std::make_shared<EnrollOptions>();
  auto* cmd = app.add_subcommand("enroll", "keygen (or --key) + request + SCEP, CMP or EST enrollment + pickup");
  cmd->add_option("--protocol", o->protocol, "scep (default: the profile's, else scep), cmp or est");
  cmd->add_option("--scep-url", o->scep_url, "the CA's SCEP URL (--protocol scep)");
  cmd->add_option("--challenge-source", o->challenge_source, "the one-time challenge PIN: env:VAR, file:PATH, fd:N or prompt");
  cmd->add_option("--cmp-url", o->cmp_url, "the CA's CMP endpoint, e.g. http://ca:8080/pkix/ (--protocol cmp)");
  cmd->add_option("--reference", o->reference, "the reference number from the CA's mail (CMP senderKID; not secret)");
  cmd->add_option("--est-url", o->est_url, "the EST base, e.g. https://ca:8443/.well-known/est (--protocol est)");
  cmd->add_option("--est-user", o->est_user, "HTTP Basic user for EST enrollment (--protocol est)");
  cmd->add_option("--secret-source", o->secret_source,
                  "CMP: the CA's PIN / shared secret; EST: the password: env:VAR, file:PATH, fd:N or prompt");
  cmd->add_option("--cmp-request", o->cmp_request, "ir (RSA keys) or p10cr; default: ir for RSA, p10cr for others");
  cmd->add_option("--key", o->key, "enroll this existing key (URI, label or id:HEX) instead of generating one");
  cmd->add_option("--algorithm", o->algorithm, "rsa2048 (default), rsa3072, rsa4096; CMP also ec-p256, ec-p384, ed25519");
  cmd->add_option("--label", o->label, "the new key's label (required without --key)");
  cmd->add_option("--id", o->id, "CKA_ID in hex (default: SHA-1 of the public key)");
  cmd->add_option("--subject", o->subject, "subject DN, e.g. /CN=Alice/O=Example")->required();
  cmd->add_option("--san", o->sans, "subjectAltName TYPE:VALUE; repeatable");
  cmd->add_flag("--exportable", o->exportable, "allow the private key to be backed up");
  cmd->add_option("--ca-fingerprint", o->ca_fingerprint, "SHA-256 fingerprint of the CA certificate (hex)");
  cmd->add_option("--ca-bundle", o->ca_bundle,
                  "trusted CA certificates (CMP: the CA's answers and the chain must verify; EST: the TLS trust anchors, "
                  "nothing else is trusted)");
  cmd->add_option("--wait", o->wait, "seconds to keep polling a pending request (default 0)");
  cmd->add_flag("--allow-expired", o->allow_expired, "store an expired or not yet valid certificate");
  return {cmd, [&g, o] { return run_enroll(g, *o); }};
}

} // namespace tokenprov::cli
