// SPDX-License-Identifier: Apache-2.0
#include "common.hpp"

#include "tokenprov/enroll.hpp"
#include "tokenprov/profile.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/uri.hpp"

namespace tokenprov::cli {

namespace {
struct EnrollOpts {
  std::string protocol, scep_url, challenge_source, algorithm = "rsa2048", label, subject, ca_fingerprint, id;
  std::string cmp_url, reference, secret_source, ca_bundle, key, cmp_request;
  std::string est_url, est_user; // --protocol est
  std::vector<std::string> sans;
  bool exportable = false, allow_expired = false;
  int wait = 0;
};

} // namespace

void register_enroll(CLI::App& app, Global& g, Registry& r) {
  static EnrollOpts eo;
  auto* enroll_cmd = app.add_subcommand("enroll", "keygen (or --key) + request + SCEP, CMP or EST enrollment + pickup");
  enroll_cmd->add_option("--protocol", eo.protocol, "scep (default: the profile's, else scep), cmp or est");
  enroll_cmd->add_option("--scep-url", eo.scep_url, "the CA's SCEP URL (--protocol scep)");
  enroll_cmd->add_option("--challenge-source", eo.challenge_source, "the one-time challenge PIN: env:VAR, file:PATH, fd:N or prompt");
  enroll_cmd->add_option("--cmp-url", eo.cmp_url, "the CA's CMP endpoint, e.g. http://ca:8080/pkix/ (--protocol cmp)");
  enroll_cmd->add_option("--reference", eo.reference, "the reference number from the CA's mail (CMP senderKID; not secret)");
  enroll_cmd->add_option("--est-url", eo.est_url, "the EST base, e.g. https://ca:8443/.well-known/est (--protocol est)");
  enroll_cmd->add_option("--est-user", eo.est_user, "HTTP Basic user for EST enrollment (--protocol est)");
  enroll_cmd->add_option("--secret-source", eo.secret_source,
                         "CMP: the CA's PIN / shared secret; EST: the password: env:VAR, file:PATH, fd:N or prompt");
  enroll_cmd->add_option("--cmp-request", eo.cmp_request, "ir (RSA keys) or p10cr; default: ir for RSA, p10cr for others");
  enroll_cmd->add_option("--key", eo.key, "enroll this existing key (URI, label or id:HEX) instead of generating one");
  enroll_cmd->add_option("--algorithm", eo.algorithm, "rsa2048 (default), rsa3072, rsa4096; CMP also ec-p256, ec-p384, ed25519");
  enroll_cmd->add_option("--label", eo.label, "the new key's label (required without --key)");
  enroll_cmd->add_option("--id", eo.id, "CKA_ID in hex (default: SHA-1 of the public key)");
  enroll_cmd->add_option("--subject", eo.subject, "subject DN, e.g. /CN=Alice/O=Example")->required();
  enroll_cmd->add_option("--san", eo.sans, "subjectAltName TYPE:VALUE; repeatable");
  enroll_cmd->add_flag("--exportable", eo.exportable, "allow the private key to be backed up");
  enroll_cmd->add_option("--ca-fingerprint", eo.ca_fingerprint, "SHA-256 fingerprint of the CA certificate (hex)");
  enroll_cmd->add_option("--ca-bundle", eo.ca_bundle,
                         "trusted CA certificates (CMP: the CA's answers and the chain must verify; EST: the TLS trust anchors, "
                         "nothing else is trusted)");
  enroll_cmd->add_option("--wait", eo.wait, "seconds to keep polling a pending request (default 0)");
  enroll_cmd->add_flag("--allow-expired", eo.allow_expired, "store an expired or not yet valid certificate");
  r.push_back({enroll_cmd, [&g]() {
                 EnrollRequest req;
                 std::string proto = eo.protocol;
                 if (proto.empty() && !g.profile.empty()) proto = profile(g).protocol;
                 req.protocol = parse_protocol(proto.empty() ? "scep" : proto);
                 if (!eo.key.empty()) take_key_uri(g, eo.key);
                 else if (eo.label.empty()) fail(ExitCode::Usage, "enroll needs --label for the new key, or --key for an existing one.");
                 req.algorithm = parse_algorithm(eo.algorithm);
                 req.policy.label = eo.label;
                 if (!eo.id.empty()) {
                   auto raw = from_hex(eo.id);
                   req.policy.id.assign(raw.begin(), raw.end());
                 }
                 req.policy.exportable = eo.exportable;
                 if (!g.profile.empty() && eo.exportable && !profile(g).allow_export)
                   fail(ExitCode::Policy, "The profile '" + g.profile + "' forbids exportable keys; nothing was generated.");
                 req.subject = eo.subject;
                 req.sans = eo.sans;
                 req.allow_expired = eo.allow_expired;
                 ossl::parse_dn(eo.subject);
                 for (auto& s : eo.sans) check_san(s);
                 std::string fp = scep::normalize_fingerprint(eo.ca_fingerprint);
                 Secret secret;
                 if (req.protocol == EnrollProtocol::Scep) {
                   if (eo.scep_url.empty()) fail(ExitCode::Usage, "SCEP enrollment needs --scep-url.");
                   req.scep = scep_options(g, eo.scep_url, fp, eo.wait);
                 } else if (req.protocol == EnrollProtocol::Cmp) {
                   req.cmp = cmp_options(g, eo.cmp_url, eo.reference, fp, eo.ca_bundle, eo.wait, eo.cmp_request);
                 } else if (req.protocol == EnrollProtocol::Est) {
                   if (eo.est_url.empty()) fail(ExitCode::Usage, "EST enrollment needs --est-url.");
                   if (eo.est_user.empty()) fail(ExitCode::Usage, "EST enrollment needs --est-user (and --secret-source).");
                   if (eo.ca_bundle.empty())
                     fail(ExitCode::Usage, "EST enrollment needs --ca-bundle: the CA certificates the server's TLS certificate chains to.",
                          "tokenprov does not use the system's CA store for EST.");
                   req.est = est_options(g, eo.est_url, eo.ca_bundle, eo.wait);
                   req.est.user = eo.est_user;
                 }
                 Secret pin = user_pin(g);
                 if (req.protocol == EnrollProtocol::Scep)
                   secret = secret_from(eo.challenge_source, "SCEP challenge", ExitCode::Ca);
                 else if (req.protocol == EnrollProtocol::Est)
                   secret = secret_from(eo.secret_source, "EST password", ExitCode::Ca);
                 else
                   secret = secret_from(eo.secret_source, "CA secret (PIN)", ExitCode::Ca);
                 auto ctx = open_token({module_path(g), g.token, TokenState::Initialized, true, &pin});
                 EnrollResult res;
                 if (eo.key.empty()) {
                   res = enroll(*ctx.session, req, secret);
                 } else {
                   auto k = find_key(*ctx.session, eo.key);
                   req.policy.label = k.label;
                   res = enroll_existing(*ctx.session, k, req, secret);
                 }
                 auto j = pickup_json(res.pickup);
                 j["protocol"] = protocol_name(req.protocol);
                 j["ca_fingerprint"] = res.ca_fingerprint;
                 if (req.protocol == EnrollProtocol::Est)
                   j["csrattrs"] = {{"applied", res.csrattrs_applied}, {"ignored", res.csrattrs_ignored}};
                 if (req.protocol == EnrollProtocol::Cmp) {
                   j["polls"] = res.polls;
                   j["trust"] = res.trust_note;
                 }
                 std::string human = "Enrolled. " + pickup_human(res.pickup);
                 if (!res.trust_note.empty()) human += "\n" + res.trust_note;
                 return finish(g, j, human);
               }});
}

} // namespace tokenprov::cli
