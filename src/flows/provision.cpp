// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/provision.hpp"

#include "cert_dir.hpp"

#include "tokenprov/backup.hpp"
#include "tokenprov/capabilities.hpp"
#include "tokenprov/fileio.hpp"
#include "tokenprov/interrupt.hpp"
#include "tokenprov/utf8.hpp"
#include "tokenprov/sigcheck.hpp"
#include "tokenprov/token_admin.hpp"
#include "tokenprov/token_lock.hpp"
#include "tokenprov/uri.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <dirent.h>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sys/stat.h>

namespace tokenprov {

namespace {

std::string cn_of(const std::string& subject) {
  return ossl::dn_common_name(subject);
}

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

} // namespace

std::string user_from_subject(const std::string& subject) {
  std::string cn = cn_of(subject);
  std::string out;
  for (char c : cn) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u))
      out.push_back(static_cast<char>(std::tolower(u)));
    else if ((c == ' ' || c == '-' || c == '_' || c == '.') && !out.empty() && out.back() != '-')
      out.push_back('-');
  }
  while (!out.empty() && out.back() == '-')
    out.pop_back();
  return out.empty() ? "user" : out;
}

nlohmann::json ProvisionResult::to_json() const {
  nlohmann::json keys_j = nlohmann::json::array();
  for (auto& k : keys) {
    nlohmann::json j = {{"role", k.role},           {"label", k.label},
                        {"id", k.id_hex},           {"algorithm", k.algorithm},
                        {"key", k.key_state},       {"certificate", k.cert_state},
                        {"backup", k.backup_state}, {"signature_check", k.signature_check}};
    if (!k.cert_serial.empty()) j["certificate_serial"] = k.cert_serial;
    if (!k.cert_subject.empty()) j["subject"] = k.cert_subject;
    if (!k.csr_file.empty()) j["csr_file"] = k.csr_file;
    if (!k.backup_file.empty()) j["backup_file"] = k.backup_file;
    keys_j.push_back(j);
  }
  return {{"token", {{"label", token.label}, {"serial", token.serial}, {"uri", token_uri(token)}}},
          {"initialized", initialized_now},
          {"complete", complete},
          {"state", complete ? "done" : "awaiting-certificate"},
          {"keys", keys_j}};
}

bool enrolls(const ProvisionRequest& req) {
  switch (req.protocol) {
  case EnrollProtocol::Scep: return !req.scep.url.empty();
  case EnrollProtocol::Cmp: return !req.cmp.url.empty();
  case EnrollProtocol::Est: return false;
  }
  return false;
}

ProvisionResult provision(const ProvisionRequest& req, const ProvisionSecrets& sec) {
  auto say = [&](const std::string& line) {
    if (req.progress) req.progress(line);
  };
  const Profile& prof = req.profile;
  if (prof.keys.empty()) fail(ExitCode::BadInput, "The profile '" + prof.name + "' lists no keys.");
  ossl::parse_dn(req.subject);
  require_utf8(req.user, "user");
  require_utf8(req.token_label, "token label");
  for (auto& s : req.sans)
    check_san(s);
  bool have_source = enrolls(req) || !req.csr_dir.empty() || !req.cert_dir.empty();
  if (!have_source)
    fail(ExitCode::Usage,
         "Say where the certificates come from: --scep-url or --cmp-url (or the profile's), --csr-dir, or --cert-dir.");
  if (!req.backup_dir.empty() && !sec.backup_password)
    fail(ExitCode::Usage, "--backup-dir needs --password-source for the backup password.");
  if (!sec.user_pin) fail(ExitCode::Pin, "No user PIN was given.");
  // The folders, before anything is written to the token.
  if (!req.cert_dir.empty()) (void)cert_dir::list(req.cert_dir);
  for (auto* d : {&req.csr_dir, &req.backup_dir})
    if (!d->empty() && !is_directory(*d))
      fail(ExitCode::BadInput, "The folder '" + *d + "' does not exist (or is not a folder).",
           "Create it, or name another one.");

  std::map<std::string, std::string> vars{{"user", req.user.empty() ? user_from_subject(req.subject) : req.user},
                                          {"cn", cn_of(req.subject)}};
  auto module = p11::Module::load(req.module_path);

  // Which token. One run per token (token_lock.hpp): a blank token is chosen
  // again under the module's blank-token lock, an initialized one is read
  // again under its own lock (another run may have changed it meanwhile).
  p11::TokenInfo token;
  auto choose = [&]() {
    p11::TokenInfo t;
    if (req.token == "blank") {
      t = find_token(*module, "", TokenState::Blank);
    } else if (!req.token.empty()) {
      t = find_token(*module, req.token, TokenState::Any);
    } else {
      vars["serial"] = "";
      std::string want = expand_template(prof.token_label_template, vars);
      bool found = false;
      auto scan = module->scan();
      for (auto& c : scan.tokens)
        if (c.initialized() && c.label == utf8_prefix(want, 32)) {
          t = c;
          found = true;
          break;
        }
      // The token this profile names may be the one the module cannot read: never
      // take a blank token in its place.
      if (!found && !scan.unreadable.empty())
        fail(ExitCode::Token,
             "No readable token is labelled '" + utf8_prefix(want, 32) + "', and the module cannot read the token in slot " +
                 std::to_string(scan.unreadable.front().slot_id) + " (" + p11::rv_name(scan.unreadable.front().rv) +
                 "); no blank token was taken in its place.",
             "Re-insert or repair that token, or name the token to use with --token (--token blank for a new one).");
      if (!found) t = find_token(*module, "", TokenState::Blank);
    }
    return t;
  };
  TokenLock blank_lock, token_lock;
  token = choose();
  if (!token.initialized()) {
    blank_lock = lock_blank_tokens(*module);
    token = choose();
  }
  if (token.initialized()) {
    token_lock = lock_token(token);
    auto again = module->token_info(token.slot_id);
    if (token_lock_key(again) != token_lock_key(token))
      fail(ExitCode::Token,
           "The token '" + token.label + "' (serial " + token.serial +
               ") changed while this run waited for another run to finish with it; nothing was changed.",
           "See what it holds now with 'tokenprov list', then run again.");
    token = again;
    blank_lock.release();
  }
  vars["serial"] = token.serial;

  ProvisionResult res;
  // Set when C_InitToken ran here: the token holds nothing but what this run
  // makes, and the searches for earlier keys, certificates and leftovers (a
  // card round trip each) are skipped (issue 19).
  bool erased = false;
  std::set<std::string> made_labels; // keys this run generated, by label
  // Step 1: initialize a blank token.
  if (!token.initialized()) {
    if (!sec.so_pin && sec.so_pin_problem) throw *sec.so_pin_problem;
    if (!sec.so_pin) fail(ExitCode::Pin, "The token is blank: initializing it needs the SO PIN (--so-pin-source).");
    // Every key the profile makes will be generated here: a module that
    // cannot is refused before the token is initialized.
    for (auto& spec : prof.keys)
      require_keygen(*module, token.slot_id, parse_algorithm(spec.algorithm), true);
    std::string label = req.token_label.empty() ? expand_template(prof.token_label_template, vars) : req.token_label;
    label = utf8_prefix(label, 32); // a token label is 32 bytes: cut at a character boundary
    // Never two tokens with one label: a token that carries it already (another
    // run's, made from another blank token) is refused, not duplicated.
    for (auto& t : module->tokens())
      if (t.initialized() && t.label == label)
        fail(ExitCode::Exists,
             "A token labelled '" + label + "' is present already (serial " + t.serial + ", slot " +
                 std::to_string(t.slot_id) + "); no blank token was initialized with the same label.",
             "To go on with that token, run again with --token '" + label +
                 "'; for a new token give it another label (--token-label or the user).");
    say("Initializing the blank token " +
        (token.serial.empty() ? "in slot " + std::to_string(token.slot_id) : "(serial " + token.serial + ")") +
        " as '" + label + "'...");
    InitRequest ir{req.module_path, "serial:" + token.serial, label, false, prof.user_pin.min_length};
    if (token.serial.empty()) ir.selector = "";
    ir.slot = token.slot_id; // found just above: no second search, no second read
    ir.known = token;
    auto found = init_token_only(ir, *sec.so_pin, *sec.user_pin, &token_lock);
    blank_lock.release(); // the token is initialized and this run's (token_lock)
    token = finish_token_init(module, found, label, *sec.so_pin, *sec.user_pin, prof.user_pin.min_length);
    res.initialized_now = true;
    erased = true;
  } else if (!token.user_pin_initialized()) {
    // An earlier run initialized it and was cut short before C_InitPIN.
    if (!sec.so_pin && sec.so_pin_problem) throw *sec.so_pin_problem;
    if (!sec.so_pin)
      fail(ExitCode::Pin,
           "The token '" + token.label + "' (serial " + token.serial +
               ") has no user PIN yet (an interrupted initialization): setting it needs the SO PIN (--so-pin-source).");
    say("Setting the user PIN of token '" + token.label + "' (serial " + token.serial +
        "), which an interrupted run initialized...");
    token = set_first_user_pin(module, token, *sec.so_pin, *sec.user_pin, prof.user_pin.min_length);
    res.initialized_now = true;
  } else {
    say("Using token '" + token.label + "' (serial " + token.serial + ").");
  }
  res.token = token;

  p11::Session s(module, token.slot_id, true);
  if (token.login_required()) s.login(CKU_USER, *sec.user_pin);

  bool complete = true;
  for (auto& spec : prof.keys) {
    // SIGINT, SIGTERM, SIGHUP: stop between keys (what earlier keys finished stays).
    check_interrupt(req.scep.url.empty() ? ExitCode::Token : ExitCode::Ca, "between two keys of provision");
    KeyOutcome out;
    out.role = spec.role;
    out.algorithm = spec.algorithm;
    auto kvars = vars;
    kvars["role"] = spec.role;
    out.label = expand_template(spec.label_template.empty() ? "{role}" : spec.label_template, kvars);
    Algorithm alg = parse_algorithm(spec.algorithm);

    // Step 2: the key (reused when this profile's run made it before).
    std::optional<KeyRef> key;
    // On a token erased by this run, only a key of this run could be in the way.
    bool fresh = erased && !made_labels.count(out.label);
    if (!fresh) {
      p11::Attributes t;
      t.add_class(CKO_PRIVATE_KEY).add_string(CKA_LABEL, out.label);
      auto hits = s.find(t, 2);
      if (hits.size() > 1)
        fail(ExitCode::Exists,
             "Token '" + token.label + "' (serial " + token.serial + ") holds more than one private key labelled '" +
                 out.label + "'; it was left as it is.",
             "Remove the extra key (tokenprov list shows their ids) and run again.");
      // complete_key_pair: a run cut short between the two CKA_ID writes of keygen left the pair apart.
      if (hits.size() == 1) key = complete_key_pair(s, key_at(s, hits[0]));
    }
    bool generated = false;
    if (key) {
      out.key_state = "present";
      say("Key '" + out.label + "' is on the token already.");
    } else {
      // A run killed inside C_GenerateKeyPair can leave the public half
      // alone; it would block the label. Only a public key with this label
      // and no private key beside it is removed.
      p11::Attributes pt;
      pt.add_class(CKO_PUBLIC_KEY).add_string(CKA_LABEL, out.label);
      for (auto h : fresh ? std::vector<CK_OBJECT_HANDLE>{} : s.find(pt)) {
        auto id = s.attr_bytes(h, CKA_ID).value_or(p11::Bytes{});
        p11::Attributes mate;
        mate.add_class(CKO_PRIVATE_KEY).add_bytes(CKA_ID, id);
        if (s.find(mate, 1).empty()) {
          say("Removing the public key '" + out.label + "' left without its private key by an interrupted run.");
          s.destroy(h);
        }
      }
      KeyPolicy pol;
      pol.label = out.label;
      pol.exportable = spec.exportable && prof.allow_export;
      pol.usage = spec.usage.empty() ? 0 : parse_usage(spec.usage, alg);
      if (!spec.id.empty()) {
        auto raw = from_hex(spec.id);
        pol.id.assign(raw.begin(), raw.end());
      }
      say("Generating " + spec.algorithm + " key '" + out.label + "'" + (pol.exportable ? " (exportable)" : "") +
          "...");
      pol.fresh_token = fresh; // require_keygen() ran for every key before C_InitToken
      key = generate_key(s, alg, pol);
      generated = true;
      made_labels.insert(out.label);
      out.key_state = "generated";
    }
    out.id_hex = to_hex(key->id);

    // Step 3: the certificate.
    ossl::X509Ptr leaf_cert; // the certificate now on the token, for the signature check
    try {
      auto want = ossl::spki_der(public_key(s, *key).get()); // read from the token once per key
      // A key generated just now has no certificate on the token yet.
      if (auto leaf = generated ? nullptr : find_leaf_certificate(s, *key, want)) {
        out.cert_state = "present";
        out.cert_serial = ossl::serial_hex(leaf.get());
        out.cert_subject = ossl::name_oneline(X509_get_subject_name(leaf.get()));
        leaf_cert = std::move(leaf);
      } else {
        bool got = false;
        if (!req.cert_dir.empty()) {
          for (auto& f : cert_dir::files_for(req.cert_dir, want)) {
            std::vector<ossl::X509Ptr> certs;
            try {
              certs = load_certificate_file(f);
            } catch (const Error&) {
              continue; // not a certificate file
            }
            bool mine =
                std::any_of(certs.begin(), certs.end(), [&](auto& c) { return ossl::spki_der(c.get()) == want; });
            if (!mine) continue;
            say("Picking up the certificate for '" + out.label + "' from " + f + "...");
            auto pr = pickup_certificates(s, std::move(certs), {"", req.allow_expired, *key}, f);
            out.cert_state = "picked-up";
            out.cert_serial = ossl::serial_hex(pr.leaf.get());
            out.cert_subject = ossl::name_oneline(X509_get_subject_name(pr.leaf.get()));
            leaf_cert = std::move(pr.leaf);
            got = true;
            break;
          }
        }
        if (!got && enrolls(req)) {
          if (!sec.challenge)
            fail(ExitCode::Ca, req.protocol == EnrollProtocol::Scep
                                   ? "Enrolling over SCEP needs the challenge (--challenge-source)."
                                   : "Enrolling over " + protocol_name(req.protocol) + " needs the CA's secret (--secret-source).");
          EnrollRequest er;
          er.protocol = req.protocol;
          er.scep = req.scep;
          er.cmp = req.cmp;
          er.algorithm = alg;
          er.subject = req.subject;
          er.sans = req.sans;
          er.allow_expired = req.allow_expired;
          er.policy.label = out.label;
          auto r = enroll_existing(s, *key, er, *sec.challenge);
          out.cert_state = "enrolled";
          out.cert_serial = ossl::serial_hex(r.pickup.leaf.get());
          out.cert_subject = ossl::name_oneline(X509_get_subject_name(r.pickup.leaf.get()));
          leaf_cert = std::move(r.pickup.leaf);
          got = true;
        }
        if (!got && !req.csr_dir.empty()) {
          auto csr = make_csr(s, *key, {req.subject, req.sans, SigScheme::Default, nullptr, true});
          out.csr_file = req.csr_dir + "/" + file_stem(token, out.label) + ".csr.pem";
          write_file_atomic(out.csr_file, ossl::to_pem(csr.get()), 0644, true);
          say("Wrote the request for '" + out.label + "' to " + out.csr_file +
              "; run again with --cert-dir once the CA has answered.");
          out.cert_state = "awaiting-certificate";
        } else if (!got) {
          out.cert_state = "awaiting-certificate";
        }
      }
    } catch (const Error& e) {
      if (generated) destroy_key_noexcept(s, *key);
      throw Error(e.code(), std::string(e.what()) + (generated ? " The key made for it was removed again." : ""),
                  e.hint().empty() ? "Fix the cause and run the same command again: what is done is kept." : e.hint());
    }
    if (out.cert_state == "awaiting-certificate") complete = false;

    // Step 3b: the token signs, the certificate verifies (--check-signature).
    if (!req.check_signature) {
      out.signature_check = "not-requested";
    } else if (!leaf_cert) {
      out.signature_check = "awaiting-certificate";
    } else {
      say("Checking that '" + out.label + "' signs and its certificate verifies...");
      check_signature(s, *key, leaf_cert.get());
      out.signature_check = "ok";
    }

    // Step 4: the backup.
    if (req.backup_dir.empty() || !spec.backup) {
      out.backup_state = "not-requested";
    } else if (!spec.exportable || !prof.allow_export || !export_refusal(s, *key).empty()) {
      out.backup_state = "not-permitted";
    } else if (out.cert_state == "awaiting-certificate") {
      out.backup_state = "awaiting-certificate";
    } else {
      out.backup_file = req.backup_dir + "/" + file_stem(token, out.label) + ".p12";
      if (file_exists(out.backup_file)) {
        out.backup_state = "present";
      } else {
        say("Writing the backup of '" + out.label + "' to " + out.backup_file + "...");
        BackupRequest br;
        br.key = "id:" + out.id_hex;
        br.out = out.backup_file;
        br.compat = pkcs12::parse_compat(prof.backup_compat);
        make_backup(s, br, *sec.backup_password);
        out.backup_state = "written";
      }
    }
    res.keys.push_back(std::move(out));
  }
  res.complete = complete;
  return res;
}

} // namespace tokenprov
