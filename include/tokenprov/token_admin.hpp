// SPDX-License-Identifier: Apache-2.0
// Token initialization and PIN management.
#pragma once

#include "tokenprov/token.hpp"
#include "tokenprov/token_lock.hpp"

namespace tokenprov {

struct InitRequest {
  std::string module_path;
  std::string selector; // empty: the first uninitialized token
  std::string label;
  bool force = false; // re-initialize a token that is initialized (erases it)
  std::size_t min_pin = 0;
  // Set by callers that found the token already (provision, fleet): its slot,
  // read with one C_GetTokenInfo instead of searching every slot again.
  std::optional<CK_SLOT_ID> slot = std::nullopt;
  // The token as the caller read it in that slot a moment ago (provision,
  // fleet): taken as it is, without reading the slot again (issue 19).
  std::optional<p11::TokenInfo> known = std::nullopt;
};

// C_InitToken with the SO PIN and label, then C_InitPIN with the user PIN.
// An initialized token without force: Error(Exists), token untouched.
p11::TokenInfo init_token(const InitRequest& req, const Secret& so_pin, const Secret& user_pin);

// init_token in two halves, for callers that run the first one alone (a
// fleet initializes one blank token at a time and sets the user PINs in
// parallel). The first checks both PINs against the token and runs
// C_InitToken; it returns the token as found before (its slot). The second
// sets the first user PIN; when that fails it says the token was left
// initialized without one, and how to finish it.
// init_token_only chooses and initializes under the module's blank-token lock
// (an initialized token with force: under its token lock), and takes the lock
// of the token as initialized; HOLD, when given, keeps that lock for the
// second half and what follows (else it is released on return).
p11::TokenInfo init_token_only(const InitRequest& req, const Secret& so_pin, const Secret& user_pin,
                               TokenLock* hold = nullptr);
p11::TokenInfo finish_token_init(const std::shared_ptr<p11::Module>& module, const p11::TokenInfo& found,
                                 const std::string& label, const Secret& so_pin, const Secret& user_pin,
                                 std::size_t min_pin);

// The second half of init_token on token T: C_InitPIN as the SO. Also
// finishes a token an interrupted initialization left without a user PIN.
p11::TokenInfo set_first_user_pin(const std::shared_ptr<p11::Module>& module, const p11::TokenInfo& t,
                                  const Secret& so_pin, const Secret& user_pin, std::size_t min_pin);

// C_SetPIN as the user.
void change_user_pin(const std::string& module_path, const std::string& selector, const Secret& old_pin,
                     const Secret& new_pin);
// C_InitPIN as the SO: sets a new user PIN (unblocks a locked one).
void unblock_user_pin(const std::string& module_path, const std::string& selector, const Secret& so_pin,
                      const Secret& new_pin);

} // namespace tokenprov
