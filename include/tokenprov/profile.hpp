// SPDX-License-Identifier: Apache-2.0
// Token profiles: what a token of a given model gets (module, PIN policy, the
// keys to make, backup and enrollment defaults), read from TOML files in
// tokens/. The file format is described in docs/profiles.md.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace tokenprov {

struct KeySpec {                  // one key the profile makes
  std::string role;               // "auth", "sign", "encrypt", ... free text, unique within profile
  std::string algorithm;          // rsa2048 rsa3072 rsa4096 ec-p256 ec-p384 ed25519
  std::vector<std::string> usage; // subset of: sign decrypt unwrap derive (fits the algorithm)
  bool exportable = false;
  std::string label_template; // e.g. "{role}-{user}"; placeholders {role} {user} {serial} {cn}
  bool backup = false;        // make a PKCS#12 backup when --backup-dir is given (requires exportable)
  std::string id;             // optional fixed CKA_ID, lower-case hex ("" = the tool picks one)
  bool rekey = false;         // renew = "rekey": a renewal makes a new key (the old one archived); default "same-key"
};

struct PinPolicy {
  std::size_t min_length = 4;
  std::size_t max_length = 64;
};

struct Profile {
  std::string name;        // file stem
  std::string source_path; // file it was read from
  std::string description;
  std::string module;                             // PKCS#11 module path, may be empty
  std::string token_label_template = "tp-{user}"; // placeholders {user} {serial} {cn}
  PinPolicy user_pin, so_pin;
  bool allow_export = true; // false: no key of this profile may ever be exported
  std::vector<KeySpec> keys;
  std::string backup_compat = "modern"; // modern|legacy
  std::size_t backup_password_min = 8;
  std::string scep_url;       // optional default
  std::string ca_fingerprint; // optional default (sha256, 64 lower-case hex digits)
  std::string protocol;           // "protocol": scep | cmp | est; empty: scep
  std::string cmp_url;            // [cmp] url
  std::string cmp_ca_fingerprint; // [cmp] ca_fingerprint (normalized like ca_fingerprint)
  // [est] csrattrs_allow: extensions /csrattrs may add to an EST request (names or dotted OIDs)
  std::vector<std::string> est_csrattrs_allow;
  std::string est_url;  // [est] url: the EST base (https://)
  std::string est_user; // [est] user: HTTP Basic user of the first enrollment

  // The key with this role, or nullptr.
  const KeySpec* find_key(const std::string& role) const;
};

// Loads a profile. Anything containing '/' or ending in ".toml" is a path;
// a name is looked up as NAME.toml in profile_search_dirs(). A missing file or
// a bad profile throws Error(BadInput) naming the file (and the field).
Profile load_profile(const std::string& name_or_path);

// Parses and validates profile text; SOURCE_NAME names the file in messages
// and gives the profile its name (its stem).
Profile parse_profile(const std::string& toml_text, const std::string& source_name);

// Replaces {name} placeholders from VARS; "{{" and "}}" are literal braces.
// A placeholder not in VARS, or an unbalanced brace, is Error(BadInput).
std::string expand_template(const std::string& templ, const std::map<std::string, std::string>& vars);

bool is_known_algorithm(const std::string& algorithm);
// rsa2048 rsa3072 rsa4096 ec-p256 ec-p384 ed25519, in that order.
const std::vector<std::string>& known_algorithms();

// Where load_profile looks for a name, in order: $TOKENPROV_PROFILE_DIR (when
// set), PREFIX/share/tokenprov/tokens/ beside the running binary (when it runs
// from PREFIX/bin and that folder exists), the configured install prefix's
// share/tokenprov/tokens/, the source tree's tokens/.
std::vector<std::string> profile_search_dirs();
// The names (file stems) of the profiles found there, sorted, without duplicates.
std::vector<std::string> list_profiles();

} // namespace tokenprov
