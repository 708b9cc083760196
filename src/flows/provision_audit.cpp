// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/provision_audit.hpp"

#include "tokenprov/audit.hpp"
#include "tokenprov/error.hpp"

namespace tokenprov {

ProvisionResult provision_audited(const ProvisionRequest& req, const ProvisionSecrets& secrets,
                                  const std::string& audit_log) {
  audit_check(audit_log); // an unwritable log is found before the token is touched
  try {
    auto res = provision(req, secrets);
    audit_append(audit_log, {{"event", "provision"}, {"ok", true}, {"token", res.token.serial}, {"result", res.to_json()}});
    return res;
  } catch (const Error& e) {
    audit_append(audit_log, {{"event", "provision"},
                             {"ok", false},
                             {"error", {{"code", static_cast<int>(e.code())}, {"message", e.what()}}}});
    throw;
  }
}

} // namespace tokenprov
