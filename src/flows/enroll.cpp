// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/enroll.hpp"

#include "tokenprov/token_pkey.hpp"

namespace tokenprov {

namespace {
void say(const EnrollRequest& req, const std::string& line) {
  if (req.scep.progress) req.scep.progress(line);
}

EnrollResult run_enroll(p11::Session& s, const KeyRef& k, const EnrollRequest& req, const Secret& challenge,
                        scep::Options opts, const scep::CaInfo& ca) {
  EnrollResult r;
  r.key = k;
  CsrRequest creq{req.subject, req.sans, SigScheme::Default, &challenge};
  auto csr = make_csr(s, k, creq);
  auto pkey = token_rsa_pkey(s, k);
  say(req, "Sending the request to " + opts.url + "...");
  auto issued = scep::enroll(opts, ca, csr.get(), pkey.get()); // the CA's answer from pinned(): asked once
  std::vector<ossl::X509Ptr> certs;
  certs.push_back(std::move(issued.cert));
  for (auto& c : issued.chain) certs.push_back(std::move(c));
  say(req, "Writing the certificate and its chain to the token...");
  r.pickup = pickup_certificates(s, std::move(certs), {"", req.allow_expired}, opts.url);
  if (r.pickup.key.id != k.id)
    fail(ExitCode::Ca, "The CA at " + opts.url + " issued a certificate for another key.");
  return r;
}

scep::Options pinned(const EnrollRequest& req, std::string& fp, scep::CaInfo& ca) {
  if (req.algorithm != Algorithm::Rsa2048 && req.algorithm != Algorithm::Rsa3072 && req.algorithm != Algorithm::Rsa4096)
    fail(ExitCode::Usage, "SCEP enrollment needs an RSA key; " + algorithm_name(req.algorithm) + " cannot be used.",
         "Choose --algorithm rsa2048 (or rsa3072, rsa4096).");
  say(req, "Asking the CA at " + req.scep.url + " for its certificate...");
  ca = scep::get_ca(req.scep);
  fp = ossl::cert_fingerprint_sha256(ca.ca.get());
  scep::Options opts = req.scep;
  if (opts.ca_fingerprint.empty()) opts.ca_fingerprint = fp; // confirmed once: do not ask again
  return opts;
}
} // namespace

EnrollResult enroll(p11::Session& s, const EnrollRequest& req, const Secret& challenge) {
  std::string fp;
  scep::CaInfo ca;
  auto opts = pinned(req, fp, ca);
  say(req, "Generating a " + algorithm_name(req.algorithm) + " key '" + req.policy.label + "' on the token...");
  auto k = generate_key(s, req.algorithm, req.policy);
  try {
    auto r = run_enroll(s, k, req, challenge, opts, ca);
    r.ca_fingerprint = fp;
    return r;
  } catch (...) {
    destroy_key_noexcept(s, k);
    throw;
  }
}

EnrollResult enroll_existing(p11::Session& s, const KeyRef& k, const EnrollRequest& req, const Secret& challenge) {
  std::string fp;
  scep::CaInfo ca;
  auto opts = pinned(req, fp, ca);
  auto r = run_enroll(s, k, req, challenge, opts, ca);
  r.ca_fingerprint = fp;
  return r;
}

} // namespace tokenprov
