// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/key_policy.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <optional>

namespace tokenprov {

unsigned usage_from_words(const std::vector<std::string>& words) {
  unsigned u = 0;
  for (auto w : words) {
    std::transform(w.begin(), w.end(), w.begin(), [](unsigned char c) { return std::tolower(c); });
    if (w == "sign")
      u |= UsageSign;
    else if (w == "decrypt")
      u |= UsageDecrypt;
    else if (w == "unwrap")
      u |= UsageUnwrap;
    else if (w == "derive")
      u |= UsageDerive;
    else
      fail(ExitCode::Usage, "'" + w + "' is not a key usage.", "Use sign, decrypt, unwrap or derive.");
  }
  return u;
}

std::vector<std::string> usage_words(unsigned usage) {
  std::vector<std::string> v;
  if (usage & UsageSign) v.emplace_back("sign");
  if (usage & UsageDecrypt) v.emplace_back("decrypt");
  if (usage & UsageUnwrap) v.emplace_back("unwrap");
  if (usage & UsageDerive) v.emplace_back("derive");
  return v;
}

void check_usage(unsigned u, CK_KEY_TYPE kt, const std::string& name) {
  if (kt != CKK_RSA && (u & (UsageDecrypt | UsageUnwrap)))
    fail(ExitCode::Usage, name + " keys cannot decrypt or unwrap.", "Use sign (and derive for EC).");
  if (kt == CKK_EC_EDWARDS && (u & UsageDerive)) fail(ExitCode::Usage, name + " keys cannot derive.");
  if (kt == CKK_RSA && (u & UsageDerive)) fail(ExitCode::Usage, "RSA keys cannot derive.");
  if (u == 0) fail(ExitCode::Usage, "A key needs at least one usage.");
}

unsigned default_usage(CK_KEY_TYPE kt) {
  return kt == CKK_RSA ? (UsageSign | UsageDecrypt) : UsageSign;
}

std::string key_type_name(CK_KEY_TYPE t) {
  switch (t) {
  case CKK_RSA:
    return "RSA";
  case CKK_EC:
    return "EC";
  case CKK_EC_EDWARDS:
    return "Ed25519";
  default:
    return "unknown";
  }
}

// Both lists hold every attribute for every key type: a usage the type
// cannot have is false, never left to the module's default (SoftHSM2, for
// one, makes EC private keys with decrypt, unwrap and sign-recover true when
// the template says nothing).
PolicyList private_policy(const KeyPolicyAttrs& p) {
  return {{CKA_TOKEN, true},
          {CKA_PRIVATE, true},
          {CKA_SENSITIVE, true},
          {CKA_EXTRACTABLE, p.exportable},
          {CKA_MODIFIABLE, true},
          {CKA_SIGN, (p.usage & UsageSign) != 0},
          {CKA_SIGN_RECOVER, false},
          {CKA_DECRYPT, (p.usage & UsageDecrypt) != 0},
          {CKA_UNWRAP, (p.usage & UsageUnwrap) != 0},
          {CKA_DERIVE, (p.usage & UsageDerive) != 0}};
}

PolicyList public_policy(const KeyPolicyAttrs& p) {
  return {{CKA_TOKEN, true},
          {CKA_PRIVATE, false},
          {CKA_MODIFIABLE, true},
          {CKA_VERIFY, (p.usage & UsageSign) != 0},
          {CKA_VERIFY_RECOVER, false},
          {CKA_ENCRYPT, (p.usage & UsageDecrypt) != 0},
          {CKA_WRAP, (p.usage & UsageUnwrap) != 0},
          {CKA_DERIVE, (p.usage & UsageDerive) != 0}};
}

namespace {
bool is_usage(CK_ATTRIBUTE_TYPE a) {
  switch (a) {
  case CKA_SIGN:
  case CKA_SIGN_RECOVER:
  case CKA_VERIFY:
  case CKA_VERIFY_RECOVER:
  case CKA_DECRYPT:
  case CKA_ENCRYPT:
  case CKA_UNWRAP:
  case CKA_WRAP:
  case CKA_DERIVE:
    return true;
  default:
    return false;
  }
}

void add_common(p11::Attributes& t, CK_OBJECT_CLASS cls, const KeyPolicyAttrs& p, const PolicyList& l,
                const std::string& label, const p11::Bytes& id, TemplateForm form) {
  t.add_class(cls).add_ulong(CKA_KEY_TYPE, p.type);
  t.add_string(CKA_LABEL, label).add_bytes(CKA_ID, id);
  for (const auto& [a, v] : l)
    if (v || form == TemplateForm::Full || !is_usage(a)) t.add_bool(a, v);
}

std::string list_text(const PolicyList& l) {
  std::string s;
  for (const auto& [a, v] : l)
    s += (s.empty() ? "" : " ") + attribute_name(a) + "=" + (v ? "true" : "false");
  return s;
}
} // namespace

void add_private_template(p11::Attributes& t, const KeyPolicyAttrs& p, const std::string& label, const p11::Bytes& id,
                          TemplateForm form) {
  add_common(t, CKO_PRIVATE_KEY, p, private_policy(p), label, id, form);
}

void add_public_template(p11::Attributes& t, const KeyPolicyAttrs& p, const std::string& label, const p11::Bytes& id,
                         TemplateForm form) {
  add_common(t, CKO_PUBLIC_KEY, p, public_policy(p), label, id, form);
}

bool is_template_refusal(CK_RV rv) {
  return rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_VALUE_INVALID || rv == CKR_TEMPLATE_INCONSISTENT ||
         rv == CKR_ATTRIBUTE_READ_ONLY;
}

void policy_refused(const p11::P11Error& e, const KeyPolicyAttrs& p, const std::string& what) {
  fail(ExitCode::Policy,
       "The module refused the key's template while " + what + " (" + e.function() + ": " + p11::rv_name(e.rv()) +
           "); no key was made. tokenprov sets every policy attribute explicitly and makes no key whose policy "
           "the token cannot hold. The policy asked for: private key " +
           list_text(private_policy(p)) + "; public key " + list_text(public_policy(p)) + ".",
       "This module cannot hold this policy for " + key_type_name(p.type) +
           " keys: use another usage (--usage) or another token.");
}

namespace {
// The attributes of WANT that OBJ does not hold as asked, with what it holds.
std::vector<std::pair<std::size_t, std::optional<bool>>> policy_misses(const p11::Session& s, CK_OBJECT_HANDLE obj,
                                                                       const PolicyList& want) {
  std::vector<CK_ATTRIBUTE_TYPE> types;
  for (const auto& [a, v] : want)
    types.push_back(a);
  auto got = s.attr_bools(obj, types);
  std::vector<std::pair<std::size_t, std::optional<bool>>> out;
  // A module that will not say (CKR_ATTRIBUTE_TYPE_INVALID on read) is taken at its
  // template's word: it accepted the attribute when the key was made.
  for (std::size_t i = 0; i < want.size(); ++i)
    if (got[i] && *got[i] != want[i].second) out.emplace_back(i, got[i]);
  return out;
}
} // namespace

void check_policy_kept(const p11::Session& s, CK_OBJECT_HANDLE obj, const PolicyList& want, const std::string& what) {
  auto miss = policy_misses(s, obj, want);
  if (miss.empty()) return;
  // A module that made the key with its own value (NSS gives an unwrapped RSA key
  // unwrap and sign-recover whatever the template says) gets the attributes set
  // again; what it still does not hold afterwards fails the command.
  p11::Attributes fix;
  for (const auto& m : miss)
    if (m.second) fix.add_bool(want[m.first].first, want[m.first].second);
  if (!fix.empty()) {
    try {
      s.set_attributes(obj, fix, what + " (setting the key policy again)");
    } catch (const p11::P11Error&) {
      // reported below with the values the token holds
    }
    miss = policy_misses(s, obj, want);
  }
  if (miss.empty()) return;
  std::string bad;
  for (const auto& [i, got] : miss)
    bad += (bad.empty() ? "" : ", ") + attribute_name(want[i].first) + " " +
           (got ? (*got ? "true" : "false") : "not reported") + " (asked " + (want[i].second ? "true" : "false") + ")";
  fail(ExitCode::Policy, "The token did not keep the key policy while " + what + ": " + bad + ". The key was removed again.",
       "This module cannot hold the policy tokenprov asks for; use another token.");
}

std::string attribute_name(CK_ATTRIBUTE_TYPE a) {
  switch (a) {
  case CKA_TOKEN: return "CKA_TOKEN";
  case CKA_PRIVATE: return "CKA_PRIVATE";
  case CKA_SENSITIVE: return "CKA_SENSITIVE";
  case CKA_EXTRACTABLE: return "CKA_EXTRACTABLE";
  case CKA_MODIFIABLE: return "CKA_MODIFIABLE";
  case CKA_SIGN: return "CKA_SIGN";
  case CKA_SIGN_RECOVER: return "CKA_SIGN_RECOVER";
  case CKA_VERIFY: return "CKA_VERIFY";
  case CKA_VERIFY_RECOVER: return "CKA_VERIFY_RECOVER";
  case CKA_DECRYPT: return "CKA_DECRYPT";
  case CKA_ENCRYPT: return "CKA_ENCRYPT";
  case CKA_UNWRAP: return "CKA_UNWRAP";
  case CKA_WRAP: return "CKA_WRAP";
  case CKA_DERIVE: return "CKA_DERIVE";
  default: {
    char buf[24];
    std::snprintf(buf, sizeof buf, "CKA_0x%lx", static_cast<unsigned long>(a));
    return buf;
  }
  }
}

} // namespace tokenprov
