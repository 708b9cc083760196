// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/token_admin.hpp"

#include "tokenprov/utf8.hpp"

#include <algorithm>

namespace tokenprov {

namespace {
// "token 'alice'", or for a token without a label (a blank one) its slot and serial.
std::string token_name(const p11::TokenInfo& t) {
  if (!t.label.empty()) return "token '" + t.label + "'";
  return "the token in slot " + std::to_string(t.slot_id) + (t.serial.empty() ? "" : " (serial " + t.serial + ")");
}

void check_pin_length(const p11::TokenInfo& t, const Secret& pin, const char* what, std::size_t min_profile) {
  std::size_t min = std::max<std::size_t>(t.min_pin, min_profile);
  if (min && pin.size() < min)
    fail(ExitCode::Pin, std::string("The new ") + what + " is too short: " + token_name(t) + " needs at least " +
                            std::to_string(min) + " characters.");
  if (t.max_pin && t.max_pin != CK_UNAVAILABLE_INFORMATION && pin.size() > t.max_pin)
    fail(ExitCode::Pin, std::string("The new ") + what + " is too long: " + token_name(t) + " allows at most " +
                            std::to_string(t.max_pin) + " characters.");
}
} // namespace

p11::TokenInfo init_token(const InitRequest& req, const Secret& so_pin, const Secret& user_pin) {
  // Held across both halves: a module finalized in between (its last user
  // gone) is initialized again, and SoftHSM2 then numbers its slots anew.
  auto module = p11::Module::load(req.module_path);
  auto found = init_token_only(req, so_pin, user_pin);
  return finish_token_init(module, found, req.label, so_pin, user_pin, req.min_pin);
}

namespace {
// Before an initialized token is erased: the SO PIN is checked with an SO
// login, so a wrong one fails before anything is lost, and a module without a
// security officer is refused. NSS's softoken has none (C_Login as CKU_SO:
// CKR_USER_TYPE_INVALID) and its C_InitToken wipes the database whatever SO PIN
// it is given.
void verify_security_officer(const std::shared_ptr<p11::Module>& module, const p11::TokenInfo& t,
                             const Secret& so_pin) {
  p11::Session s(module, t.slot_id, true);
  try {
    s.login(CKU_SO, so_pin);
  } catch (const p11::P11Error& e) {
    if (e.rv() != CKR_USER_TYPE_INVALID) throw;
    fail(ExitCode::Token,
         "The module '" + module->path() + "' has no security officer for the token '" + t.label +
             "' (C_Login as SO: CKR_USER_TYPE_INVALID), so tokenprov will not re-initialize it; the token was left "
             "as it is.",
         "Such a token (NSS's database) is reset with its own tools, e.g. a new NSS database made with certutil -N.");
  }
} // the session logs out and closes before C_InitToken (which wants no open session)
} // namespace

p11::TokenInfo init_token_only(const InitRequest& req, const Secret& so_pin, const Secret& user_pin) {
  if (req.label.empty()) fail(ExitCode::Usage, "The token needs a label (--label).");
  require_utf8(req.label, "token label");
  auto module = p11::Module::load(req.module_path);
  std::optional<p11::TokenInfo> in_slot;
  if (req.slot) {
    try {
      in_slot = module->token_info(*req.slot);
    } catch (const p11::P11Error&) {
      // gone from that slot: the search below says what is wrong
    }
    // The slot the caller found holds another token now (a card swapped): search as the selector says.
    if (in_slot && req.selector.rfind("serial:", 0) == 0 && in_slot->serial != req.selector.substr(7)) in_slot.reset();
  }
  p11::TokenInfo t = in_slot                              ? *in_slot
                     : req.selector.empty() && !req.force ? find_token(*module, "", TokenState::Blank)
                                                          : find_token(*module, req.selector, TokenState::Any);
  if (t.initialized() && !req.force)
    fail(ExitCode::Exists,
         "The token '" + t.label + "' (serial " + t.serial + ") is initialized already; it was left as it is.",
         "Initializing erases every key and certificate on it: add --force only if that is what you want.");
  check_pin_length(t, so_pin, "SO PIN", 0);
  check_pin_length(t, user_pin, "user PIN", req.min_pin);
  if (t.initialized()) verify_security_officer(module, t, so_pin);
  try {
    module->init_token(t.slot_id, so_pin, req.label);
  } catch (const p11::P11Error& e) {
    // tpm2-pkcs11 answers CKR_ARGUMENTS_BAD to C_InitToken on an initialized token.
    if (t.initialized() && e.rv() == CKR_ARGUMENTS_BAD)
      fail(ExitCode::Token,
           "The token '" + t.label + "' is initialized already, and the module '" + module->path() +
               "' refused to re-initialize it (C_InitToken: CKR_ARGUMENTS_BAD); the token was left as it is.",
           "This module cannot re-initialize a token: use a new (empty) slot, or its own tools to remove the token.");
    throw;
  }
  return t;
}

p11::TokenInfo finish_token_init(const std::shared_ptr<p11::Module>& module, const p11::TokenInfo& found,
                                 const std::string& label, const Secret& so_pin, const Secret& user_pin,
                                 std::size_t min_pin) {
  try {
    return set_first_user_pin(module, found, so_pin, user_pin, min_pin);
  } catch (const Error& e) {
    // C_InitToken cannot be undone: say what state the token is in.
    std::string serial = found.serial;
    if (serial.empty()) try {
        serial = module->token_info(found.slot_id).serial; // a blank token may get its serial from C_InitToken
      } catch (...) {
      }
    throw Error(
        e.code(),
        std::string(e.what()) + " The token '" + label + "'" + (serial.empty() ? "" : " (serial " + serial + ")") +
            " was initialized, but has no user PIN yet.",
        "Run 'tokenprov provision' again (with the same SO PIN), or set the user PIN with 'tokenprov pin unblock'.");
  }
}

p11::TokenInfo set_first_user_pin(const std::shared_ptr<p11::Module>& module, const p11::TokenInfo& t,
                                  const Secret& so_pin, const Secret& user_pin, std::size_t min_pin) {
  check_pin_length(t, user_pin, "user PIN", min_pin);
  {
    p11::Session s(module, t.slot_id, true);
    s.login(CKU_SO, so_pin);
    s.init_pin(user_pin);
  }
  return module->token_info(t.slot_id);
}

void change_user_pin(const std::string& module_path, const std::string& selector, const Secret& old_pin,
                     const Secret& new_pin) {
  auto ctx = open_token({module_path, selector, TokenState::Initialized, true, nullptr});
  check_pin_length(ctx.token, new_pin, "user PIN", 0);
  ctx.session->login(CKU_USER, old_pin);
  ctx.session->set_pin(old_pin, new_pin);
}

void unblock_user_pin(const std::string& module_path, const std::string& selector, const Secret& so_pin,
                      const Secret& new_pin) {
  auto ctx = open_token({module_path, selector, TokenState::Initialized, true, nullptr});
  check_pin_length(ctx.token, new_pin, "user PIN", 0);
  ctx.session->login(CKU_SO, so_pin);
  ctx.session->init_pin(new_pin);
}

} // namespace tokenprov
