// SPDX-License-Identifier: Apache-2.0
#include "common.hpp"

#include "tokenprov/enroll.hpp"
#include "tokenprov/profile.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/uri.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace tokenprov::cli {

namespace {
struct PickupOpts {
  std::string cert, ca_bundle;
  bool allow_expired = false;
};
struct EnrollOpts {
  std::string protocol, scep_url, challenge_source, algorithm = "rsa2048", label, subject, ca_fingerprint, id;
  std::string cmp_url, reference, secret_source, ca_bundle, key, cmp_request;
  std::string est_url, est_user; // --protocol est
  std::vector<std::string> sans;
  bool exportable = false, allow_expired = false;
  int wait = 0;
};

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
                   if (!g.profile.empty()) req.csrattrs_allow = profile(g).est_csrattrs_allow;
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
