// SPDX-License-Identifier: Apache-2.0
// The backup exporter (PKCS#12) where the key policy permits, and restore.
#pragma once

#include "tokenprov/keys.hpp"
#include "tokenprov/pkcs12.hpp"
#include "tokenprov/secret.hpp"

#include <string>

namespace tokenprov {

struct BackupRequest {
  std::string key;      // selector
  std::string out;      // file path
  pkcs12::Compat compat = pkcs12::Compat::Modern;
  bool cert_only = false;
  bool force = false;
  bool profile_forbids_export = false; // the profile in use forbids export
  std::string profile_name;
};

struct BackupResult {
  KeyRef key;
  std::string path;
  bool with_key = false;
  std::size_t chain = 0;
  std::string leaf_subject;
};

// Refuses (Error(Policy), no file) a key whose CKA_EXTRACTABLE is false or
// whose profile forbids export. Takes the key out by wrapping it under a
// session-only AES-256 key (the mechanism negotiated in key_wrap.hpp), builds the PKCS#12, reads
// it back, and writes it atomically with mode 0600.
BackupResult make_backup(const p11::Session& s, const BackupRequest& req, const Secret& password);

// The key REQ names, checked as make_backup checks it (the policy refusals,
// Error(Policy)), so a caller can refuse before asking for a password.
KeyRef backup_key(const p11::Session& s, const BackupRequest& req);
// make_backup for a key backup_key() returned.
BackupResult make_backup(const p11::Session& s, const BackupRequest& req, const KeyRef& k, const Secret& password);

// Why a key cannot be exported, or empty when it can.
std::string export_refusal(const p11::Session& s, const KeyRef& k);

struct RestoreRequest {
  std::string in;
  std::string label;      // default: the file's friendlyName, else the leaf's CN
  bool exportable = false;
  unsigned usage = 0; // Usage bits (key_policy.hpp); 0: default_usage() of the backup's key type
};

struct RestoreResult {
  KeyRef key;
  unsigned usage = 0; // the usage the key was given
  std::size_t certs_written = 0;
  std::string leaf_subject;
  bool resumed = false; // completed what an interrupted restore of the same key left
};

// Puts a PKCS#12's key (sensitive, private, extractable only if asked), leaf
// and chain on the token under one CKA_ID and label, all or nothing. When a
// restore of the same key was cut short (the token pulled out before the
// rollback could run), its private key is kept and the rest is completed.
RestoreResult restore_backup(p11::Session& s, const RestoreRequest& req, const Secret& password);

// The private key as a PKCS#8 DER, wrapped out of the token (for tests/benchmarks).
ossl::EvpPkeyPtr extract_private_key(const p11::Session& s, const KeyRef& k);

} // namespace tokenprov
