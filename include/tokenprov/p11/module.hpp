// SPDX-License-Identifier: Apache-2.0
// RAII over a PKCS#11 module: Module (dlopen, C_GetFunctionList,
// C_Initialize/C_Finalize), slot and token info, Session.
//
// Lifetime ownership (see docs/architecture.md): tokenprov loads each module
// once per process through Module::load(), which keeps a registry keyed by
// the module's path. Every Session holds a shared_ptr to its Module, so the
// module is finalized only after the last session closed. If C_Initialize
// answers CKR_CRYPTOKI_ALREADY_INITIALIZED, somebody else in the process
// (libp11, the pkcs11 engine) owns the module: we use it and never call
// C_Finalize on it.
#pragma once

#include "tokenprov/p11/attributes.hpp"
#include "tokenprov/p11/error.hpp"
#include "tokenprov/secret.hpp"

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

namespace tokenprov::p11 {

struct TokenInfo {
  CK_SLOT_ID slot_id = 0;
  std::string label, manufacturer, model, serial;
  CK_FLAGS flags = 0;
  CK_ULONG min_pin = 0, max_pin = 0;
  bool initialized() const { return flags & CKF_TOKEN_INITIALIZED; }
  bool user_pin_initialized() const { return flags & CKF_USER_PIN_INITIALIZED; }
  bool login_required() const { return flags & CKF_LOGIN_REQUIRED; }
  bool write_protected() const { return flags & CKF_WRITE_PROTECTED; }
};

// A slot whose token the module cannot read (C_GetTokenInfo fails, e.g. a
// damaged SoftHSM2 token folder). Reported by list, skipped by token choice.
struct UnreadableSlot {
  CK_SLOT_ID slot_id = 0;
  CK_RV rv = CKR_OK;
};

struct SlotScan {
  std::vector<TokenInfo> tokens;
  std::vector<UnreadableSlot> unreadable;
};

struct SlotInfo {
  CK_SLOT_ID slot_id = 0;
  std::string description, manufacturer;
  bool token_present = false;
};

// C_GetInfo: what RFC 7512's library-* attributes name.
struct LibraryInfo {
  std::string manufacturer, description;
  unsigned version_major = 0, version_minor = 0; // libraryVersion
};

// Strips the blank padding of a fixed-size PKCS#11 string field.
std::string trim_field(const unsigned char* p, std::size_t n);

class Module : public std::enable_shared_from_this<Module> {
public:
  // Loads (or returns the already loaded) module at `path`. Throws Error(Token)
  // naming the path when it cannot be loaded or is not a PKCS#11 module.
  static std::shared_ptr<Module> load(const std::string& path);

  ~Module();
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  CK_FUNCTION_LIST* fn() const { return fn_; }
  const std::string& path() const { return path_; }
  bool owns_initialize() const { return owner_; }
  std::string library_description() const;
  std::string manufacturer() const;
  LibraryInfo library_info() const; // C_GetInfo once: manufacturer, description, version

  std::vector<CK_SLOT_ID> slots(bool token_present = true) const;
  SlotInfo slot_info(CK_SLOT_ID slot) const;
  TokenInfo token_info(CK_SLOT_ID slot) const;
  // Every slot with a token: the readable ones, and those whose token the
  // module cannot read (one damaged token never hides the others).
  SlotScan scan() const;
  std::vector<TokenInfo> tokens() const { return scan().tokens; }
  std::vector<CK_MECHANISM_TYPE> mechanisms(CK_SLOT_ID slot) const;
  // C_GetMechanismInfo; std::nullopt when the token answers CKR_MECHANISM_INVALID.
  std::optional<CK_MECHANISM_INFO> mechanism_info(CK_SLOT_ID slot, CK_MECHANISM_TYPE type) const;

  // The token with SERIAL by the slot where an earlier read saw it,
  // read again with one C_GetTokenInfo (no scan of every slot); std::nullopt
  // when no scan saw it yet, it is not there any more, or two slots were seen
  // with that serial (tpm2-pkcs11 and NSS give every token the same one): then scan.
  std::optional<TokenInfo> token_by_serial_hint(const std::string& serial) const;

  // C_InitToken: erases the token. Callers must have checked --force.
  void init_token(CK_SLOT_ID slot, const Secret& so_pin, const std::string& label);

  struct Private;

private:
  Module(std::string path, void* handle, CK_FUNCTION_LIST* fn, bool owner);
  std::string path_;
  void* handle_ = nullptr;
  CK_FUNCTION_LIST* fn_ = nullptr;
  bool owner_ = false;
  // Slot-list changes against slot calls. SoftHSM2 grows its slot table
  // inside C_GetSlotList (a new free slot once the last blank token is
  // initialized) without a lock, while C_OpenSession, C_GetTokenInfo, ...
  // look slots up in it. C_GetSlotList therefore runs alone (exclusive);
  // calls that name a slot (C_InitToken too) share the lock; calls on a
  // session handle take nothing. So fleet workers can open sessions on their tokens
  // while another thread initializes the next blank token.
  mutable std::shared_mutex slot_list_mutex_;
  friend class Session;
  // serial -> slot of every token read (token_info(), tokens()), for token_by_serial_hint().
  mutable std::mutex hint_mutex_;
  mutable std::map<std::string, CK_SLOT_ID> slot_by_serial_;
  mutable std::set<std::string> shared_serials_; // seen in more than one slot: never a hint
  // The module answered CKR_ATTRIBUTE_TYPE_INVALID to a template and took it
  // without its optional attributes (Attributes::optional()).
  std::atomic<bool> refuses_optional_{false};
  // Sessions this process has open, per slot. Closing the last session of a
  // token logs it out (PKCS#11 v2.40, C_CloseSession), so that session's
  // C_Logout, a card round trip, is left out; with others open, or on a
  // module another component initialized (its sessions are not counted
  // here), the session logs out first.
  std::mutex sessions_mutex_;
  std::map<CK_SLOT_ID, int> sessions_open_;
  void note_serial(const std::string& serial, CK_SLOT_ID slot) const;
};

class Session {
public:
  Session(std::shared_ptr<Module> module, CK_SLOT_ID slot, bool read_write);
  ~Session() noexcept; // logs out (if we logged in) and closes; errors swallowed
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  Session(Session&& other) noexcept;
  Session& operator=(Session&&) = delete;

  CK_SESSION_HANDLE handle() const { return h_; }
  CK_SLOT_ID slot() const { return slot_; }
  Module& module() const { return *module_; }
  const std::shared_ptr<Module>& module_ptr() const { return module_; }
  CK_FUNCTION_LIST* fn() const { return module_->fn(); }

  // Logs in once. A wrong PIN throws Error(Pin) with the token's tries-left
  // flags; it is never retried.
  void login(CK_USER_TYPE user, const Secret& pin);
  void logout() noexcept;
  bool logged_in() const { return logged_in_; }

  void init_pin(const Secret& new_pin);                       // as SO
  void set_pin(const Secret& old_pin, const Secret& new_pin); // as the logged-in user

  std::vector<CK_OBJECT_HANDLE> find(Attributes& templ, std::size_t max = 0) const;
  CK_OBJECT_HANDLE create(Attributes& templ, const std::string& what);
  void destroy(CK_OBJECT_HANDLE obj) const;
  void set_attributes(CK_OBJECT_HANDLE obj, Attributes& templ, const std::string& what) const;
  bool destroy_noexcept(CK_OBJECT_HANDLE obj) const noexcept;

  // Attribute reads. std::nullopt when the attribute is absent, invalid for
  // the object, or sensitive.
  std::optional<Bytes> attr_bytes(CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type) const;
  std::optional<bool> attr_bool(CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type) const;
  std::optional<CK_ULONG> attr_ulong(CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type) const;
  std::string attr_string(CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type) const;
  // Several CK_BBOOL attributes in one C_GetAttributeValue; std::nullopt for
  // each one the object does not have (or will not show).
  std::vector<std::optional<bool>> attr_bools(CK_OBJECT_HANDLE obj, const std::vector<CK_ATTRIBUTE_TYPE>& types) const;
  // Several attributes of any kind in one C_GetAttributeValue (a card round
  // trip each); a value the module has not (sensitive, invalid type) is
  // nullopt; one longer than 1024 bytes is read again alone (attr_bytes).
  std::vector<std::optional<Bytes>> attrs(CK_OBJECT_HANDLE obj, const std::vector<CK_ATTRIBUTE_TYPE>& types) const;

  std::pair<CK_OBJECT_HANDLE, CK_OBJECT_HANDLE> generate_key_pair(CK_MECHANISM& mech, Attributes& pub, Attributes& priv,
                                                                  const std::string& what);
  Bytes sign(CK_MECHANISM& mech, CK_OBJECT_HANDLE key, std::span<const std::uint8_t> data) const;
  Bytes decrypt(CK_MECHANISM& mech, CK_OBJECT_HANDLE key, std::span<const std::uint8_t> data) const;
  Bytes wrap_key(CK_MECHANISM& mech, CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key) const;
  CK_OBJECT_HANDLE unwrap_key(CK_MECHANISM& mech, CK_OBJECT_HANDLE unwrapping, std::span<const std::uint8_t> wrapped,
                              Attributes& templ, const std::string& what) const;
  Bytes random(std::size_t n) const;

  TokenInfo token_info() const { return module_->token_info(slot_); }

private:
  std::shared_ptr<Module> module_;
  CK_SLOT_ID slot_ = 0;
  CK_SESSION_HANDLE h_ = CK_INVALID_HANDLE;
  bool logged_in_ = false;
};

// The objects a step creates, destroyed again (newest first) unless the step
// commits: a step that fails, by an exception or an early return, leaves the
// token as it was. Destruction is best effort (a token pulled out cannot be
// cleaned); what a caller must then say is its own business.
class ObjectGuard {
public:
  explicit ObjectGuard(const Session& s) : s_(&s) {}
  ~ObjectGuard() { rollback(); }
  ObjectGuard(const ObjectGuard&) = delete;
  ObjectGuard& operator=(const ObjectGuard&) = delete;

  // Takes H into the guard; returns it for chaining with the call that made it.
  CK_OBJECT_HANDLE add(CK_OBJECT_HANDLE h) {
    if (h != CK_INVALID_HANDLE) created_.push_back(h);
    return h;
  }
  // The step succeeded: the objects stay.
  void commit() noexcept { created_.clear(); }
  // Destroys what was added, newest first.
  void rollback() noexcept {
    for (auto it = created_.rbegin(); it != created_.rend(); ++it)
      s_->destroy_noexcept(*it);
    created_.clear();
  }
  const std::vector<CK_OBJECT_HANDLE>& created() const { return created_; }

private:
  const Session* s_;
  std::vector<CK_OBJECT_HANDLE> created_;
};

// Reads the tries-left flags of a token as a sentence ("the token reports
// that the next wrong PIN locks it"); empty when nothing is flagged.
std::string pin_flags_sentence(CK_FLAGS flags, bool so);

} // namespace tokenprov::p11
