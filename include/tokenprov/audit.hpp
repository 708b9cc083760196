// SPDX-License-Identifier: Apache-2.0
// The audit log: append-only JSON Lines. Never a PIN, challenge or password:
// callers pass only identifiers (token serial, key ids, certificate serials).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace tokenprov {

// Appends one line {"time": RFC 3339, "operator": user, ...EVENT} to PATH
// with O_APPEND and fsync. Does nothing when PATH is empty. Error(BadInput)
// when the log cannot be written.
void audit_append(const std::string& path, nlohmann::json event);

// Checks, before any token is touched, that PATH can be appended to: opens it
// (creating it empty, mode 0600) as audit_append() does and checks it is a
// regular file. Error(BadInput) naming the log otherwise; nothing when PATH is
// empty. A log that cannot be written is found before a key is made.
void audit_check(const std::string& path);

std::string now_rfc3339();
std::string operator_name();

} // namespace tokenprov
