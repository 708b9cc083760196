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

std::string now_rfc3339();
std::string operator_name();

} // namespace tokenprov
