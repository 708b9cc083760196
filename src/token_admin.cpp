#include "tokenprov/token_admin.hpp"

#include <algorithm>

namespace tokenprov {

namespace {
void check_pin_length(const p11::TokenInfo& t, const Secret& pin, const char* what, std::size_t min_profile) {
  std::size_t min = std::max<std::size_t>(t.min_pin, min_profile);
  if (min && pin.size() < min)
    fail(ExitCode::Pin, std::string("The new ") + what + " is too short: token '" + t.label + "' needs at least " +
                            std::to_string(min) + " characters.");
  if (t.max_pin && t.max_pin != CK_UNAVAILABLE_INFORMATION && pin.size() > t.max_pin)
    fail(ExitCode::Pin, std::string("The new ") + what + " is too long: token '" + t.label + "' allows at most " +
                            std::to_string(t.max_pin) + " characters.");
}
} // namespace

p11::TokenInfo init_token(const InitRequest& req, const Secret& so_pin, const Secret& user_pin) {
  if (req.label.empty()) fail(ExitCode::Usage, "The token needs a label (--label).");
  auto module = p11::Module::load(req.module_path);
  p11::TokenInfo t = req.selector.empty() && !req.force ? find_token(*module, "", TokenState::Blank)
                                                          : find_token(*module, req.selector, TokenState::Any);
  if (t.initialized() && !req.force)
    fail(ExitCode::Exists,
         "The token '" + t.label + "' (serial " + t.serial + ") is initialized already; it was left as it is.",
         "Initializing erases every key and certificate on it: add --force only if that is what you want.");
  check_pin_length(t, so_pin, "SO PIN", 0);
  check_pin_length(t, user_pin, "user PIN", req.min_pin);
  module->init_token(t.slot_id, so_pin, req.label);
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
