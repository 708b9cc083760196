// SPDX-License-Identifier: Apache-2.0
// A profile's export policy for new keys: a profile with allow_export = false
// forbids asking for an exportable key (keygen --exportable, enroll
// --exportable, restore --exportable or a --role whose key is exportable).
// Checked before any secret is read and before the token is touched. backup
// refuses the export itself (BackupRequest::profile_forbids_export).
#pragma once

#include <string>

namespace tokenprov {

// What an exportable key was asked for: the refusal says what was left undone.
enum class ExportAsk { Keygen, Enroll, Restore };

// Error(Policy) when the key is to be EXPORTABLE and the profile PROFILE (its
// name as the user gave it; empty: no profile) does not ALLOW_EXPORT. Nothing
// otherwise.
void check_export_allowed(const std::string& profile, bool allow_export, bool exportable, ExportAsk ask);

} // namespace tokenprov
