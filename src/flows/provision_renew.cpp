// SPDX-License-Identifier: Apache-2.0
// provision()'s renewal step (issue 17): the certificates on the token that
// expire within the window are renewed, each all or nothing by renew().
#include "provision_run.hpp"

#include "tokenprov/interrupt.hpp"
#include "tokenprov/renew.hpp"
#include "tokenprov/status.hpp"
#include "tokenprov/uri.hpp"

namespace tokenprov {

nlohmann::json RenewalOutcome::to_json() const {
  nlohmann::json j = {{"label", label},   {"id", id_hex},       {"rekey", rekey},
                      {"serial", serial}, {"not_after", not_after},
                      {"old_serial", old_serial}, {"old_not_after", old_not_after},
                      {"old_certificate_state", rekey ? "archived" : "deleted"}};
  if (rekey) j["archived"] = {{"label", archived_label}, {"id", archived_id_hex}};
  return j;
}

// Whether renewing the key labelled KEY_LABEL makes a new key: --rekey, else
// the profile's key of that label (renew = "rekey"); keys the profile does not
// know keep their key.
bool ProvisionRun::rekeys(const std::string& key_label) const {
  if (req_.rekey) return true;
  for (auto& spec : prof_.keys) {
    auto kvars = vars_;
    kvars["role"] = spec.role;
    if (expand_template(spec.label_template.empty() ? "{role}" : spec.label_template, kvars) == key_label)
      return spec.rekey;
  }
  return false;
}

void ProvisionRun::renew_expiring() {
  StatusRequest sr; // check_request() made sure the protocol has its CA, and that CMP is not asked to rekey
  sr.expiring_days = *req_.renew_within_days;
  auto report = session_status(*session_, token_, sr);
  int due = 0;
  for (auto& c : report.certificates) {
    // Leaf certificates whose private key is on the token; an archived key's is history, and one
    // this run has just put there is as new as the CA makes them.
    if (!c.expiring || c.authority || c.key_class != "private-key" || is_archived_label(c.key_label) ||
        issued_now_.count(c.serial))
      continue;
    ++due;
    check_interrupt(ExitCode::Ca, "between two renewals of provision");
    RenewRequest rr;
    rr.key = "id:" + to_hex(p11::Bytes(c.id.begin(), c.id.end()));
    rr.rekey = rekeys(c.key_label);
    rr.protocol = req_.protocol;
    rr.scep = req_.scep;
    rr.est = req_.est;
    if (req_.protocol == EnrollProtocol::Cmp) rr.cmp_kur = cmp_kur_exchange(req_.cmp);
    rr.progress = req_.progress;
    say("Renewing the certificate of '" + c.key_label + "' (" + (c.days_left < 0 ? "expired" : "expires") + " " +
        c.not_after + ")" + (rr.rekey ? " with a new key" : "") + "...");
    auto r = renew(*session_, rr);
    RenewalOutcome out;
    out.label = r.key.label;
    out.id_hex = to_hex(r.key.id);
    out.rekey = rr.rekey;
    if (r.archived_key) {
      out.archived_label = r.archived_label;
      out.archived_id_hex = to_hex(r.archived_key->id);
    }
    out.old_serial = ossl::serial_hex(r.old_cert.get());
    out.old_not_after = ossl::asn1_time_rfc3339(X509_get0_notAfter(r.old_cert.get()));
    out.serial = ossl::serial_hex(r.cert.get());
    out.not_after = ossl::asn1_time_rfc3339(X509_get0_notAfter(r.cert.get()));
    res_.renewals.push_back(std::move(out));
  }
  if (due == 0) say("No certificate on the token is due for renewal.");
}

} // namespace tokenprov
