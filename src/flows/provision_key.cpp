// SPDX-License-Identifier: Apache-2.0
// provision()'s steps for one key of the profile: ensure the key, obtain its
// certificate (on the token already, from --cert-dir, by enrollment, or a CSR
// written to --csr-dir), check the signature, back it up.
#include "cert_dir.hpp"
#include "provision_run.hpp"

#include "tokenprov/backup.hpp"
#include "tokenprov/fileio.hpp"
#include "tokenprov/interrupt.hpp"
#include "tokenprov/sigcheck.hpp"
#include "tokenprov/uri.hpp"

#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>

namespace tokenprov {

namespace {

std::string safe_file_part(std::string s) {
  for (auto& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  return s;
}

// The start of the names of a token's request and backup files: its serial,
// or its label where the module gives no serial that tells tokens apart
// (tpm2-pkcs11 and NSS answer 0000000000000000 for every token).
std::string file_stem(const p11::TokenInfo& token, const std::string& key_label) {
  bool real_serial = token.serial.find_first_not_of('0') != std::string::npos;
  return safe_file_part((real_serial ? token.serial : token.label) + "-" + key_label);
}

void note_certificate(KeyOutcome& out, CertState state, X509* leaf) {
  out.cert_state = state;
  out.cert_serial = ossl::serial_hex(leaf);
  out.cert_subject = ossl::name_oneline(X509_get_subject_name(leaf));
}

} // namespace

KeyOutcome ProvisionRun::run_key(const KeySpec& spec) {
  // SIGINT, SIGTERM, SIGHUP: stop between keys (what earlier keys finished stays).
  check_interrupt(req_.scep.url.empty() ? ExitCode::Token : ExitCode::Ca, "between two keys of provision");
  KeyOutcome out;
  out.role = spec.role;
  out.algorithm = spec.algorithm;
  auto kvars = vars_;
  kvars["role"] = spec.role;
  out.label = expand_template(spec.label_template.empty() ? "{role}" : spec.label_template, kvars);
  Algorithm alg = parse_algorithm(spec.algorithm);

  std::optional<KeyRef> key;
  bool generated = ensure_key(spec, out, key);
  out.id_hex = to_hex(key->id);
  auto leaf = obtain_certificate(out, *key, alg, generated);
  if (out.cert_state == CertState::Enrolled || out.cert_state == CertState::PickedUp) issued_now_.insert(out.cert_serial);
  check_signature_step(out, *key, leaf.get());
  back_up(spec, out, *key);
  return out;
}

// The key: the one this profile's run made before, else a new one. Returns
// whether it was generated now.
bool ProvisionRun::ensure_key(const KeySpec& spec, KeyOutcome& out, std::optional<KeyRef>& key) {
  p11::Session& s = *session_;
  // On a token erased by this run, only a key of this run could be in the way.
  bool fresh = erased_ && !made_labels_.count(out.label);
  if (!fresh) {
    p11::Attributes t;
    t.add_class(CKO_PRIVATE_KEY).add_string(CKA_LABEL, out.label);
    auto hits = s.find(t, 2);
    if (hits.size() > 1)
      fail(ExitCode::Exists,
           "Token '" + token_.label + "' (serial " + token_.serial + ") holds more than one private key labelled '" +
               out.label + "'; it was left as it is.",
           "Remove the extra key (tokenprov list shows their ids) and run again.");
    // complete_key_pair: a run cut short between the two CKA_ID writes of keygen left the pair apart.
    if (hits.size() == 1) key = complete_key_pair(s, key_at(s, hits[0]));
  }
  if (key) {
    out.key_state = KeyState::Present;
    say("Key '" + out.label + "' is on the token already.");
    return false;
  }
  remove_orphan_public_keys(out.label, fresh);
  Algorithm alg = parse_algorithm(spec.algorithm);
  KeyPolicy pol;
  pol.label = out.label;
  pol.exportable = spec.exportable && prof_.allow_export;
  pol.usage = spec.usage.empty() ? 0 : parse_usage(spec.usage, alg);
  if (!spec.id.empty()) {
    auto raw = from_hex(spec.id);
    pol.id.assign(raw.begin(), raw.end());
  }
  say("Generating " + spec.algorithm + " key '" + out.label + "'" + (pol.exportable ? " (exportable)" : "") + "...");
  pol.fresh_token = fresh; // require_keygen() ran for every key before C_InitToken
  key = generate_key(s, alg, pol);
  made_labels_.insert(out.label);
  out.key_state = KeyState::Generated;
  return true;
}

// A run killed inside C_GenerateKeyPair can leave the public half alone; it
// would block the label. Only a public key with this label and no private key
// beside it is removed.
void ProvisionRun::remove_orphan_public_keys(const std::string& label, bool fresh) {
  if (fresh) return;
  p11::Session& s = *session_;
  p11::Attributes pt;
  pt.add_class(CKO_PUBLIC_KEY).add_string(CKA_LABEL, label);
  for (auto h : s.find(pt)) {
    auto id = s.attr_bytes(h, CKA_ID).value_or(p11::Bytes{});
    p11::Attributes mate;
    mate.add_class(CKO_PRIVATE_KEY).add_bytes(CKA_ID, id);
    if (s.find(mate, 1).empty()) {
      say("Removing the public key '" + label + "' left without its private key by an interrupted run.");
      s.destroy(h);
    }
  }
}

// The certificate now on the token for KEY, or null while it awaits one. A
// failure removes the key this run generated for it.
ossl::X509Ptr ProvisionRun::obtain_certificate(KeyOutcome& out, const KeyRef& key, Algorithm alg, bool generated) {
  p11::Session& s = *session_;
  try {
    auto want = ossl::spki_der(public_key(s, key).get()); // read from the token once per key
    // A key generated just now has no certificate on the token yet.
    if (auto leaf = generated ? nullptr : find_leaf_certificate(s, key, want)) {
      note_certificate(out, CertState::Present, leaf.get());
      return leaf;
    }
    if (!req_.cert_dir.empty())
      if (auto leaf = from_cert_dir(out, key, want)) return leaf;
    if (enrolls(req_)) return by_enrollment(out, key, alg);
    out.cert_state = CertState::AwaitingCertificate;
    if (!req_.csr_dir.empty()) write_csr(out, key);
    return nullptr;
  } catch (const Error& e) {
    if (generated) destroy_key_noexcept(s, key);
    throw Error(e.code(), std::string(e.what()) + (generated ? " The key made for it was removed again." : ""),
                e.hint().empty() ? "Fix the cause and run the same command again: what is done is kept." : e.hint());
  }
}

ossl::X509Ptr ProvisionRun::from_cert_dir(KeyOutcome& out, const KeyRef& key, const ossl::Bytes& want) {
  for (auto& f : cert_dir::files_for(req_.cert_dir, want)) {
    std::vector<ossl::X509Ptr> certs;
    try {
      certs = load_certificate_file(f);
    } catch (const Error&) {
      continue; // not a certificate file
    }
    bool mine = std::any_of(certs.begin(), certs.end(), [&](auto& c) { return ossl::spki_der(c.get()) == want; });
    if (!mine) continue;
    say("Picking up the certificate for '" + out.label + "' from " + f + "...");
    auto pr = pickup_certificates(*session_, std::move(certs), {"", req_.allow_expired, key}, f);
    note_certificate(out, CertState::PickedUp, pr.leaf.get());
    return std::move(pr.leaf);
  }
  return nullptr;
}

ossl::X509Ptr ProvisionRun::by_enrollment(KeyOutcome& out, const KeyRef& key, Algorithm alg) {
  if (!sec_.challenge) fail_no_enrollment_secret(req_.protocol);
  EnrollRequest er;
  er.protocol = req_.protocol;
  er.scep = req_.scep;
  er.cmp = req_.cmp;
  er.est = req_.est;
  er.csrattrs_allow = prof_.est_csrattrs_allow;
  er.algorithm = alg;
  er.subject = req_.subject;
  er.sans = req_.sans;
  er.allow_expired = req_.allow_expired;
  er.policy.label = out.label;
  auto r = enroll_existing(*session_, key, er, *sec_.challenge);
  note_certificate(out, CertState::Enrolled, r.pickup.leaf.get());
  return std::move(r.pickup.leaf);
}

void ProvisionRun::write_csr(KeyOutcome& out, const KeyRef& key) {
  auto csr = make_csr(*session_, key, {req_.subject, req_.sans, SigScheme::Default, nullptr, true});
  out.csr_file = req_.csr_dir + "/" + file_stem(token_, out.label) + ".csr.pem";
  write_file_atomic(out.csr_file, ossl::to_pem(csr.get()), 0644, true);
  say("Wrote the request for '" + out.label + "' to " + out.csr_file +
      "; run again with --cert-dir once the CA has answered.");
}

// The token signs, the certificate verifies (--check-signature).
void ProvisionRun::check_signature_step(KeyOutcome& out, const KeyRef& key, X509* leaf) {
  if (!req_.check_signature) {
    out.signature_check = SignatureCheck::NotRequested;
  } else if (!leaf) {
    out.signature_check = SignatureCheck::AwaitingCertificate;
  } else {
    say("Checking that '" + out.label + "' signs and its certificate verifies...");
    check_signature(*session_, key, leaf);
    out.signature_check = SignatureCheck::Ok;
  }
}

void ProvisionRun::back_up(const KeySpec& spec, KeyOutcome& out, const KeyRef& key) {
  if (req_.backup_dir.empty() || !spec.backup) {
    out.backup_state = BackupState::NotRequested;
  } else if (!spec.exportable || !prof_.allow_export || !export_refusal(*session_, key).empty()) {
    out.backup_state = BackupState::NotPermitted;
  } else if (out.cert_state == CertState::AwaitingCertificate) {
    out.backup_state = BackupState::AwaitingCertificate;
  } else {
    out.backup_file = req_.backup_dir + "/" + file_stem(token_, out.label) + ".p12";
    if (file_exists(out.backup_file)) {
      out.backup_state = BackupState::Present;
      return;
    }
    say("Writing the backup of '" + out.label + "' to " + out.backup_file + "...");
    BackupRequest br;
    br.key = "id:" + out.id_hex;
    br.out = out.backup_file;
    br.compat = pkcs12::parse_compat(prof_.backup_compat);
    make_backup(*session_, br, *sec_.backup_password);
    out.backup_state = BackupState::Written;
  }
}

} // namespace tokenprov
