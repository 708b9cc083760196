// SPDX-License-Identifier: Apache-2.0
// p11::Session: a session on one slot (login, objects, attributes, sign,
// decrypt, wrap); the module it belongs to is module.cpp.
#include "tokenprov/p11/module.hpp"

#include <algorithm>
#include <cstring>

namespace tokenprov::p11 {

std::string pin_flags_sentence(CK_FLAGS flags, bool so) {
  CK_FLAGS locked = so ? CKF_SO_PIN_LOCKED : CKF_USER_PIN_LOCKED;
  CK_FLAGS final_try = so ? CKF_SO_PIN_FINAL_TRY : CKF_USER_PIN_FINAL_TRY;
  CK_FLAGS low = so ? CKF_SO_PIN_COUNT_LOW : CKF_USER_PIN_COUNT_LOW;
  if (flags & locked) return "The token reports the PIN is now locked (PIN_LOCKED).";
  if (flags & final_try) return "The token reports that the next wrong PIN locks it (PIN_FINAL_TRY).";
  if (flags & low) return "The token reports few tries left (PIN_COUNT_LOW).";
  return "The token reports no tries-left warning.";
}

Session::Session(std::shared_ptr<Module> module, CK_SLOT_ID slot, bool read_write)
    : module_(std::move(module)), slot_(slot) {
  CK_FLAGS flags = CKF_SERIAL_SESSION | (read_write ? CKF_RW_SESSION : 0);
  std::shared_lock<std::shared_mutex> shared(module_->slot_list_mutex_);
  check(module_->fn()->C_OpenSession(slot, flags, nullptr, nullptr, &h_), "C_OpenSession", "opening a session");
  std::lock_guard<std::mutex> lock(module_->sessions_mutex_);
  ++module_->sessions_open_[slot_];
}

Session::Session(Session&& o) noexcept
    : module_(std::move(o.module_)), slot_(o.slot_), h_(o.h_), logged_in_(o.logged_in_) {
  o.h_ = CK_INVALID_HANDLE;
  o.logged_in_ = false;
}

Session::~Session() noexcept {
  if (!module_ || h_ == CK_INVALID_HANDLE) return;
  bool last = false;
  {
    std::lock_guard<std::mutex> lock(module_->sessions_mutex_);
    last = --module_->sessions_open_[slot_] == 0 && module_->owns_initialize();
  }
  // The last session's close logs the token out (see sessions_open_).
  if (!last || module_->fn()->C_CloseSession(h_) != CKR_OK) {
    logout();
    if (!last) module_->fn()->C_CloseSession(h_);
  }
}

void Session::login(CK_USER_TYPE user, const Secret& pin) {
  CK_RV rv =
      fn()->C_Login(h_, user, reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(pin.str().data())), pin.size());
  if (rv == CKR_USER_ALREADY_LOGGED_IN) {
    logged_in_ = true;
    return;
  }
  const char* who = user == CKU_SO ? "SO PIN" : "user PIN";
  if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED) {
    std::string flags;
    try {
      flags = pin_flags_sentence(token_info().flags, user == CKU_SO);
    } catch (...) {
    }
    std::string label;
    try {
      label = token_info().label;
    } catch (...) {
    }
    std::string msg = rv == CKR_PIN_LOCKED ? std::string("The ") + who + " of token '" + label + "' is locked."
                                           : std::string("The ") + who + " for token '" + label + "' is incorrect.";
    if (rv == CKR_PIN_INCORRECT && !flags.empty()) msg += " " + flags;
    throw P11Error(rv, "C_Login", msg,
                   rv == CKR_PIN_LOCKED
                       ? "Unblock it with 'tokenprov pin unblock' (SO PIN) or re-initialize with --force."
                       : "tokenprov does not retry a wrong PIN; check it and run again.");
  }
  check(rv, "C_Login", std::string("logging in with the ") + who);
  logged_in_ = true;
}

void Session::logout() noexcept {
  if (logged_in_ && module_) module_->fn()->C_Logout(h_);
  logged_in_ = false;
}

void Session::init_pin(const Secret& new_pin) {
  check(fn()->C_InitPIN(h_, reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(new_pin.str().data())), new_pin.size()),
        "C_InitPIN", "setting the user PIN");
}

void Session::set_pin(const Secret& old_pin, const Secret& new_pin) {
  check(fn()->C_SetPIN(h_, reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(old_pin.str().data())), old_pin.size(),
                       reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(new_pin.str().data())), new_pin.size()),
        "C_SetPIN", "changing the PIN");
}

std::vector<CK_OBJECT_HANDLE> Session::find(Attributes& templ, std::size_t max) const {
  check(fn()->C_FindObjectsInit(h_, templ.data(), templ.size()), "C_FindObjectsInit", "searching objects");
  std::vector<CK_OBJECT_HANDLE> out;
  CK_OBJECT_HANDLE batch[64];
  CK_RV rv = CKR_OK;
  for (;;) {
    CK_ULONG n = 0;
    rv = fn()->C_FindObjects(h_, batch, 64, &n);
    if (rv != CKR_OK || n == 0) break;
    out.insert(out.end(), batch, batch + n);
    if (max && out.size() >= max) break;
  }
  CK_RV final_rv = fn()->C_FindObjectsFinal(h_);
  check(rv, "C_FindObjects", "searching objects");
  // Not ignorable like C_Logout or C_CloseSession: the session goes on being
  // used, and a search the token did not end would make the next one fail
  // with CKR_OPERATION_ACTIVE. Failing here lets the caller roll back.
  check(final_rv, "C_FindObjectsFinal", "ending a search for objects");
  if (max && out.size() > max) out.resize(max);
  return out;
}

CK_OBJECT_HANDLE Session::create(Attributes& templ, const std::string& what) {
  CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
  // A module known to refuse the optional attributes gets the object without
  // them at once; one that refuses them for the first time gets it again
  // without them (nothing was created by the refused call).
  if (templ.has_optional() && module_->refuses_optional_.load()) {
    Attributes required = templ.required_only();
    check(fn()->C_CreateObject(h_, required.data(), required.size(), &h), "C_CreateObject", what);
    return h;
  }
  CK_RV rv = fn()->C_CreateObject(h_, templ.data(), templ.size(), &h);
  if (rv == CKR_ATTRIBUTE_TYPE_INVALID && templ.has_optional()) {
    Attributes required = templ.required_only();
    rv = fn()->C_CreateObject(h_, required.data(), required.size(), &h);
    if (rv == CKR_OK) module_->refuses_optional_.store(true);
  }
  check(rv, "C_CreateObject", what);
  return h;
}

void Session::destroy(CK_OBJECT_HANDLE obj) const {
  check(fn()->C_DestroyObject(h_, obj), "C_DestroyObject", "removing an object");
}

void Session::set_attributes(CK_OBJECT_HANDLE obj, Attributes& templ, const std::string& what) const {
  check(fn()->C_SetAttributeValue(h_, obj, templ.data(), templ.size()), "C_SetAttributeValue", what);
}

bool Session::destroy_noexcept(CK_OBJECT_HANDLE obj) const noexcept {
  return fn()->C_DestroyObject(h_, obj) == CKR_OK;
}

std::optional<Bytes> Session::attr_bytes(CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type) const {
  // One call for the usual sizes (ids, labels, public keys, most certificates):
  // asking for the length first doubled the calls, and on SoftHSM2 each call
  // costs tens of microseconds of file checks. A bigger value, or a module
  // that answers CKR_BUFFER_TOO_SMALL, takes the length query below.
  {
    std::uint8_t buf[4096];
    CK_ATTRIBUTE a{type, buf, sizeof buf};
    CK_RV rv = fn()->C_GetAttributeValue(h_, obj, &a, 1);
    if (rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID) return std::nullopt;
    if (rv == CKR_OK) {
      if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION) return std::nullopt;
      if (a.ulValueLen <= sizeof buf) return Bytes(buf, buf + a.ulValueLen);
    } else if (rv != CKR_BUFFER_TOO_SMALL) {
      check(rv, "C_GetAttributeValue", "reading an attribute");
    }
  }
  CK_ATTRIBUTE a{type, nullptr, 0};
  CK_RV rv = fn()->C_GetAttributeValue(h_, obj, &a, 1);
  if (rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID) return std::nullopt;
  check(rv, "C_GetAttributeValue", "reading an attribute");
  if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION) return std::nullopt;
  Bytes v(a.ulValueLen);
  a.pValue = v.data();
  rv = fn()->C_GetAttributeValue(h_, obj, &a, 1);
  if (rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID) return std::nullopt;
  check(rv, "C_GetAttributeValue", "reading an attribute");
  v.resize(a.ulValueLen);
  return v;
}

std::optional<bool> Session::attr_bool(CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type) const {
  auto v = attr_bytes(obj, type);
  if (!v || v->size() != sizeof(CK_BBOOL)) return std::nullopt;
  return (*v)[0] != CK_FALSE;
}

std::optional<CK_ULONG> Session::attr_ulong(CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type) const {
  auto v = attr_bytes(obj, type);
  if (!v || v->size() != sizeof(CK_ULONG)) return std::nullopt;
  CK_ULONG u;
  std::memcpy(&u, v->data(), sizeof u);
  return u;
}

std::string Session::attr_string(CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type) const {
  auto v = attr_bytes(obj, type);
  return v ? std::string(v->begin(), v->end()) : std::string();
}

std::vector<std::optional<bool>> Session::attr_bools(CK_OBJECT_HANDLE obj,
                                                    const std::vector<CK_ATTRIBUTE_TYPE>& types) const {
  std::vector<CK_BBOOL> vals(types.size(), CK_FALSE);
  std::vector<CK_ATTRIBUTE> t(types.size());
  for (std::size_t i = 0; i < types.size(); ++i)
    t[i] = CK_ATTRIBUTE{types[i], &vals[i], sizeof(CK_BBOOL)};
  CK_RV rv = fn()->C_GetAttributeValue(h_, obj, t.data(), static_cast<CK_ULONG>(t.size()));
  // These three still fill every attribute they can (PKCS#11 v2.40, 5.7).
  if (rv != CKR_ATTRIBUTE_SENSITIVE && rv != CKR_ATTRIBUTE_TYPE_INVALID && rv != CKR_BUFFER_TOO_SMALL)
    check(rv, "C_GetAttributeValue", "reading attributes");
  std::vector<std::optional<bool>> out(types.size());
  for (std::size_t i = 0; i < types.size(); ++i)
    if (t[i].ulValueLen == sizeof(CK_BBOOL)) out[i] = vals[i] != CK_FALSE;
  return out;
}

std::vector<std::optional<Bytes>> Session::attrs(CK_OBJECT_HANDLE obj,
                                                const std::vector<CK_ATTRIBUTE_TYPE>& types) const {
  constexpr std::size_t kRoom = 1024;
  std::vector<std::uint8_t> buf(types.size() * kRoom);
  std::vector<CK_ATTRIBUTE> t(types.size());
  for (std::size_t i = 0; i < types.size(); ++i)
    t[i] = CK_ATTRIBUTE{types[i], buf.data() + i * kRoom, kRoom};
  CK_RV rv = fn()->C_GetAttributeValue(h_, obj, t.data(), static_cast<CK_ULONG>(t.size()));
  // These three still fill every attribute they can (PKCS#11 v2.40, 5.7).
  if (rv != CKR_ATTRIBUTE_SENSITIVE && rv != CKR_ATTRIBUTE_TYPE_INVALID && rv != CKR_BUFFER_TOO_SMALL)
    check(rv, "C_GetAttributeValue", "reading attributes");
  std::vector<std::optional<Bytes>> out(types.size());
  for (std::size_t i = 0; i < types.size(); ++i) {
    if (t[i].ulValueLen == CK_UNAVAILABLE_INFORMATION) {
      // Too long for its room (CKR_BUFFER_TOO_SMALL), or not there: ask for it alone.
      if (rv == CKR_BUFFER_TOO_SMALL) out[i] = attr_bytes(obj, types[i]);
    } else if (t[i].ulValueLen <= kRoom) {
      out[i] = Bytes(buf.data() + i * kRoom, buf.data() + i * kRoom + t[i].ulValueLen);
    } else {
      out[i] = attr_bytes(obj, types[i]);
    }
  }
  return out;
}

std::pair<CK_OBJECT_HANDLE, CK_OBJECT_HANDLE> Session::generate_key_pair(CK_MECHANISM& mech, Attributes& pub,
                                                                         Attributes& priv, const std::string& what) {
  CK_OBJECT_HANDLE hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE;
  check(fn()->C_GenerateKeyPair(h_, &mech, pub.data(), pub.size(), priv.data(), priv.size(), &hpub, &hpriv),
        "C_GenerateKeyPair", what);
  return {hpub, hpriv};
}

Bytes Session::sign(CK_MECHANISM& mech, CK_OBJECT_HANDLE key, std::span<const std::uint8_t> data) const {
  check(fn()->C_SignInit(h_, &mech, key), "C_SignInit", "signing on the token");
  // One call with room for any signature tokenprov makes (RSA-4096: 512
  // bytes); asked for the length only if the token needs more. A short buffer
  // (CKR_BUFFER_TOO_SMALL) leaves the operation active (PKCS#11 5.2).
  Bytes sig(512);
  CK_ULONG n = sig.size();
  auto* in = const_cast<CK_BYTE_PTR>(data.data());
  CK_RV rv = fn()->C_Sign(h_, in, data.size(), sig.data(), &n);
  if (rv == CKR_BUFFER_TOO_SMALL) {
    sig.resize(n);
    rv = fn()->C_Sign(h_, in, data.size(), sig.data(), &n);
  }
  check(rv, "C_Sign", "signing on the token");
  sig.resize(n);
  return sig;
}

Bytes Session::decrypt(CK_MECHANISM& mech, CK_OBJECT_HANDLE key, std::span<const std::uint8_t> data) const {
  check(fn()->C_DecryptInit(h_, &mech, key), "C_DecryptInit", "decrypting on the token");
  CK_ULONG n = 0;
  auto* in = const_cast<CK_BYTE_PTR>(data.data());
  check(fn()->C_Decrypt(h_, in, data.size(), nullptr, &n), "C_Decrypt", "decrypting on the token");
  Bytes out(n);
  check(fn()->C_Decrypt(h_, in, data.size(), out.data(), &n), "C_Decrypt", "decrypting on the token");
  out.resize(n);
  return out;
}

Bytes Session::wrap_key(CK_MECHANISM& mech, CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key) const {
  CK_ULONG n = 0;
  check(fn()->C_WrapKey(h_, &mech, wrapping, key, nullptr, &n), "C_WrapKey", "wrapping the key for export");
  // NSS's length answer for a private key can fall short of what it then
  // writes (it guesses the PKCS#8 size): grow and ask again, a few times.
  Bytes out(n);
  CK_RV rv = CKR_OK;
  for (int i = 0; i < 4; ++i) {
    CK_ULONG got = out.size();
    rv = fn()->C_WrapKey(h_, &mech, wrapping, key, out.data(), &got);
    if (rv != CKR_BUFFER_TOO_SMALL) {
      n = got;
      break;
    }
    out.resize(std::max<std::size_t>(got, out.size() * 2 + 64));
  }
  check(rv, "C_WrapKey", "wrapping the key for export");
  out.resize(n);
  return out;
}

CK_OBJECT_HANDLE Session::unwrap_key(CK_MECHANISM& mech, CK_OBJECT_HANDLE unwrapping,
                                     std::span<const std::uint8_t> wrapped, Attributes& templ,
                                     const std::string& what) const {
  CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
  check(fn()->C_UnwrapKey(h_, &mech, unwrapping, const_cast<CK_BYTE_PTR>(wrapped.data()), wrapped.size(), templ.data(),
                          templ.size(), &h),
        "C_UnwrapKey", what);
  return h;
}

Bytes Session::random(std::size_t n) const {
  Bytes out(n);
  check(fn()->C_GenerateRandom(h_, out.data(), n), "C_GenerateRandom");
  return out;
}

} // namespace tokenprov::p11
