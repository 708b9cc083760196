// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/p11/timing.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <type_traits>

namespace tokenprov::p11::timing {

namespace {

using Clock = std::chrono::steady_clock;

// Every entry of a PKCS#11 2.40 CK_FUNCTION_LIST, in order.
#define TOKENPROV_P11_FUNCTIONS(X)                                                                                      \
  X(C_Initialize) X(C_Finalize) X(C_GetInfo) X(C_GetFunctionList) X(C_GetSlotList) X(C_GetSlotInfo)                    \
  X(C_GetTokenInfo) X(C_GetMechanismList) X(C_GetMechanismInfo) X(C_InitToken) X(C_InitPIN) X(C_SetPIN)               \
  X(C_OpenSession) X(C_CloseSession) X(C_CloseAllSessions) X(C_GetSessionInfo) X(C_GetOperationState)                 \
  X(C_SetOperationState) X(C_Login) X(C_Logout) X(C_CreateObject) X(C_CopyObject) X(C_DestroyObject)                   \
  X(C_GetObjectSize) X(C_GetAttributeValue) X(C_SetAttributeValue) X(C_FindObjectsInit) X(C_FindObjects)              \
  X(C_FindObjectsFinal) X(C_EncryptInit) X(C_Encrypt) X(C_EncryptUpdate) X(C_EncryptFinal) X(C_DecryptInit)           \
  X(C_Decrypt) X(C_DecryptUpdate) X(C_DecryptFinal) X(C_DigestInit) X(C_Digest) X(C_DigestUpdate) X(C_DigestKey)      \
  X(C_DigestFinal) X(C_SignInit) X(C_Sign) X(C_SignUpdate) X(C_SignFinal) X(C_SignRecoverInit) X(C_SignRecover)      \
  X(C_VerifyInit) X(C_Verify) X(C_VerifyUpdate) X(C_VerifyFinal) X(C_VerifyRecoverInit) X(C_VerifyRecover)           \
  X(C_DigestEncryptUpdate) X(C_DecryptDigestUpdate) X(C_SignEncryptUpdate) X(C_DecryptVerifyUpdate) X(C_GenerateKey) \
  X(C_GenerateKeyPair) X(C_WrapKey) X(C_UnwrapKey) X(C_DeriveKey) X(C_SeedRandom) X(C_GenerateRandom)                \
  X(C_GetFunctionStatus) X(C_CancelFunction) X(C_WaitForSlotEvent)

enum : std::size_t {
#define TOKENPROV_ENUM(name) k_##name,
  TOKENPROV_P11_FUNCTIONS(TOKENPROV_ENUM)
#undef TOKENPROV_ENUM
      kCount
};

constexpr std::array<const char*, kCount> kNames = {
#define TOKENPROV_NAME(name) #name,
    TOKENPROV_P11_FUNCTIONS(TOKENPROV_NAME)
#undef TOKENPROV_NAME
};

struct Counter {
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> ns{0};
};

// Process start (close enough: static initialization of this binary).
const Clock::time_point g_start = Clock::now();
std::atomic<bool> g_enabled{false};
std::array<Counter, kCount> g_counters;
CK_FUNCTION_LIST* g_real = nullptr; // the timed module's own list
CK_FUNCTION_LIST g_wrapped{};       // the list handed to Module
std::mutex g_wrap_mutex;

void record(std::size_t i, Clock::duration d) {
  g_counters[i].calls.fetch_add(1, std::memory_order_relaxed);
  g_counters[i].ns.fetch_add(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()),
                             std::memory_order_relaxed);
}

// One forwarding function per list entry, its signature taken from the entry's type.
template <std::size_t I, auto Member, typename F> struct Timed;
template <std::size_t I, auto Member, typename... A> struct Timed<I, Member, CK_RV (*)(A...)> {
  static CK_RV call(A... args) {
    auto t0 = Clock::now();
    CK_RV rv = (g_real->*Member)(args...);
    record(I, Clock::now() - t0);
    return rv;
  }
};

void build_wrapped(CK_FUNCTION_LIST* real) {
  g_wrapped.version = real->version;
#define TOKENPROV_WRAP(name)                                                                                            \
  g_wrapped.name = real->name ? &Timed<k_##name, &CK_FUNCTION_LIST::name, decltype(CK_FUNCTION_LIST::name)>::call   \
                              : nullptr;
  TOKENPROV_P11_FUNCTIONS(TOKENPROV_WRAP)
#undef TOKENPROV_WRAP
}

std::string ms(std::uint64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(ns) / 1e6);
  return buf;
}

} // namespace

void enable() { g_enabled.store(true); }
bool enabled() { return g_enabled.load(); }

CK_FUNCTION_LIST* wrap(CK_FUNCTION_LIST* real) {
  if (!real || !enabled()) return real;
  std::lock_guard<std::mutex> lock(g_wrap_mutex);
  if (g_real && g_real != real) return real; // only the first module is timed
  if (!g_real) {
    g_real = real;
    build_wrapped(real);
  }
  return &g_wrapped;
}

Report snapshot() {
  Report r;
  r.wall_ns = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - g_start).count());
  for (std::size_t i = 0; i < kCount; ++i) {
    Entry e{kNames[i], g_counters[i].calls.load(), g_counters[i].ns.load()};
    if (!e.calls) continue;
    r.p11_calls += e.calls;
    r.p11_ns += e.ns;
    r.entries.push_back(std::move(e));
  }
  std::sort(r.entries.begin(), r.entries.end(), [](const Entry& a, const Entry& b) { return a.ns > b.ns; });
  return r;
}

void print(std::ostream& out, const Report& r) {
  char pct[16];
  std::snprintf(pct, sizeof pct, "%.1f", r.wall_ns ? 100.0 * static_cast<double>(r.p11_ns) / static_cast<double>(r.wall_ns) : 0.0);
  out << "tokenprov: timings: wall " << ms(r.wall_ns) << " ms; in PKCS#11 " << ms(r.p11_ns) << " ms (" << pct
      << "%), " << r.p11_calls << " calls\n";
  for (auto& e : r.entries) {
    char line[128];
    std::snprintf(line, sizeof line, "tokenprov: timings:   %-22s %6llu calls %10s ms\n", e.function.c_str(),
                  static_cast<unsigned long long>(e.calls), ms(e.ns).c_str());
    out << line;
  }
  out.flush();
}

PrintAtExit::~PrintAtExit() {
  if (!enabled()) return;
  try {
    print(std::cerr, snapshot());
  } catch (...) {
  }
}

} // namespace tokenprov::p11::timing
