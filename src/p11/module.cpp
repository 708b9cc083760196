// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/p11/module.hpp"

#include "tokenprov/p11/function_list.hpp"
#include "tokenprov/p11/timing.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <sys/stat.h>

namespace tokenprov::p11 {

std::string trim_field(const unsigned char* p, std::size_t n) {
  std::string s(reinterpret_cast<const char*>(p), n);
  auto end = s.find_last_not_of(" \0", std::string::npos, 2);
  if (end == std::string::npos) return {};
  s.resize(end + 1);
  return s;
}

namespace {
std::mutex g_registry_mutex;
std::map<std::string, std::weak_ptr<Module>>& registry() {
  static std::map<std::string, std::weak_ptr<Module>> r;
  return r;
}
} // namespace

std::shared_ptr<Module> Module::load(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  auto& reg = registry();
  if (auto it = reg.find(path); it != reg.end())
    if (auto m = it->second.lock()) return m;

  struct stat st {};
  if (path.find('/') != std::string::npos && ::stat(path.c_str(), &st) != 0)
    fail(ExitCode::Token, "The PKCS#11 module '" + path + "' does not exist.",
         "Check --module, the profile's module, or TOKENPROV_MODULE.");
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* e = ::dlerror();
    fail(ExitCode::Token, "Cannot load the PKCS#11 module '" + path + "': " + (e ? e : "unknown error") + ".",
         "Check that the path names a PKCS#11 module (a shared library) for this machine.");
  }
  auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(handle, "C_GetFunctionList"));
  if (!get) {
    ::dlclose(handle);
    fail(ExitCode::Token, "'" + path + "' is not a PKCS#11 module: it has no C_GetFunctionList.",
         "Point --module at the token vendor's PKCS#11 library.");
  }
  CK_FUNCTION_LIST* fn = nullptr;
  CK_RV rv = get(&fn);
  if (rv != CKR_OK || !fn) {
    ::dlclose(handle);
    fail(ExitCode::Token, "The PKCS#11 module '" + path + "' refused C_GetFunctionList (" + rv_name(rv) + ").");
  }
  try {
    check_function_list(fn, path); // a NULL entry would crash the process when called
  } catch (...) {
    ::dlclose(handle);
    throw;
  }
  fn = timing::wrap(fn); // the module's own list unless --timings asked for a timing wrapper
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  rv = fn->C_Initialize(&args);
  bool owner = true;
  if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
    owner = false; // someone else in this process initialized it and will finalize it
  } else if (rv != CKR_OK) {
    ::dlclose(handle);
    fail(ExitCode::Token, "The PKCS#11 module '" + path + "' failed to initialize (C_Initialize: " + rv_name(rv) + ").",
         "For SoftHSM2, check SOFTHSM2_CONF and that its token folder exists.");
  }
  std::shared_ptr<Module> m(new Module(path, handle, fn, owner));
  reg[path] = m;
  return m;
}

Module::Module(std::string path, void* handle, CK_FUNCTION_LIST* fn, bool owner)
    : path_(std::move(path)), handle_(handle), fn_(fn), owner_(owner) {}

Module::~Module() {
  {
    std::lock_guard<std::mutex> lock(g_registry_mutex);
    auto& reg = registry();
    if (auto it = reg.find(path_); it != reg.end() && it->second.expired()) reg.erase(it);
  }
  if (owner_ && fn_) fn_->C_Finalize(nullptr);
  // The module stays mapped: some modules register atexit handlers or
  // threads, and unmapping them under their feet crashes at exit.
  (void)handle_;
}

std::string Module::library_description() const {
  CK_INFO info{};
  check(fn_->C_GetInfo(&info), "C_GetInfo");
  return trim_field(info.libraryDescription, sizeof info.libraryDescription);
}

std::string Module::manufacturer() const {
  CK_INFO info{};
  check(fn_->C_GetInfo(&info), "C_GetInfo");
  return trim_field(info.manufacturerID, sizeof info.manufacturerID);
}

LibraryInfo Module::library_info() const {
  CK_INFO info{};
  check(fn_->C_GetInfo(&info), "C_GetInfo");
  LibraryInfo out;
  out.manufacturer = trim_field(info.manufacturerID, sizeof info.manufacturerID);
  out.description = trim_field(info.libraryDescription, sizeof info.libraryDescription);
  out.version_major = info.libraryVersion.major;
  out.version_minor = info.libraryVersion.minor;
  return out;
}

std::vector<CK_SLOT_ID> Module::slots(bool token_present) const {
  std::unique_lock<std::shared_mutex> alone(slot_list_mutex_); // may change the module's slot table
  CK_ULONG n = 0;
  check(fn_->C_GetSlotList(token_present ? CK_TRUE : CK_FALSE, nullptr, &n), "C_GetSlotList", "listing slots");
  std::vector<CK_SLOT_ID> ids(n);
  if (n)
    check(fn_->C_GetSlotList(token_present ? CK_TRUE : CK_FALSE, ids.data(), &n), "C_GetSlotList", "listing slots");
  ids.resize(n);
  return ids;
}

SlotInfo Module::slot_info(CK_SLOT_ID slot) const {
  CK_SLOT_INFO si{};
  {
    std::shared_lock<std::shared_mutex> shared(slot_list_mutex_);
    check(fn_->C_GetSlotInfo(slot, &si), "C_GetSlotInfo");
  }
  SlotInfo out;
  out.slot_id = slot;
  out.description = trim_field(si.slotDescription, sizeof si.slotDescription);
  out.manufacturer = trim_field(si.manufacturerID, sizeof si.manufacturerID);
  out.token_present = si.flags & CKF_TOKEN_PRESENT;
  return out;
}

TokenInfo Module::token_info(CK_SLOT_ID slot) const {
  CK_TOKEN_INFO ti{};
  {
    std::shared_lock<std::shared_mutex> shared(slot_list_mutex_);
    check(fn_->C_GetTokenInfo(slot, &ti), "C_GetTokenInfo", "reading the token's information");
  }
  TokenInfo out;
  out.slot_id = slot;
  out.label = trim_field(ti.label, sizeof ti.label);
  out.manufacturer = trim_field(ti.manufacturerID, sizeof ti.manufacturerID);
  out.model = trim_field(ti.model, sizeof ti.model);
  out.serial = trim_field(ti.serialNumber, sizeof ti.serialNumber);
  out.flags = ti.flags;
  out.min_pin = ti.ulMinPinLen;
  out.max_pin = ti.ulMaxPinLen;
  note_serial(out.serial, slot);
  return out;
}

void Module::note_serial(const std::string& serial, CK_SLOT_ID slot) const {
  if (serial.empty()) return;
  std::lock_guard<std::mutex> lock(hint_mutex_);
  if (shared_serials_.count(serial)) return;
  auto [it, fresh] = slot_by_serial_.emplace(serial, slot);
  if (!fresh && it->second != slot) {
    // Two slots, one serial: the serial names no token on its own here.
    shared_serials_.insert(serial);
    slot_by_serial_.erase(it);
  }
}

SlotScan Module::scan() const {
  SlotScan out;
  for (auto id : slots(true)) {
    try {
      out.tokens.push_back(token_info(id));
    } catch (const P11Error& e) {
      if (e.rv() == CKR_TOKEN_NOT_PRESENT) continue; // pulled between the two calls
      out.unreadable.push_back({id, e.rv()});
    }
  }
  return out; // token_info() noted each serial's slot
}

std::optional<TokenInfo> Module::token_by_serial_hint(const std::string& serial) const {
  if (serial.empty()) return std::nullopt;
  CK_SLOT_ID slot = 0;
  {
    std::lock_guard<std::mutex> lock(hint_mutex_);
    auto it = slot_by_serial_.find(serial);
    if (it == slot_by_serial_.end()) return std::nullopt;
    slot = it->second;
  }
  try {
    TokenInfo t = token_info(slot);
    if (t.serial == serial) return t;
  } catch (const P11Error&) {
    // the slot went away or holds no token now: the caller scans
  }
  std::lock_guard<std::mutex> lock(hint_mutex_);
  slot_by_serial_.erase(serial);
  return std::nullopt;
}

std::vector<CK_MECHANISM_TYPE> Module::mechanisms(CK_SLOT_ID slot) const {
  std::shared_lock<std::shared_mutex> shared(slot_list_mutex_);
  // One call with room for any token's list (SoftHSM2 has ~70 mechanisms);
  // the length is asked for only when the module says it needs more.
  std::vector<CK_MECHANISM_TYPE> m(512);
  CK_ULONG n = m.size();
  CK_RV rv = fn_->C_GetMechanismList(slot, m.data(), &n);
  if (rv == CKR_BUFFER_TOO_SMALL) {
    n = 0;
    check(fn_->C_GetMechanismList(slot, nullptr, &n), "C_GetMechanismList");
    m.resize(n);
    rv = n ? fn_->C_GetMechanismList(slot, m.data(), &n) : CKR_OK;
  }
  check(rv, "C_GetMechanismList");
  m.resize(n);
  return m;
}

std::optional<CK_MECHANISM_INFO> Module::mechanism_info(CK_SLOT_ID slot, CK_MECHANISM_TYPE type) const {
  std::shared_lock<std::shared_mutex> shared(slot_list_mutex_);
  CK_MECHANISM_INFO info{};
  CK_RV rv = fn_->C_GetMechanismInfo(slot, type, &info);
  if (rv == CKR_MECHANISM_INVALID) return std::nullopt;
  check(rv, "C_GetMechanismInfo");
  return info;
}

void Module::init_token(CK_SLOT_ID slot, const Secret& so_pin, const std::string& label) {
  if (label.size() > 32) fail(ExitCode::Usage, "The token label '" + label + "' is longer than 32 bytes.");
  CK_UTF8CHAR lab[32];
  std::memset(lab, ' ', sizeof lab);
  std::memcpy(lab, label.data(), label.size());
  CK_RV rv;
  {
    // Shared: the slot table changes in C_GetSlotList (exclusive), not here;
    // other workers' sessions go on while this token is initialized.
    std::shared_lock<std::shared_mutex> shared(slot_list_mutex_);
    rv = fn_->C_InitToken(slot, reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(so_pin.str().data())),
                          so_pin.size(), lab);
  }
  if (rv == CKR_PIN_INCORRECT) {
    std::string flags;
    try {
      flags = pin_flags_sentence(token_info(slot).flags, true);
    } catch (...) {
    }
    throw P11Error(rv, "C_InitToken", "The SO PIN is incorrect." + (flags.empty() ? "" : " " + flags),
                   "tokenprov does not retry a wrong PIN.");
  }
  check(rv, "C_InitToken", "initializing the token '" + label + "'");
}

} // namespace tokenprov::p11
