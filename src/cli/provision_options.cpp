// SPDX-License-Identifier: Apache-2.0
#include "provision_options.hpp"

#include "tokenprov/uri_resolve.hpp"

namespace tokenprov::cli {

void add_enrollment_options(CLI::App* cmd, ProvisionOptions& o) {
  cmd->add_option("--scep-url", o.scep_url, "enroll over SCEP at this URL (default: the profile's)");
  cmd->add_option("--challenge-source", o.challenge_source, "the SCEP challenge: env:VAR, file:PATH, fd:N or prompt");
  cmd->add_option("--protocol", o.protocol, "scep, cmp or est (default: the profile's, else scep)");
  cmd->add_option("--cmp-url", o.cmp_url, "enroll over CMP at this URL (default: the profile's [cmp] url)");
  cmd->add_option("--reference", o.reference, "the CMP reference number (senderKID; not secret)");
  cmd->add_option("--secret-source", o.secret_source,
                  "the CMP shared secret (PIN) or the EST password: env:VAR, file:PATH, fd:N or prompt");
  cmd->add_option("--est-url", o.est_url, "enroll over EST at this base URL (default: the profile's [est] url)");
  cmd->add_option("--est-user", o.est_user, "the EST HTTP Basic user (default: the profile's [est] user)");
  cmd->add_option("--cmp-request", o.cmp_request, "ir (RSA keys) or p10cr; default: ir for RSA, p10cr for others");
  cmd->add_option("--ca-bundle", o.ca_bundle, "trusted CA certificates (CMP; EST: the TLS trust anchors)");
  cmd->add_option("--ca-fingerprint", o.ca_fingerprint, "SHA-256 fingerprint of the CA certificate (hex)");
  cmd->add_option("--wait", o.wait, "seconds to keep polling a pending SCEP, CMP or EST request");
  cmd->add_option("--csr-dir", o.csr_dir, "write CSRs here and stop awaiting the certificates");
  cmd->add_option("--cert-dir", o.cert_dir, "pick the certificates up from files in this folder");
  cmd->add_option("--backup-dir", o.backup_dir, "write PKCS#12 backups of keys the profile marks for backup here");
  cmd->add_option("--password-source", o.password_source, "backup password: env:VAR, file:PATH, fd:N or prompt");
  cmd->add_option("--audit-log", o.audit_log, "append a JSON line per token to this file");
  cmd->add_flag("--allow-expired", o.allow_expired, "store an expired or not yet valid certificate");
  cmd->add_flag("--check-signature", o.check_signature,
                "once a key has its certificate, sign random bytes on the token and verify them with the certificate");
  cmd->add_option("--renew-expiring", o.renew_expiring,
                  "then renew every certificate on the token that expires within DAYS (authenticated by itself)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--rekey", o.rekey, "renewals make new keys (the old ones archived); default: each profile key's renew");
}

// Reads the secrets a run needs, once.
void prepare(const Global& g, const ProvisionOptions& o, Prepared& p, bool blank_possible) {
  if (g.profile.empty()) fail(ExitCode::Usage, "provision needs --profile.");
  p.req.profile = profile(g);
  p.req.module_path = resolve_module_for(g.module, p.req.profile.module, g.token);
  std::string proto = o.protocol.empty() ? p.req.profile.protocol : o.protocol;
  p.req.protocol = parse_protocol(proto.empty() ? "scep" : proto);
  if (p.req.protocol == EnrollProtocol::Scep) {
    p.req.scep = scep_options(g, o.scep_url.empty() ? p.req.profile.scep_url : o.scep_url,
                              scep::normalize_fingerprint(o.ca_fingerprint.empty() ? p.req.profile.ca_fingerprint : o.ca_fingerprint),
                              o.wait);
  } else if (p.req.protocol == EnrollProtocol::Cmp) {
    p.req.cmp = cmp_options(g, o.cmp_url.empty() ? p.req.profile.cmp_url : o.cmp_url, o.reference,
                            scep::normalize_fingerprint(o.ca_fingerprint.empty() ? p.req.profile.cmp_ca_fingerprint
                                                                                 : o.ca_fingerprint),
                            o.ca_bundle, o.wait, o.cmp_request);
    if (!p.req.cmp.url.empty() && p.req.cmp.ca_bundle.empty() && p.req.cmp.ca_fingerprint.empty())
      fail(ExitCode::Usage, "CMP enrollment needs the CA's trust anchor: --ca-bundle FILE or --ca-fingerprint SHA256HEX.");
  } else {
    p.req.est = est_options(g, o.est_url.empty() ? p.req.profile.est_url : o.est_url, o.ca_bundle, o.wait);
    p.req.est.user = o.est_user.empty() ? p.req.profile.est_user : o.est_user;
    if (!p.req.est.url.empty() && o.ca_bundle.empty())
      fail(ExitCode::Usage, "EST enrollment needs --ca-bundle: the CA certificates the server's TLS certificate chains to.",
           "tokenprov does not use the system's CA store for EST.");
  }
  p.req.renew_within_days = o.renew_expiring;
  p.req.rekey = o.rekey;
  if (o.rekey && !o.renew_expiring)
    fail(ExitCode::Usage, "--rekey applies to renewals: give --renew-expiring DAYS too.");
  p.req.csr_dir = o.csr_dir;
  p.req.cert_dir = o.cert_dir;
  p.req.backup_dir = o.backup_dir;
  p.req.allow_expired = o.allow_expired;
  p.req.check_signature = o.check_signature;
  p.pin = user_pin(g, p.req.profile.user_pin.min_length);
  if (blank_possible && !g.so_pin_source.empty()) {
    try {
      p.so = so_pin(g);
    } catch (const Error& e) {
      if (e.code() != ExitCode::Pin) throw;
      p.so_problem.emplace(e); // e.g. an empty value: a token that needs no SO PIN is not stopped by it
    }
  }
  if (p.req.protocol == EnrollProtocol::Scep && !p.req.scep.url.empty() && !o.challenge_source.empty())
    p.challenge = secret_from(o.challenge_source, "SCEP challenge", ExitCode::Ca);
  if (p.req.protocol == EnrollProtocol::Cmp && !p.req.cmp.url.empty() && !o.secret_source.empty())
    p.challenge = secret_from(o.secret_source, "CA secret (PIN)", ExitCode::Ca);
  if (p.req.protocol == EnrollProtocol::Est && !p.req.est.url.empty() && !o.secret_source.empty())
    p.challenge = secret_from(o.secret_source, "EST password", ExitCode::Ca);
  if (!o.backup_dir.empty())
    p.password = secret_from(o.password_source, "backup password", ExitCode::BadInput, true, p.req.profile.backup_password_min);
}

ProvisionSecrets secrets_of(const Prepared& p) {
  ProvisionSecrets s;
  s.user_pin = &p.pin;
  s.so_pin = p.so.empty() ? nullptr : &p.so;
  s.so_pin_problem = p.so_problem ? &*p.so_problem : nullptr;
  s.challenge = p.challenge.empty() ? nullptr : &p.challenge;
  s.backup_password = p.password.empty() ? nullptr : &p.password;
  return s;
}

} // namespace tokenprov::cli
