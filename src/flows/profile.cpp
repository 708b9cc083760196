// SPDX-License-Identifier: Apache-2.0
// Token profiles from TOML (toml++). Every problem is reported as
// Error(BadInput) with the file, the line and the field at fault.
#include "tokenprov/profile.hpp"

#include "tokenprov/error.hpp"
#include "tokenprov/fileio.hpp"
#include "tokenprov/key_policy.hpp"
#include "tokenprov/keys.hpp"
#include "tokenprov/ossl.hpp"
#include "tokenprov/uri.hpp"

#include "profile_detail.hpp"

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

namespace tokenprov {

namespace fs = std::filesystem;
using profile_detail::join;

namespace {

const char* const kHint = "Fix the profile; docs/profiles.md lists every field a profile may have.";


std::string stem_of(const std::string& source) {
  std::string base = fs::path(source).filename().string();
  if (base.size() > 5 && base.compare(base.size() - 5, 5, ".toml") == 0) base.resize(base.size() - 5);
  return base;
}

// Reports problems in one file.
class Reader {
public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail_at(const toml::node* where, const std::string& message) const {
    std::string text = "Profile " + file_;
    if (where && where->source().begin.line > 0) text += ", line " + std::to_string(where->source().begin.line);
    text += ": " + message;
    fail(ExitCode::BadInput, text, kHint);
  }

  // Rejects keys of TABLE that are not in ALLOWED.
  void only(const toml::table& table, const std::string& prefix, const std::vector<std::string>& allowed) const {
    for (const auto& [key, node] : table) {
      std::string k(key.str());
      if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
        std::string what =
            prefix.empty() ? "unknown top-level field '" + k + "'" : prefix + " has the unknown field '" + k + "'";
        fail_at(&node, what + "; allowed: " + join(allowed) + ".");
      }
    }
  }

  std::optional<std::string> str(const toml::table& t, const char* key, const std::string& field) const {
    const toml::node* n = t.get(key);
    if (!n) return std::nullopt;
    if (!n->is_string()) fail_at(n, field + " must be a string.");
    return n->as_string()->get();
  }

  std::optional<bool> boolean(const toml::table& t, const char* key, const std::string& field) const {
    const toml::node* n = t.get(key);
    if (!n) return std::nullopt;
    if (!n->is_boolean()) fail_at(n, field + " must be true or false.");
    return n->as_boolean()->get();
  }

  std::optional<std::size_t> count(const toml::table& t, const char* key, const std::string& field) const {
    const toml::node* n = t.get(key);
    if (!n) return std::nullopt;
    if (!n->is_integer()) fail_at(n, field + " must be a whole number.");
    auto v = n->as_integer()->get();
    if (v < 0) fail_at(n, field + " must not be negative (it is " + std::to_string(v) + ").");
    return static_cast<std::size_t>(v);
  }

  std::optional<std::vector<std::string>> strings(const toml::table& t, const char* key,
                                                  const std::string& field) const {
    const toml::node* n = t.get(key);
    if (!n) return std::nullopt;
    const toml::array* arr = n->as_array();
    if (!arr) fail_at(n, field + " must be an array of strings, e.g. [\"sign\", \"decrypt\"].");
    std::vector<std::string> out;
    for (const auto& item : *arr) {
      if (!item.is_string()) fail_at(&item, field + " must be an array of strings, e.g. [\"sign\", \"decrypt\"].");
      out.push_back(item.as_string()->get());
    }
    return out;
  }

  const toml::table* table(const toml::table& t, const char* key) const {
    const toml::node* n = t.get(key);
    if (!n) return nullptr;
    if (!n->is_table()) fail_at(n, std::string("[") + key + "] must be a table.");
    return n->as_table();
  }

  // Checks that TEMPL only uses ALLOWED placeholders.
  void check_template(const toml::node* where, const std::string& field, const std::string& templ,
                      const std::vector<std::string>& allowed) const {
    std::map<std::string, std::string> vars;
    for (const auto& a : allowed)
      vars[a] = "x";
    try {
      (void)expand_template(templ, vars);
    } catch (const Error& e) {
      fail_at(where, field + ": " + e.what());
    }
  }

  void pin_policy(const toml::table& root, const char* key, PinPolicy& out) const {
    const toml::table* t = table(root, key);
    if (!t) return;
    std::string prefix = std::string("[") + key + "]";
    only(*t, prefix, {"min_length", "max_length"});
    if (auto v = count(*t, "min_length", std::string(key) + ".min_length")) out.min_length = *v;
    if (auto v = count(*t, "max_length", std::string(key) + ".max_length")) out.max_length = *v;
    if (out.min_length < 1) fail_at(t->get("min_length"), std::string(key) + ".min_length must be at least 1.");
    if (out.max_length < out.min_length)
      fail_at(t->get("max_length") ? t->get("max_length") : t,
              std::string(key) + ".max_length (" + std::to_string(out.max_length) + ") is less than min_length (" +
                  std::to_string(out.min_length) + ").");
  }

  KeySpec key(const toml::node& node, std::size_t index, const Profile& profile) const {
    std::string prefix = "keys[" + std::to_string(index) + "]";
    const toml::table* t = node.as_table();
    if (!t) fail_at(&node, prefix + " must be a table; write each key as a [[keys]] section.");
    only(*t, prefix, {"role", "algorithm", "usage", "exportable", "label", "backup", "id", "renew"});

    KeySpec k;
    auto role = str(*t, "role", prefix + ".role");
    if (!role || role->empty())
      fail_at(t->get("role") ? t->get("role") : t,
              prefix + ".role is missing; every key needs a role such as \"auth\".");
    k.role = *role;

    auto alg = str(*t, "algorithm", prefix + ".algorithm");
    if (!alg) fail_at(t, prefix + ".algorithm is missing; it is one of " + join(known_algorithms()) + ".");
    if (!is_known_algorithm(*alg))
      fail_at(t->get("algorithm"),
              prefix + ".algorithm '" + *alg + "' is not one of " + join(known_algorithms()) + ".");
    k.algorithm = *alg;
    // The vocabulary and the rules are the key layer's (key_policy.hpp): a
    // profile says here, with the file and line, what keygen would refuse.
    CK_KEY_TYPE kt = key_type_of(parse_algorithm(k.algorithm));
    static const std::vector<std::string> all = usage_words(UsageSign | UsageDecrypt | UsageUnwrap | UsageDerive);

    if (auto usage = strings(*t, "usage", prefix + ".usage")) {
      const toml::node* where = t->get("usage");
      if (usage->empty()) fail_at(where, prefix + ".usage is empty; give at least one of " + join(all) + ".");
      std::set<std::string> seen;
      for (const auto& u : *usage) {
        if (std::find(all.begin(), all.end(), u) == all.end())
          fail_at(where, prefix + ".usage '" + u + "' is not one of " + join(all) + ".");
        if (!seen.insert(u).second) fail_at(where, prefix + ".usage lists '" + u + "' twice.");
        unsigned bit = usage_from_words({u});
        try {
          check_usage(bit, kt, k.algorithm);
        } catch (const Error&) {
          fail_at(where, prefix + ".usage '" + u + "' does not fit algorithm " + k.algorithm +
                             (bit == UsageDerive ? ": only EC (P-256, P-384) keys can derive."
                                                 : ": only RSA keys can decrypt or unwrap."));
        }
      }
      k.usage = *usage;
    } else {
      k.usage = usage_words(default_usage(kt));
    }

    k.exportable = boolean(*t, "exportable", prefix + ".exportable").value_or(false);
    k.backup = boolean(*t, "backup", prefix + ".backup").value_or(false);
    if (k.exportable && !profile.allow_export)
      fail_at(t->get("exportable"), prefix + ".exportable is true, but the profile sets allow_export = false.");
    if (k.backup && !k.exportable)
      fail_at(t->get("backup"), prefix + ".backup is true, but the key is not exportable (set exportable = true, "
                                         "or drop backup).");

    if (auto renew = str(*t, "renew", prefix + ".renew")) {
      if (*renew != "same-key" && *renew != "rekey")
        fail_at(t->get("renew"), prefix + ".renew '" + *renew + "' is not one of same-key, rekey.");
      k.rekey = *renew == "rekey";
    }

    k.label_template = str(*t, "label", prefix + ".label").value_or("{role}");
    if (k.label_template.empty()) fail_at(t->get("label"), prefix + ".label is empty.");
    check_template(t->get("label") ? t->get("label") : t, prefix + ".label", k.label_template,
                   {"role", "user", "serial", "cn"});

    if (auto id = str(*t, "id", prefix + ".id")) {
      std::string hex = *id;
      std::transform(hex.begin(), hex.end(), hex.begin(), [](unsigned char c) { return std::tolower(c); });
      try {
        if (hex.empty() || from_hex(hex).empty()) throw Error(ExitCode::BadInput, "it is empty");
      } catch (const Error&) {
        fail_at(t->get("id"), prefix + ".id '" + *id + "' is not a hexadecimal byte string such as \"01\".");
      }
      k.id = hex;
    }
    return k;
  }

private:
  std::string file_;
};

} // namespace

const std::vector<std::string>& known_algorithms() {
  return algorithm_names(); // the key layer's list (keys.hpp)
}

bool is_known_algorithm(const std::string& algorithm) {
  const auto& algs = known_algorithms();
  return std::find(algs.begin(), algs.end(), algorithm) != algs.end();
}

const KeySpec* Profile::find_key(const std::string& role) const {
  for (const auto& k : keys)
    if (k.role == role) return &k;
  return nullptr;
}

std::string expand_template(const std::string& templ, const std::map<std::string, std::string>& vars) {
  auto known = [&] {
    std::vector<std::string> names;
    for (const auto& [k, v] : vars)
      names.push_back("{" + k + "}");
    return names.empty() ? std::string("none") : join(names);
  };
  std::string out;
  for (std::size_t i = 0; i < templ.size(); ++i) {
    char c = templ[i];
    if (c == '{') {
      if (i + 1 < templ.size() && templ[i + 1] == '{') {
        out += '{';
        ++i;
        continue;
      }
      auto close = templ.find('}', i + 1);
      if (close == std::string::npos)
        fail(ExitCode::BadInput, "The template '" + templ + "' has a '{' that is never closed.",
             "Write a literal brace as '{{'.");
      std::string name = templ.substr(i + 1, close - i - 1);
      auto it = vars.find(name);
      if (it == vars.end())
        fail(ExitCode::BadInput,
             "The template '" + templ + "' uses the unknown placeholder {" + name + "}; known: " + known() + ".",
             "Use only the placeholders listed, or write a literal brace as '{{'.");
      out += it->second;
      i = close;
    } else if (c == '}') {
      if (i + 1 < templ.size() && templ[i + 1] == '}') {
        out += '}';
        ++i;
        continue;
      }
      fail(ExitCode::BadInput, "The template '" + templ + "' has a '}' without a matching '{'.",
           "Write a literal brace as '}}'.");
    } else {
      out += c;
    }
  }
  return out;
}

namespace {
// TOML_TEXT parsed; Error(BadInput) for a profile too long or not TOML.
toml::table parse_toml(const std::string& toml_text, const std::string& source_name) {
  // toml++ recurses once per level of a dotted key or table name
  // ("[a.a.a...]"): some 35,000 levels (70 KB) overflow an 8 MB stack
  // (a fuzz regression, tests/fuzz/). A profile is a few KB; at most
  // kMaxProfileBytes keeps the nesting under 16,384 levels.
  constexpr std::size_t kMaxProfileBytes = 32 * 1024;
  if (toml_text.size() > kMaxProfileBytes)
    fail(ExitCode::BadInput,
         "Profile " + source_name + " is " + std::to_string(toml_text.size()) +
             " bytes long; a profile may have at most " + std::to_string(kMaxProfileBytes) + ".",
         kHint);
  toml::table root;
  try {
    root = toml::parse(toml_text, source_name);
  } catch (const toml::parse_error& e) {
    const auto& begin = e.source().begin;
    fail(ExitCode::BadInput,
         "Profile " + source_name + ", line " + std::to_string(begin.line) + " column " + std::to_string(begin.column) +
             ": TOML syntax error: " + std::string(e.description()) + ".",
         kHint);
  }
  return root;
}

// [backup]: compat and password_min_length.
void read_backup(Reader& r, const toml::table& root, Profile& p) {
  if (const toml::table* b = r.table(root, "backup")) {
    r.only(*b, "[backup]", {"compat", "password_min_length"});
    p.backup_compat = r.str(*b, "compat", "backup.compat").value_or(p.backup_compat);
    if (p.backup_compat != "modern" && p.backup_compat != "legacy")
      r.fail_at(b->get("compat"), "backup.compat '" + p.backup_compat + "' is not one of modern, legacy.");
    p.backup_password_min =
        r.count(*b, "password_min_length", "backup.password_min_length").value_or(p.backup_password_min);
    if (p.backup_password_min < 1)
      r.fail_at(b->get("password_min_length"), "backup.password_min_length must be at least 1.");
  }
}

// [scep]: url and ca_fingerprint.
void read_scep(Reader& r, const toml::table& root, Profile& p) {
  if (const toml::table* s = r.table(root, "scep")) {
    r.only(*s, "[scep]", {"url", "ca_fingerprint"});
    p.scep_url = r.str(*s, "url", "scep.url").value_or("");
    if (!p.scep_url.empty() && p.scep_url.rfind("http://", 0) != 0 && p.scep_url.rfind("https://", 0) != 0)
      r.fail_at(s->get("url"), "scep.url '" + p.scep_url + "' is not an http:// or https:// URL.");
    std::string fp = r.str(*s, "ca_fingerprint", "scep.ca_fingerprint").value_or("");
    std::string hex;
    for (char c : fp)
      if (c != ':') hex += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!fp.empty()) {
      bool ok = hex.size() == 64 && std::all_of(hex.begin(), hex.end(), [](char c) {
                  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                });
      if (!ok)
        r.fail_at(s->get("ca_fingerprint"),
                  "scep.ca_fingerprint '" + fp + "' is not a SHA-256 fingerprint (64 hex digits, ':' allowed).");
    }
    p.ca_fingerprint = hex;
  }
}

// protocol, and [cmp]: url and ca_fingerprint.
void read_cmp(Reader& r, const toml::table& root, Profile& p) {
  p.protocol = r.str(root, "protocol", "protocol").value_or("");
  if (!p.protocol.empty() && p.protocol != "scep" && p.protocol != "cmp" && p.protocol != "est")
    r.fail_at(root.get("protocol"), "protocol '" + p.protocol + "' is not one of scep, cmp, est.");
  if (const toml::table* c = r.table(root, "cmp")) {
    r.only(*c, "[cmp]", {"url", "ca_fingerprint"});
    p.cmp_url = r.str(*c, "url", "cmp.url").value_or("");
    if (!p.cmp_url.empty() && p.cmp_url.rfind("http://", 0) != 0 && p.cmp_url.rfind("https://", 0) != 0)
      r.fail_at(c->get("url"), "cmp.url '" + p.cmp_url + "' is not an http:// or https:// URL.");
    std::string fp = r.str(*c, "ca_fingerprint", "cmp.ca_fingerprint").value_or("");
    std::string hex;
    for (char ch : fp)
      if (ch != ':') hex += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    bool ok = hex.empty() || (hex.size() == 64 && std::all_of(hex.begin(), hex.end(), [](char ch) {
                                return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
                              }));
    if (!ok)
      r.fail_at(c->get("ca_fingerprint"),
                "cmp.ca_fingerprint '" + fp + "' is not a SHA-256 fingerprint (64 hex digits, ':' allowed).");
    p.cmp_ca_fingerprint = hex;
  }
}

// [[keys]]: at least one, roles and ids unique.
void read_keys(Reader& r, const toml::table& root, Profile& p) {
  const toml::node* keys = root.get("keys");
  if (!keys) r.fail_at(nullptr, "the profile has no keys; add at least one [[keys]] section.");
  const toml::array* arr = keys->as_array();
  if (!arr) r.fail_at(keys, "keys must be an array of tables; write each key as a [[keys]] section.");
  if (arr->empty()) r.fail_at(keys, "the profile has no keys; add at least one [[keys]] section.");
  std::set<std::string> roles, ids;
  std::size_t index = 0;
  for (const auto& node : *arr) {
    ++index;
    KeySpec k = r.key(node, index, p);
    if (!roles.insert(k.role).second)
      r.fail_at(&node, "keys[" + std::to_string(index) + "].role '" + k.role +
                           "' is used by an earlier key; roles must be unique.");
    if (!k.id.empty() && !ids.insert(k.id).second)
      r.fail_at(&node,
                "keys[" + std::to_string(index) + "].id '" + k.id + "' is used by an earlier key; ids must be unique.");
    p.keys.push_back(std::move(k));
  }
}
} // namespace

namespace {
// [est] csrattrs_allow: the extensions EST's /csrattrs may add to a request (with the
// values the CA gives). Each an extension OpenSSL knows by name, or a dotted OID.
void parse_est(const Reader& r, const toml::table& root, Profile& p) {
  const toml::table* e = r.table(root, "est");
  if (!e) return;
  r.only(*e, "[est]", {"url", "user", "csrattrs_allow"});
  p.est_url = r.str(*e, "url", "est.url").value_or("");
  if (!p.est_url.empty() && p.est_url.rfind("https://", 0) != 0)
    r.fail_at(e->get("url"), "est.url '" + p.est_url + "' is not an https:// URL (EST runs over TLS).");
  p.est_user = r.str(*e, "user", "est.user").value_or("");
  auto allow = r.strings(*e, "csrattrs_allow", "est.csrattrs_allow");
  if (!allow) return;
  for (const auto& name : *allow) {
    bool dotted = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
    ossl::Asn1ObjectPtr o(OBJ_txt2obj(name.c_str(), dotted ? 1 : 0));
    int nid = o ? OBJ_obj2nid(o.get()) : NID_undef;
    ERR_clear_error();
    if (!o || (!dotted && !X509V3_EXT_get_nid(nid)))
      r.fail_at(e->get("csrattrs_allow"), "est.csrattrs_allow '" + name +
                                              "' is not an extension (an OpenSSL name such as extendedKeyUsage, "
                                              "keyUsage, subjectAltName, or a dotted OID).");
  }
  p.est_csrattrs_allow = *allow;
}
} // namespace

Profile parse_profile(const std::string& toml_text, const std::string& source_name) {
  toml::table root = parse_toml(toml_text, source_name);
  Reader r(source_name);
  r.only(root, "", {"description", "module", "token_label", "allow_export", "pin", "so_pin", "backup", "scep", "keys", "protocol", "cmp", "est"});

  Profile p;
  p.name = stem_of(source_name);
  p.source_path = source_name;
  p.description = r.str(root, "description", "description").value_or("");
  p.module = r.str(root, "module", "module").value_or("");
  p.token_label_template = r.str(root, "token_label", "token_label").value_or(p.token_label_template);
  if (p.token_label_template.empty()) r.fail_at(root.get("token_label"), "token_label is empty.");
  r.check_template(root.get("token_label"), "token_label", p.token_label_template, {"user", "serial", "cn"});
  p.allow_export = r.boolean(root, "allow_export", "allow_export").value_or(true);

  r.pin_policy(root, "pin", p.user_pin);
  r.pin_policy(root, "so_pin", p.so_pin);

  read_backup(r, root, p);
  read_scep(r, root, p);
  read_cmp(r, root, p);
  read_keys(r, root, p);
  parse_est(r, root, p);
  return p;
}

} // namespace tokenprov
