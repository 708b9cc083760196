// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/provision.hpp"

#include "tokenprov/backup.hpp"
#include "tokenprov/capabilities.hpp"
#include "tokenprov/fileio.hpp"
#include "tokenprov/utf8.hpp"
#include "tokenprov/sigcheck.hpp"
#include "tokenprov/token_admin.hpp"
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

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) fail(ExitCode::BadInput, "Cannot read the folder '" + dir + "'.", "Check --cert-dir.");
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == ".." || n[0] == '.') continue;
    out.push_back(dir + "/" + n);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// What --cert-dir's files hold, read once per process: the raw bytes and the
// DER of each PEM block, per file, kept while the file's identity, size and
// modification time stay the same. A fleet looks for every token's key in the
// same folder of answers; reading and decoding every file again for every key
// made a fleet quadratic in its size.
struct FileBlobs {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  struct timespec mtime {};
  std::vector<ossl::Bytes> blobs; // the file's bytes, then each PEM block's DER
};
std::mutex g_blobs_mutex;
std::map<std::string, std::shared_ptr<const FileBlobs>>& blob_cache() {
  static std::map<std::string, std::shared_ptr<const FileBlobs>> c;
  return c;
}

std::shared_ptr<const FileBlobs> file_blobs(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return nullptr;
  auto same = [&](const FileBlobs& f) {
    return f.dev == st.st_dev && f.ino == st.st_ino && f.size == st.st_size && f.mtime.tv_sec == st.st_mtim.tv_sec &&
           f.mtime.tv_nsec == st.st_mtim.tv_nsec;
  };
  {
    std::lock_guard<std::mutex> lock(g_blobs_mutex);
    auto it = blob_cache().find(path);
    if (it != blob_cache().end() && same(*it->second)) return it->second;
  }
  auto f = std::make_shared<FileBlobs>();
  f->dev = st.st_dev;
  f->ino = st.st_ino;
  f->size = st.st_size;
  f->mtime = st.st_mtim;
  try {
    f->blobs.push_back(read_input_file(path, input::certificate));
  } catch (const Error&) {
    return nullptr;
  }
  const ossl::Bytes& data = f->blobs.front();
  ossl::BioPtr b(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  char *name = nullptr, *header = nullptr;
  unsigned char* der = nullptr;
  long len = 0;
  while (b && PEM_read_bio(b.get(), &name, &header, &der, &len) == 1) {
    f->blobs.emplace_back(der, der + len);
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
  }
  ERR_clear_error();
  std::lock_guard<std::mutex> lock(g_blobs_mutex);
  blob_cache()[path] = f;
  return f;
}

// Whether the file at PATH visibly carries the public key WANT (DER
// SubjectPublicKeyInfo): its bytes, or a PEM block's, contain WANT. Cheap next
// to parsing it: OpenSSL 3 decodes the key of every certificate it parses.
bool may_hold_key(const std::string& path, const ossl::Bytes& want) {
  auto f = file_blobs(path);
  if (!f) return false;
  std::boyer_moore_horspool_searcher search(want.begin(), want.end());
  return std::any_of(f->blobs.begin(), f->blobs.end(), [&](const ossl::Bytes& b) {
    return std::search(b.begin(), b.end(), search) != b.end(); // DER, PKCS#7, or a PEM block
  });
}

// The files of --cert-dir in the order to try them for the key WANT: those
// that visibly carry it first, then the rest (a certificate could encode the
// key differently). In a folder of many answers (a fleet's) only the right
// file gets parsed.
std::vector<std::string> cert_files_for(const std::string& dir, const ossl::Bytes& want) {
  auto files = list_dir(dir);
  std::vector<char> likely(files.size());
  for (std::size_t i = 0; i < files.size(); ++i)
    likely[i] = may_hold_key(files[i], want);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < files.size(); ++i)
    if (likely[i]) out.push_back(files[i]);
  for (std::size_t i = 0; i < files.size(); ++i)
    if (!likely[i]) out.push_back(files[i]);
  return out;
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
  bool have_source = !req.scep.url.empty() || !req.csr_dir.empty() || !req.cert_dir.empty();
  if (!have_source)
    fail(ExitCode::Usage,
         "Say where the certificates come from: --scep-url (or the profile's), --csr-dir, or --cert-dir.");
  if (!req.backup_dir.empty() && !sec.backup_password)
    fail(ExitCode::Usage, "--backup-dir needs --password-source for the backup password.");
  if (!sec.user_pin) fail(ExitCode::Pin, "No user PIN was given.");
  // The folders, before anything is written to the token.
  if (!req.cert_dir.empty()) (void)list_dir(req.cert_dir);
  for (auto* d : {&req.csr_dir, &req.backup_dir})
    if (!d->empty() && !is_directory(*d))
      fail(ExitCode::BadInput, "The folder '" + *d + "' does not exist (or is not a folder).",
           "Create it, or name another one.");

  std::map<std::string, std::string> vars{{"user", req.user.empty() ? user_from_subject(req.subject) : req.user},
                                          {"cn", cn_of(req.subject)}};
  auto module = p11::Module::load(req.module_path);

  // Which token.
  p11::TokenInfo token;
  if (req.token == "blank") {
    token = find_token(*module, "", TokenState::Blank);
  } else if (!req.token.empty()) {
    token = find_token(*module, req.token, TokenState::Any);
  } else {
    vars["serial"] = "";
    std::string want = expand_template(prof.token_label_template, vars);
    bool found = false;
    auto scan = module->scan();
    for (auto& t : scan.tokens)
      if (t.initialized() && t.label == utf8_prefix(want, 32)) {
        token = t;
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
    if (!found) token = find_token(*module, "", TokenState::Blank);
  }
  vars["serial"] = token.serial;

  ProvisionResult res;
  // Step 1: initialize a blank token.
  if (!token.initialized()) {
    if (!sec.so_pin) fail(ExitCode::Pin, "The token is blank: initializing it needs the SO PIN (--so-pin-source).");
    // Every key the profile makes will be generated here: a module that
    // cannot is refused before the token is initialized.
    for (auto& spec : prof.keys)
      require_keygen(*module, token.slot_id, parse_algorithm(spec.algorithm), true);
    std::string label = req.token_label.empty() ? expand_template(prof.token_label_template, vars) : req.token_label;
    label = utf8_prefix(label, 32); // a token label is 32 bytes: cut at a character boundary
    say("Initializing the blank token " +
        (token.serial.empty() ? "in slot " + std::to_string(token.slot_id) : "(serial " + token.serial + ")") +
        " as '" + label + "'...");
    InitRequest ir{req.module_path, "serial:" + token.serial, label, false, prof.user_pin.min_length};
    if (token.serial.empty()) ir.selector = "";
    ir.slot = token.slot_id; // found just above: no second search
    token = init_token(ir, *sec.so_pin, *sec.user_pin);
    res.initialized_now = true;
  } else if (!token.user_pin_initialized()) {
    // An earlier run initialized it and was cut short before C_InitPIN.
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
    KeyOutcome out;
    out.role = spec.role;
    out.algorithm = spec.algorithm;
    auto kvars = vars;
    kvars["role"] = spec.role;
    out.label = expand_template(spec.label_template.empty() ? "{role}" : spec.label_template, kvars);
    Algorithm alg = parse_algorithm(spec.algorithm);

    // Step 2: the key (reused when this profile's run made it before).
    std::optional<KeyRef> key;
    {
      p11::Attributes t;
      t.add_class(CKO_PRIVATE_KEY).add_string(CKA_LABEL, out.label);
      auto hits = s.find(t, 2);
      if (hits.size() > 1)
        fail(ExitCode::Exists,
             "Token '" + token.label + "' (serial " + token.serial + ") holds more than one private key labelled '" +
                 out.label + "'; it was left as it is.",
             "Remove the extra key (tokenprov list shows their ids) and run again.");
      // complete_key_pair: a run cut short between the two CKA_ID writes of keygen left the pair apart.
      if (hits.size() == 1)
        key = complete_key_pair(s, find_key(s, "id:" + to_hex(s.attr_bytes(hits[0], CKA_ID).value_or(p11::Bytes{}))));
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
      for (auto h : s.find(pt)) {
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
      key = generate_key(s, alg, pol);
      generated = true;
      out.key_state = "generated";
    }
    out.id_hex = to_hex(key->id);

    // Step 3: the certificate.
    ossl::X509Ptr leaf_cert; // the certificate now on the token, for the signature check
    try {
      auto want = ossl::spki_der(public_key(s, *key).get()); // read from the token once per key
      if (auto leaf = find_leaf_certificate(s, *key, want)) {
        out.cert_state = "present";
        out.cert_serial = ossl::serial_hex(leaf.get());
        out.cert_subject = ossl::name_oneline(X509_get_subject_name(leaf.get()));
        leaf_cert = std::move(leaf);
      } else {
        bool got = false;
        if (!req.cert_dir.empty()) {
          for (auto& f : cert_files_for(req.cert_dir, want)) {
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
        if (!got && !req.scep.url.empty()) {
          if (!sec.challenge) fail(ExitCode::Ca, "Enrolling over SCEP needs the challenge (--challenge-source).");
          EnrollRequest er;
          er.scep = req.scep;
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
