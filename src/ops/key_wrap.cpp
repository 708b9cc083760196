// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/key_wrap.hpp"

#include "tokenprov/ossl.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

// PKCS#11 v3.0; p11-kit's header (0.24) does not have it.
#ifndef CKM_AES_KEY_WRAP_KWP
#define CKM_AES_KEY_WRAP_KWP 0x210BUL
#endif

namespace tokenprov {

namespace {

using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, ossl::Deleter<EVP_CIPHER_CTX_free>>;

// A session-only AES-256 key whose value we made in software: the token
// forgets it when the session ends, even if tokenprov crashes.
class SessionAesKey {
public:
  SessionAesKey(const p11::Session& s, bool wrap) : s_(s), value_(32) {
    if (RAND_bytes(value_.data(), 32) != 1) ossl::fail_ssl(ExitCode::Internal, "No randomness for the transport key");
    p11::Attributes t;
    t.add_class(CKO_SECRET_KEY).add_ulong(CKA_KEY_TYPE, CKK_AES);
    t.add_bool(CKA_TOKEN, false).add_bool(CKA_PRIVATE, true).add_bool(CKA_SENSITIVE, true);
    t.add_bool(CKA_EXTRACTABLE, false);
    t.add_bool(CKA_WRAP, wrap).add_bool(CKA_UNWRAP, !wrap);
    t.add_bool(CKA_ENCRYPT, false).add_bool(CKA_DECRYPT, false);
    t.add_bytes(CKA_VALUE, value_);
    t.add_string(CKA_LABEL, "tokenprov transport key");
    h_ = const_cast<p11::Session&>(s).create(t, "creating the session key for the transfer");
  }
  ~SessionAesKey() {
    s_.destroy_noexcept(h_);
    OPENSSL_cleanse(value_.data(), value_.size());
  }
  SessionAesKey(const SessionAesKey&) = delete;
  SessionAesKey& operator=(const SessionAesKey&) = delete;
  CK_OBJECT_HANDLE handle() const { return h_; }
  const p11::Bytes& value() const { return value_; }

private:
  const p11::Session& s_;
  p11::Bytes value_;
  CK_OBJECT_HANDLE h_ = CK_INVALID_HANDLE;
};

// One EVP cipher run; std::nullopt when OpenSSL refuses (a failed integrity
// check on unwrap, bad padding). The output is wiped on failure.
std::optional<p11::Bytes> cipher(const EVP_CIPHER* c, const p11::Bytes& key, const std::uint8_t* iv,
                                 std::span<const std::uint8_t> in, bool enc) {
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (!ctx) return std::nullopt;
  EVP_CIPHER_CTX_set_flags(ctx.get(), EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  p11::Bytes out(in.size() + 32);
  int n1 = 0, n2 = 0;
  bool ok = EVP_CipherInit_ex(ctx.get(), c, nullptr, key.data(), iv, enc ? 1 : 0) == 1 &&
            EVP_CipherUpdate(ctx.get(), out.data(), &n1, in.data(), static_cast<int>(in.size())) == 1 &&
            EVP_CipherFinal_ex(ctx.get(), out.data() + n1, &n2) == 1;
  if (!ok) {
    OPENSSL_cleanse(out.data(), out.size());
    ERR_clear_error();
    return std::nullopt;
  }
  out.resize(static_cast<std::size_t>(n1 + n2));
  return out;
}

// PKCS#7 padding to the 8-byte semiblock of RFC 3394, as NSS pads for CKM_AES_KEY_WRAP_PAD.
p11::Bytes pad8(std::span<const std::uint8_t> in) {
  std::size_t n = 8 - in.size() % 8;
  p11::Bytes out(in.begin(), in.end());
  out.insert(out.end(), n, static_cast<std::uint8_t>(n));
  return out;
}

std::optional<p11::Bytes> unpad8(p11::Bytes v) {
  std::size_t n = v.empty() ? 0 : v.back();
  bool ok = n >= 1 && n <= 8 && n <= v.size() &&
            std::all_of(v.end() - static_cast<long>(n), v.end(), [n](std::uint8_t b) { return b == n; });
  if (!ok) {
    OPENSSL_cleanse(v.data(), v.size());
    return std::nullopt;
  }
  v.resize(v.size() - n);
  return v;
}

// What the host does to match the token's mechanism.
std::optional<p11::Bytes> soft_unwrap(WrapWay w, const p11::Bytes& kek, const std::uint8_t* iv,
                                      std::span<const std::uint8_t> in) {
  switch (w) {
  case WrapWay::Kwp:
  case WrapWay::Pad5649: return cipher(EVP_aes_256_wrap_pad(), kek, nullptr, in, false);
  case WrapWay::PadPkcs7: {
    auto raw = cipher(EVP_aes_256_wrap(), kek, nullptr, in, false);
    if (!raw) return std::nullopt;
    return unpad8(std::move(*raw));
  }
  case WrapWay::CbcPad: return cipher(EVP_aes_256_cbc(), kek, iv, in, false);
  }
  return std::nullopt;
}

p11::Bytes soft_wrap(WrapWay w, const p11::Bytes& kek, const std::uint8_t* iv, std::span<const std::uint8_t> in) {
  std::optional<p11::Bytes> out;
  if (w == WrapWay::PadPkcs7) {
    p11::Bytes padded = pad8(in);
    out = cipher(EVP_aes_256_wrap(), kek, nullptr, padded, true);
    OPENSSL_cleanse(padded.data(), padded.size());
  } else if (w == WrapWay::CbcPad) {
    out = cipher(EVP_aes_256_cbc(), kek, iv, in, true);
  } else {
    out = cipher(EVP_aes_256_wrap_pad(), kek, nullptr, in, true);
  }
  if (!out) ossl::fail_ssl(ExitCode::Internal, "Cannot wrap the key for the token");
  return *out;
}

CK_MECHANISM_TYPE mechanism_of(WrapWay w) {
  switch (w) {
  case WrapWay::Kwp: return CKM_AES_KEY_WRAP_KWP;
  case WrapWay::Pad5649:
  case WrapWay::PadPkcs7: return CKM_AES_KEY_WRAP_PAD;
  case WrapWay::CbcPad: return CKM_AES_CBC_PAD;
  }
  return CKM_AES_CBC_PAD;
}

// The mechanism with its parameter (the IV for CBC).
struct Mech {
  CK_MECHANISM m{};
  std::uint8_t iv[16] = {};
  explicit Mech(WrapWay w) {
    m.mechanism = mechanism_of(w);
    if (w == WrapWay::CbcPad) {
      if (RAND_bytes(iv, sizeof iv) != 1) ossl::fail_ssl(ExitCode::Internal, "No randomness for the IV");
      m.pParameter = iv;
      m.ulParameterLen = sizeof iv;
    }
  }
  Mech(const Mech&) = delete;
  Mech& operator=(const Mech&) = delete;
};

// Which reading of CKM_AES_KEY_WRAP_PAD each module implements, by module
// path, token manufacturer and model (one p11-kit proxy path can stand for
// several modules). std::nullopt: neither reading.
std::mutex g_readings_mutex;
std::map<std::string, std::optional<WrapWay>> g_readings;

std::string module_key(const p11::Session& s) {
  auto t = s.token_info();
  return s.module().path() + "\n" + t.manufacturer + "\n" + t.model;
}

// Whether V is KNOWN, or (SoftHSM2 2.6's CKM_AES_KEY_WRAP_PAD) KNOWN with
// zero bytes up to the next multiple of 8: SoftHSM2 pads with zeros before
// RFC 5649, so the length RFC 5649 carries counts the zeros.
bool starts_with_known(const p11::Bytes& v, std::span<const std::uint8_t> known) {
  return v.size() >= known.size() && v.size() - known.size() < 8 && std::equal(known.begin(), known.end(), v.begin()) &&
         std::all_of(v.begin() + static_cast<long>(known.size()), v.end(), [](std::uint8_t b) { return b == 0; });
}

// Known answer: the token wraps a session secret whose value we chose (20
// bytes, not a multiple of 8, so the two readings pad differently), and we
// see which reading unwraps it.
std::optional<WrapWay> probe_pad_reading(const p11::Session& s) {
  static const std::uint8_t known[20] = {'t', 'o', 'k', 'e', 'n', 'p', 'r', 'o', 'v', ' ',
                                         'k', 'w', 'p', ' ', 'p', 'r', 'o', 'b', 'e', '!'};
  SessionAesKey kek(s, true);
  p11::Attributes t;
  t.add_class(CKO_SECRET_KEY).add_ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET);
  t.add_bool(CKA_TOKEN, false).add_bool(CKA_SENSITIVE, false).add_bool(CKA_EXTRACTABLE, true);
  t.add_bytes(CKA_VALUE, known).add_string(CKA_LABEL, "tokenprov wrap probe");
  CK_OBJECT_HANDLE h = const_cast<p11::Session&>(s).create(t, "creating the secret that tells how the module wraps");
  p11::Bytes wrapped;
  try {
    CK_MECHANISM m{CKM_AES_KEY_WRAP_PAD, nullptr, 0};
    wrapped = s.wrap_key(m, kek.handle(), h);
  } catch (...) {
    s.destroy_noexcept(h);
    throw;
  }
  s.destroy_noexcept(h);
  for (WrapWay w : {WrapWay::Pad5649, WrapWay::PadPkcs7}) {
    auto v = soft_unwrap(w, kek.value(), nullptr, wrapped);
    if (v && starts_with_known(*v, known)) return w;
  }
  return std::nullopt;
}

// An answer that says the module will not do this, as opposed to a failure of the token.
bool module_declined(CK_RV rv) {
  switch (rv) {
  case CKR_MECHANISM_INVALID:
  case CKR_MECHANISM_PARAM_INVALID:
  case CKR_FUNCTION_NOT_SUPPORTED:
  case CKR_KEY_FUNCTION_NOT_PERMITTED:
  case CKR_KEY_NOT_WRAPPABLE:
  case CKR_KEY_UNEXTRACTABLE:
  case CKR_KEY_TYPE_INCONSISTENT:
  case CKR_WRAPPING_KEY_TYPE_INCONSISTENT:
  case CKR_WRAPPING_KEY_SIZE_RANGE:
  case CKR_ATTRIBUTE_TYPE_INVALID:
  case CKR_ATTRIBUTE_VALUE_INVALID:
  case CKR_ATTRIBUTE_READ_ONLY:
  case CKR_TEMPLATE_INCONSISTENT:
  case CKR_TEMPLATE_INCOMPLETE:
    return true;
  default:
    return false;
  }
}

std::optional<WrapWay> pad_reading(const p11::Session& s) {
  const std::string key = module_key(s);
  {
    std::lock_guard<std::mutex> lock(g_readings_mutex);
    if (auto it = g_readings.find(key); it != g_readings.end()) return it->second;
  }
  std::optional<WrapWay> r;
  try {
    r = probe_pad_reading(s);
  } catch (const p11::P11Error& e) {
    // The module would not make or wrap the probe's secret: its reading stays unknown, and
    // CKM_AES_KEY_WRAP_PAD is not used. Anything else (a device error, a token pulled out)
    // is the command's failure, told as it is, and nothing is remembered.
    if (!module_declined(e.rv())) throw;
  }
  std::lock_guard<std::mutex> lock(g_readings_mutex);
  g_readings[key] = r;
  return r;
}

std::string hex_mech(CK_MECHANISM_TYPE m) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%lX", static_cast<unsigned long>(m));
  return buf;
}

[[noreturn]] void no_way(const p11::Session& s, bool unwrap, const std::string& seen) {
  const char* flag = unwrap ? "CKF_UNWRAP" : "CKF_WRAP";
  fail(ExitCode::Token,
       "The token '" + s.token_info().label + "' (module " + s.module().path() + ") offers no way tokenprov can " +
           (unwrap ? "put a private key on it" : "take the key out") + ": it looked for CKM_AES_KEY_WRAP_KWP (0x210B), " +
           "CKM_AES_KEY_WRAP_PAD (0x210A) and CKM_AES_CBC_PAD (0x1085) with " + flag + "; " + seen + ". Nothing was " +
           (unwrap ? "written to the token." : "written."),
       unwrap ? "This token cannot import private keys; restore the backup onto another token."
              : "This token cannot export keys; make backups where the module can wrap keys.");
}
} // namespace

std::string wrap_way_name(WrapWay w) {
  switch (w) {
  case WrapWay::Kwp: return "CKM_AES_KEY_WRAP_KWP (RFC 5649)";
  case WrapWay::Pad5649: return "CKM_AES_KEY_WRAP_PAD (read as RFC 5649)";
  case WrapWay::PadPkcs7: return "CKM_AES_KEY_WRAP_PAD (read as PKCS#7 padding and RFC 3394)";
  case WrapWay::CbcPad: return "CKM_AES_CBC_PAD";
  }
  return "?";
}

WrapWay choose_wrap_way(const p11::Session& s, bool unwrap) {
  const CK_FLAGS flag = unwrap ? CKF_UNWRAP : CKF_WRAP;
  auto list = s.module().mechanisms(s.slot());
  auto offers = [&](CK_MECHANISM_TYPE m, CK_FLAGS f) {
    if (std::find(list.begin(), list.end(), m) == list.end()) return false;
    auto info = s.module().mechanism_info(s.slot(), m); // none when CKR_MECHANISM_INVALID
    return info && (info->flags & f) == f;
  };
  std::string seen;
  if (offers(CKM_AES_KEY_WRAP_KWP, flag)) return WrapWay::Kwp;
  // Both flags: the reading is learnt by a wrap.
  if (offers(CKM_AES_KEY_WRAP_PAD, flag | CKF_WRAP)) {
    if (auto r = pad_reading(s)) return *r;
    seen = "its CKM_AES_KEY_WRAP_PAD wraps neither as RFC 5649 nor as PKCS#7 padding and RFC 3394";
  }
  if (offers(CKM_AES_CBC_PAD, flag)) return WrapWay::CbcPad;
  if (seen.empty()) {
    seen = "it lists none of them with that flag";
    for (CK_MECHANISM_TYPE m : {CKM_AES_KEY_WRAP_KWP, CKM_AES_KEY_WRAP_PAD, CKM_AES_CBC_PAD})
      if (std::find(list.begin(), list.end(), m) != list.end()) seen += " (it has " + hex_mech(m) + " without it)";
  }
  no_way(s, unwrap, seen);
}

p11::Bytes wrap_out_pkcs8(const p11::Session& s, CK_OBJECT_HANDLE priv, WrapWay* used) {
  WrapWay w = choose_wrap_way(s, false);
  if (used) *used = w;
  SessionAesKey kek(s, true);
  Mech mech(w);
  p11::Bytes wrapped;
  try {
    wrapped = s.wrap_key(mech.m, kek.handle(), priv);
  } catch (const p11::P11Error& e) {
    if (e.rv() != CKR_KEY_NOT_WRAPPABLE) throw;
    auto kt = s.attr_ulong(priv, CKA_KEY_TYPE).value_or(CK_UNAVAILABLE_INFORMATION);
    fail(ExitCode::Token,
         "The module cannot wrap " + std::string(kt == CKK_EC_EDWARDS ? "Ed25519" : kt == CKK_EC ? "EC" : kt == CKK_RSA ? "RSA" : "such") +
             " keys (C_WrapKey with " + wrap_way_name(w) + " answered CKR_KEY_NOT_WRAPPABLE); no file was written.",
         "Keys of this type cannot leave this token (SoftHSM2 2.6 wraps RSA and EC keys, not Ed25519).");
  }
  auto pkcs8 = soft_unwrap(w, kek.value(), mech.iv, wrapped);
  if (!pkcs8)
    fail(ExitCode::Token, "The key the token wrapped with " + wrap_way_name(w) + " does not unwrap (" +
                              std::to_string(wrapped.size()) + " bytes); no file was written.");
  return *pkcs8;
}

CK_OBJECT_HANDLE unwrap_in_pkcs8(p11::Session& s, std::span<const std::uint8_t> pkcs8, p11::Attributes& templ,
                                 const std::string& what, WrapWay* used) {
  WrapWay w = choose_wrap_way(s, true);
  if (used) *used = w;
  std::optional<SessionAesKey> kek;
  try {
    kek.emplace(s, false);
  } catch (const p11::P11Error& e) {
    // tpm2-pkcs11, for one, imports no keys at all: it refuses the AES key too.
    throw p11::P11Error(e.rv(), e.function(),
                        "The token cannot import the key: it refused the session AES key the key would be "
                        "unwrapped with (" + e.function() + ": " + p11::rv_name(e.rv()) +
                            "); nothing was written to the token.",
                        "This token cannot import private keys; restore the backup onto another token.");
  }
  Mech mech(w);
  p11::Bytes wrapped = soft_wrap(w, kek->value(), mech.iv, pkcs8);
  try {
    return s.unwrap_key(mech.m, kek->handle(), wrapped, templ, what);
  } catch (const p11::P11Error& e) {
    if (e.rv() == CKR_FUNCTION_FAILED || e.rv() == CKR_FUNCTION_NOT_SUPPORTED || e.rv() == CKR_WRAPPED_KEY_INVALID)
      throw p11::P11Error(e.rv(), e.function(),
                          std::string(e.what()) + " (the key was unwrapped with " + wrap_way_name(w) +
                              "); nothing was written to the token",
                          "The token cannot import this key; restore it onto another token.");
    throw;
  }
}

void forget_wrap_readings() {
  std::lock_guard<std::mutex> lock(g_readings_mutex);
  g_readings.clear();
}

} // namespace tokenprov
