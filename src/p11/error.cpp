// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/p11/error.hpp"

#include <cstdio>

namespace tokenprov::p11 {

namespace {
struct RvName {
  CK_RV rv;
  const char* name;
};
#define RV(x) {x, #x}
constexpr RvName kNames[] = {
    RV(CKR_OK), RV(CKR_CANCEL), RV(CKR_HOST_MEMORY), RV(CKR_SLOT_ID_INVALID), RV(CKR_GENERAL_ERROR),
    RV(CKR_FUNCTION_FAILED), RV(CKR_ARGUMENTS_BAD), RV(CKR_NO_EVENT), RV(CKR_NEED_TO_CREATE_THREADS),
    RV(CKR_CANT_LOCK), RV(CKR_ATTRIBUTE_READ_ONLY), RV(CKR_ATTRIBUTE_SENSITIVE),
    RV(CKR_ATTRIBUTE_TYPE_INVALID), RV(CKR_ATTRIBUTE_VALUE_INVALID), RV(CKR_ACTION_PROHIBITED),
    RV(CKR_DATA_INVALID), RV(CKR_DATA_LEN_RANGE), RV(CKR_DEVICE_ERROR), RV(CKR_DEVICE_MEMORY),
    RV(CKR_DEVICE_REMOVED), RV(CKR_ENCRYPTED_DATA_INVALID), RV(CKR_ENCRYPTED_DATA_LEN_RANGE),
    RV(CKR_FUNCTION_CANCELED), RV(CKR_FUNCTION_NOT_PARALLEL), RV(CKR_FUNCTION_NOT_SUPPORTED),
    RV(CKR_KEY_HANDLE_INVALID), RV(CKR_KEY_SIZE_RANGE), RV(CKR_KEY_TYPE_INCONSISTENT),
    RV(CKR_KEY_NOT_NEEDED), RV(CKR_KEY_CHANGED), RV(CKR_KEY_NEEDED), RV(CKR_KEY_INDIGESTIBLE),
    RV(CKR_KEY_FUNCTION_NOT_PERMITTED), RV(CKR_KEY_NOT_WRAPPABLE), RV(CKR_KEY_UNEXTRACTABLE),
    RV(CKR_MECHANISM_INVALID), RV(CKR_MECHANISM_PARAM_INVALID), RV(CKR_OBJECT_HANDLE_INVALID),
    RV(CKR_OPERATION_ACTIVE), RV(CKR_OPERATION_NOT_INITIALIZED), RV(CKR_PIN_INCORRECT),
    RV(CKR_PIN_INVALID), RV(CKR_PIN_LEN_RANGE), RV(CKR_PIN_EXPIRED), RV(CKR_PIN_LOCKED),
    RV(CKR_SESSION_CLOSED), RV(CKR_SESSION_COUNT), RV(CKR_SESSION_HANDLE_INVALID),
    RV(CKR_SESSION_PARALLEL_NOT_SUPPORTED), RV(CKR_SESSION_READ_ONLY), RV(CKR_SESSION_EXISTS),
    RV(CKR_SESSION_READ_ONLY_EXISTS), RV(CKR_SESSION_READ_WRITE_SO_EXISTS),
    RV(CKR_SIGNATURE_INVALID), RV(CKR_SIGNATURE_LEN_RANGE), RV(CKR_TEMPLATE_INCOMPLETE),
    RV(CKR_TEMPLATE_INCONSISTENT), RV(CKR_TOKEN_NOT_PRESENT), RV(CKR_TOKEN_NOT_RECOGNIZED),
    RV(CKR_TOKEN_WRITE_PROTECTED), RV(CKR_UNWRAPPING_KEY_HANDLE_INVALID),
    RV(CKR_UNWRAPPING_KEY_SIZE_RANGE), RV(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT),
    RV(CKR_USER_ALREADY_LOGGED_IN), RV(CKR_USER_NOT_LOGGED_IN), RV(CKR_USER_PIN_NOT_INITIALIZED),
    RV(CKR_USER_TYPE_INVALID), RV(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
    RV(CKR_USER_TOO_MANY_TYPES), RV(CKR_WRAPPED_KEY_INVALID), RV(CKR_WRAPPED_KEY_LEN_RANGE),
    RV(CKR_WRAPPING_KEY_HANDLE_INVALID), RV(CKR_WRAPPING_KEY_SIZE_RANGE),
    RV(CKR_WRAPPING_KEY_TYPE_INCONSISTENT), RV(CKR_RANDOM_SEED_NOT_SUPPORTED),
    RV(CKR_RANDOM_NO_RNG), RV(CKR_DOMAIN_PARAMS_INVALID), RV(CKR_CURVE_NOT_SUPPORTED),
    RV(CKR_BUFFER_TOO_SMALL), RV(CKR_SAVED_STATE_INVALID), RV(CKR_INFORMATION_SENSITIVE),
    RV(CKR_STATE_UNSAVEABLE), RV(CKR_CRYPTOKI_NOT_INITIALIZED),
    RV(CKR_CRYPTOKI_ALREADY_INITIALIZED), RV(CKR_MUTEX_BAD), RV(CKR_MUTEX_NOT_LOCKED),
    RV(CKR_FUNCTION_REJECTED),
};
#undef RV

const char* hint_for(CK_RV rv) {
  switch (rv) {
  case CKR_PIN_INCORRECT: return "Check the PIN; tokenprov does not retry, so no further try was used.";
  case CKR_PIN_LOCKED: return "The PIN is blocked: unblock it with 'tokenprov pin unblock' and the SO PIN.";
  case CKR_PIN_LEN_RANGE:
  case CKR_PIN_INVALID: return "Choose a PIN whose length and characters the token accepts (see 'tokenprov list').";
  case CKR_PIN_EXPIRED: return "Set a new PIN with 'tokenprov pin change'.";
  case CKR_USER_PIN_NOT_INITIALIZED: return "Initialize the token first with 'tokenprov init'.";
  case CKR_TOKEN_NOT_PRESENT:
  case CKR_DEVICE_REMOVED: return "Insert the token (or check its reader) and run the command again.";
  case CKR_DEVICE_ERROR: return "The token reported a hardware error: re-insert it and try again; if it persists, replace it.";
  case CKR_DEVICE_MEMORY: return "The token is full: remove objects you no longer need (with care) or use another token.";
  case CKR_TOKEN_WRITE_PROTECTED: return "The token is write-protected; enable writing on the token and try again.";
  case CKR_KEY_UNEXTRACTABLE: return "The key was made non-exportable; it can never leave the token.";
  case CKR_MECHANISM_INVALID: return "The token does not support this algorithm; choose another or another token.";
  case CKR_SESSION_HANDLE_INVALID:
  case CKR_SESSION_CLOSED: return "The session with the token was lost (was it removed?); run the command again.";
  case CKR_USER_NOT_LOGGED_IN: return "Give a PIN source (--pin-source) so tokenprov can log in.";
  case CKR_KEY_FUNCTION_NOT_PERMITTED: return "The key's policy on the token does not allow this use.";
  case CKR_KEY_SIZE_RANGE: return "The module does not support this key size; choose a size within the range its mechanism information gives.";
  case CKR_CURVE_NOT_SUPPORTED:
  case CKR_DOMAIN_PARAMS_INVALID: return "The module does not support this curve; choose another algorithm.";
  case CKR_FUNCTION_NOT_SUPPORTED: return "The module does not implement this function: it is a limit of the module.";
  case CKR_ATTRIBUTE_TYPE_INVALID:
  case CKR_ATTRIBUTE_VALUE_INVALID:
  case CKR_TEMPLATE_INCONSISTENT:
  case CKR_TEMPLATE_INCOMPLETE:
    return "The module refused an attribute of the object; see docs/modules.md for what each module accepts.";
  case CKR_ARGUMENTS_BAD:
    return "The module refused the call's arguments; some modules (tpm2-pkcs11) answer this when an operation is "
           "not supported on this token, e.g. re-initializing an initialized token.";
  case CKR_RANDOM_NO_RNG: return "The token has no random number generator.";
  case CKR_TOKEN_NOT_RECOGNIZED: return "The module cannot read this token; it may be damaged or of a kind the module does not know.";
  case CKR_GENERAL_ERROR:
  case CKR_FUNCTION_FAILED: return "The module reported an internal failure; the token may be damaged (see 'tokenprov list').";
  default: return "";
  }
}
} // namespace

std::string rv_name(CK_RV rv) {
  for (const auto& n : kNames)
    if (n.rv == rv) return n.name;
  char buf[32];
  std::snprintf(buf, sizeof buf, "CKR_0x%08lx", static_cast<unsigned long>(rv));
  return buf;
}

ExitCode rv_exit_code(CK_RV rv) {
  // Every answer of a module maps to a contract code: a PIN problem (3), a key
  // the module will not let out (4), anything else the token or module did or
  // refused (6). Even CKR_ARGUMENTS_BAD is the module's word here (tpm2-pkcs11
  // answers it to a re-initialization), never exit 1.
  switch (rv) {
  case CKR_PIN_INCORRECT:
  case CKR_PIN_INVALID:
  case CKR_PIN_LEN_RANGE:
  case CKR_PIN_EXPIRED:
  case CKR_PIN_LOCKED:
  case CKR_USER_PIN_NOT_INITIALIZED:
  case CKR_USER_NOT_LOGGED_IN:
    return ExitCode::Pin;
  case CKR_KEY_UNEXTRACTABLE:
  case CKR_KEY_FUNCTION_NOT_PERMITTED:
    return ExitCode::Policy;
  default:
    return ExitCode::Token;
  }
}

void check(CK_RV rv, const char* function, const std::string& what) {
  if (rv == CKR_OK) return;
  std::string msg;
  if (!what.empty()) msg = what + ": ";
  msg += std::string(function) + " failed with " + rv_name(rv);
  throw P11Error(rv, function, msg, hint_for(rv));
}

} // namespace tokenprov::p11
