// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/token.hpp"

#include "tokenprov/uri.hpp"
#include "tokenprov/uri_resolve.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>

namespace tokenprov {

std::string resolve_module_path(const std::string& cli_module, const std::string& profile_module) {
  if (!cli_module.empty()) return cli_module;
  if (!profile_module.empty()) return profile_module;
  if (const char* env = std::getenv("TOKENPROV_MODULE"); env && *env) return env;
  return kP11KitProxy;
}

namespace {
bool state_ok(const p11::TokenInfo& t, TokenState s) {
  switch (s) {
  case TokenState::Any: return true;
  case TokenState::Initialized: return t.initialized();
  case TokenState::Blank: return !t.initialized();
  }
  return true;
}

std::string describe(TokenState s) {
  switch (s) {
  case TokenState::Initialized: return "initialized ";
  case TokenState::Blank: return "uninitialized ";
  default: return "";
  }
}
} // namespace

namespace {
// "slot 3: CKR_GENERAL_ERROR" for each slot whose token the module could not read.
std::string unreadable_note(const std::vector<p11::UnreadableSlot>& bad) {
  if (bad.empty()) return "";
  std::string s = " The module could not read the token in ";
  for (std::size_t i = 0; i < bad.size(); ++i)
    s += (i ? ", " : "") + std::string("slot ") + std::to_string(bad[i].slot_id) + " (" + p11::rv_name(bad[i].rv) + ")";
  return s + "; 'tokenprov list' shows it.";
}

} // namespace

std::string candidates(const std::vector<p11::TokenInfo>& hits) {
  std::string s;
  for (auto& t : hits)
    s += "\n  '" + t.label + "' serial " + t.serial + " in slot " + std::to_string(t.slot_id) + ": " + exact_token_uri(t);
  return s;
}

std::string exact_token_uri(const p11::TokenInfo& token) {
  Pkcs11Uri uri = Pkcs11Uri::parse(token_uri(token));
  uri.path["slot-id"] = std::to_string(token.slot_id);
  return uri.format();
}

namespace {
// A URI's slot-id names one slot: that slot's token is read alone into SCAN
// (fleet rows name their tokens so, and a scan per row made a run quadratic
// in tokens). False when SLOT is not a slot number.
bool scan_named_slot(const p11::Module& module, const std::string& slot, p11::SlotScan& scan) {
  char* end = nullptr;
  errno = 0;
  unsigned long id = std::strtoul(slot.c_str(), &end, 10);
  if (errno != 0 || !end || *end != '\0' || slot.empty() || !std::isdigit(static_cast<unsigned char>(slot[0])))
    return false;
  try {
    scan.tokens.push_back(module.token_info(static_cast<CK_SLOT_ID>(id)));
  } catch (const p11::P11Error& e) {
    if (e.rv() != CKR_SLOT_ID_INVALID && e.rv() != CKR_TOKEN_NOT_PRESENT)
      scan.unreadable.push_back({static_cast<CK_SLOT_ID>(id), e.rv()});
  }
  return true;
}

// No selector: the one token in STATE there is (of blank ones, the first).
p11::TokenInfo only_token(const p11::Module& module, TokenState state, const p11::SlotScan& scan) {
  std::vector<p11::TokenInfo> hits;
  for (auto& t : scan.tokens)
    if (state_ok(t, state)) hits.push_back(t);
  if (hits.empty())
    fail(ExitCode::Token,
         "No " + describe(state) + "token was found through the module '" + module.path() + "'." +
             unreadable_note(scan.unreadable),
         "Insert the token, check --module, or list what is there with 'tokenprov list'.");
  if (state == TokenState::Blank) return hits.front(); // the first uninitialized token
  if (hits.size() > 1)
    fail(ExitCode::Usage,
         std::to_string(hits.size()) + " " + describe(state) + "tokens are present; say which one with --token:" +
             candidates(hits),
         "See 'tokenprov list' for their labels and serials.");
  return hits.front();
}

// The tokens of TOKENS that SELECTOR names: by URI, by serial (HINT: the one
// token an earlier scan saw with it) or by label.
std::vector<p11::TokenInfo> selected_tokens(const p11::Module& module, const std::string& selector,
                                            const std::optional<Pkcs11Uri>& uri,
                                            const std::optional<p11::TokenInfo>& hint,
                                            const std::vector<p11::TokenInfo>& tokens) {
  std::vector<p11::TokenInfo> hits;
  if (uri) {
    for (auto& t : tokens)
      if (uri_selects_token(*uri, module, t)) hits.push_back(t); // library, slot and token attributes
  } else if (selector.rfind("serial:", 0) == 0) {
    std::string serial = selector.substr(7);
    if (!hint) {
      // Serials compare without regard to case: serial:ABC12 finds the token whose serial
      // is abc12 (most are hexadecimal, and a person copies them in either case).
      auto ci_equal = [](const std::string& a, const std::string& b) {
        return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
                 return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
               });
      };
      for (auto& t : tokens)
        if (ci_equal(t.serial, serial)) hits.push_back(t);
    } else {
      hits.push_back(*hint);
    }
  } else {
    for (auto& t : tokens)
      if (t.label == selector) hits.push_back(t);
  }
  return hits;
}

// The one token of HITS, which must be in STATE.
p11::TokenInfo one_hit(const p11::Module& module, const std::string& selector, TokenState state,
                       const std::vector<p11::TokenInfo>& hits, const p11::SlotScan& scan) {
  if (hits.empty())
    fail(ExitCode::Token,
         "No token matches '" + selector + "' through the module '" + module.path() + "'." +
             unreadable_note(scan.unreadable),
         "Check the label or serial with 'tokenprov list', and that the token is inserted.");
  if (hits.size() > 1)
    fail(ExitCode::Usage, std::to_string(hits.size()) + " tokens match '" + selector + "':" + candidates(hits),
         "Select one with a URI from this list; a serial alone does not name a token on modules that give "
         "several tokens the same serial.");
  if (!state_ok(hits.front(), state)) {
    if (state == TokenState::Initialized)
      fail(ExitCode::Token, "The token '" + selector + "' is not initialized.", "Initialize it with 'tokenprov init'.");
    fail(ExitCode::Exists, "The token '" + selector + "' is initialized already.",
         "Re-initializing erases everything on it: add --force only if that is what you want.");
  }
  return hits.front();
}
} // namespace

p11::TokenInfo find_token(const p11::Module& module, const std::string& selector, TokenState state,
                          const p11::SlotScan* known) {
  // A serial an earlier scan in this process saw is read back from its slot
  // alone: a fleet names its tokens by serial, and scanning every slot (one
  // C_GetTokenInfo each) for every row made the run quadratic in tokens. A
  // serial seen in two slots gives no hint (tpm2-pkcs11 and NSS give every
  // token the same one).
  std::optional<p11::TokenInfo> hint;
  if (selector.rfind("serial:", 0) == 0 && !known) hint = module.token_by_serial_hint(selector.substr(7));
  std::optional<Pkcs11Uri> uri;
  if (Pkcs11Uri::looks_like_uri(selector)) {
    uri = parse_selector_uri(selector); // pin-value refused, masked
    uri->require_evaluable("the token"); // vendor path attributes: refused by name
  }
  p11::SlotScan scan;
  bool one_slot = false;
  if (auto slot = uri ? uri->get("slot-id") : std::nullopt; slot && !hint && !known)
    one_slot = scan_named_slot(module, *slot, scan);
  if (!hint && !one_slot) scan = known ? *known : module.scan();
  if (selector.empty()) return only_token(module, state, scan);
  return one_hit(module, selector, state, selected_tokens(module, selector, uri, hint, scan.tokens), scan);
}

TokenContext open_token(const OpenOptions& opts) {
  TokenContext ctx;
  ctx.module = p11::Module::load(opts.module_path);
  ctx.token = find_token(*ctx.module, opts.selector, opts.state);
  if (opts.read_write && ctx.token.initialized()) {
    // One run per token: wait for another run that holds it, then read the
    // token again (that run may have changed it).
    ctx.lock = lock_token(ctx.token);
    auto again = find_token(*ctx.module, opts.selector, opts.state);
    if (token_lock_key(again) != token_lock_key(ctx.token))
      fail(ExitCode::Token,
           "The token '" + ctx.token.label + "' (serial " + ctx.token.serial +
               ") changed while this run waited for another run to finish with it; nothing was changed.",
           "See what it holds now with 'tokenprov list', then run again.");
    ctx.token = again;
  }
  ctx.session = std::make_unique<p11::Session>(ctx.module, ctx.token.slot_id, opts.read_write);
  // A token that needs no login (CKF_LOGIN_REQUIRED unset, e.g. NSS's
  // "Generic Crypto Services") is never logged into.
  if (opts.user_pin && ctx.token.login_required()) ctx.session->login(CKU_USER, *opts.user_pin);
  return ctx;
}

} // namespace tokenprov
