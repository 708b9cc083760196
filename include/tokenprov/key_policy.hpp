// SPDX-License-Identifier: Apache-2.0
// The key policy as PKCS#11 attributes. One template builder for both halves
// of a key pair, used by generation (keys.cpp) and by restore (backup.cpp),
// so a key gets the same policy whichever way it reaches the token. Every
// attribute that carries policy is set explicitly, true or false, for every
// key type (docs/key-policy.md has the table); a module that refuses one
// makes no key, and one that keeps another value than asked is caught on
// read-back.
#pragma once

#include "tokenprov/p11/module.hpp"

#include <string>
#include <utility>
#include <vector>

namespace tokenprov {

enum Usage : unsigned { UsageSign = 1, UsageDecrypt = 2, UsageUnwrap = 4, UsageDerive = 8 };

// "sign" -> UsageSign, ...; Error(Usage) for a word that is not a usage.
unsigned usage_from_words(const std::vector<std::string>& words);
std::vector<std::string> usage_words(unsigned usage);
// Error(Usage) when a key of type KT (named NAME in the message: "ec-p256",
// "EC") cannot have USAGE: only RSA decrypts and unwraps, only EC derives,
// and a key needs at least one usage.
void check_usage(unsigned usage, CK_KEY_TYPE kt, const std::string& name);
// sign,decrypt for RSA; sign for EC and Ed25519.
unsigned default_usage(CK_KEY_TYPE kt);
// "RSA", "EC", "Ed25519".
std::string key_type_name(CK_KEY_TYPE kt);

struct KeyPolicyAttrs {
  CK_KEY_TYPE type = CKK_RSA;
  unsigned usage = 0; // never 0 here: the caller resolved the default
  bool exportable = false;
};

// The policy booleans of each half, in the order they go into the template.
using PolicyList = std::vector<std::pair<CK_ATTRIBUTE_TYPE, bool>>;
PolicyList private_policy(const KeyPolicyAttrs& p);
PolicyList public_policy(const KeyPolicyAttrs& p);

// Adds class, key type, label, id and the policy booleans of each half.
// Full: every policy attribute, true or false. UsageGranted: the usages the
// policy grants, and CKA_TOKEN/PRIVATE/SENSITIVE/EXTRACTABLE/MODIFIABLE, but
// no usage set false: for modules that refuse a template denying a usage their
// hardware grants anyway (tpm2-pkcs11: "attr mismatch", CKR_GENERAL_ERROR).
// A key made so is brought to the full policy by check_policy_kept() or
// removed; EXTRACTABLE and SENSITIVE are never left out (they decide
// CKA_NEVER_EXTRACTABLE and CKA_ALWAYS_SENSITIVE at generation).
enum class TemplateForm { Full, UsageGranted };
void add_private_template(p11::Attributes& t, const KeyPolicyAttrs& p, const std::string& label, const p11::Bytes& id,
                          TemplateForm form = TemplateForm::Full);
void add_public_template(p11::Attributes& t, const KeyPolicyAttrs& p, const std::string& label, const p11::Bytes& id,
                         TemplateForm form = TemplateForm::Full);

// Whether the module answered a template it cannot hold (attribute type or
// value invalid, template inconsistent, read-only attribute).
bool is_template_refusal(CK_RV rv);
// Error(Policy) for a module that refused the policy template of P while
// WHAT ("generating the ec-p256 key 'alice'"): names the return value, the
// function and every policy attribute asked for; says no key was made.
[[noreturn]] void policy_refused(const p11::P11Error& e, const KeyPolicyAttrs& p, const std::string& what);
// Reads the policy attributes of OBJ back in one call; those the token holds
// with another value are set again (C_SetAttributeValue) and read again.
// Throws Error(Policy) naming each one the token still holds with another
// value (one it does not report is taken at the template's word). The caller
// destroys the object.
void check_policy_kept(const p11::Session& s, CK_OBJECT_HANDLE obj, const PolicyList& want, const std::string& what);

// "CKA_SIGN" for CKA_SIGN, ... (the policy attributes; hex for others).
std::string attribute_name(CK_ATTRIBUTE_TYPE a);

} // namespace tokenprov
