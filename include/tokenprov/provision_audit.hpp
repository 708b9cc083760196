// SPDX-License-Identifier: Apache-2.0
// provision with its audit line (`provision --audit-log FILE`).
#pragma once

#include "tokenprov/provision.hpp"

#include <string>

namespace tokenprov {

// Runs provision() and appends one line to the audit log AUDIT_LOG (nothing
// when it is empty): {"event": "provision", "ok": true, "token": SERIAL,
// "result": ProvisionResult::to_json()} or, when provision() throws, {"event":
// "provision", "ok": false, "error": {"code", "message"}} before the Error goes
// on. A log that cannot be written is Error(BadInput) before the token is touched.
ProvisionResult provision_audited(const ProvisionRequest& req, const ProvisionSecrets& secrets,
                                  const std::string& audit_log);

} // namespace tokenprov
