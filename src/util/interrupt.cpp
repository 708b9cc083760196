// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/interrupt.hpp"

#include <atomic>
#include <csignal>
#include <cstring>
#include <thread>

namespace tokenprov {

namespace {
volatile std::sig_atomic_t g_signal = 0;

extern "C" void note_signal(int sig) {
  if (g_signal == 0) g_signal = sig;
}

const char* signal_name(int sig) {
  switch (sig) {
  case SIGINT: return "SIGINT";
  case SIGTERM: return "SIGTERM";
  case SIGHUP: return "SIGHUP";
  default: return "a signal";
  }
}
} // namespace

void install_interrupt_handlers() {
  static std::atomic<bool> done{false};
  if (done.exchange(true)) return;
  struct sigaction sa {};
  sa.sa_handler = note_signal;
  sigemptyset(&sa.sa_mask);
  // SA_RESTART: a module's own reads and writes (SoftHSM2's object files) are
  // not cut short by the signal; the waits of ours that must wake (SCEP polling,
  // lock waits) sleep in short steps and look at the flag.
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGTERM, SIGHUP})
    ::sigaction(sig, &sa, nullptr);
}

int interrupt_signal() noexcept { return g_signal; }

void check_interrupt(ExitCode code, const std::string& where) {
  int sig = interrupt_signal();
  if (!sig) return;
  fail(code,
       std::string("Stopped by ") + signal_name(sig) + (where.empty() ? "" : " " + where) +
           "; the step under way was undone, and the token keeps only what earlier steps finished.",
       "Run the same command again to go on.");
}

void interruptible_sleep(std::chrono::milliseconds d, ExitCode code, const std::string& where) {
  const auto end = std::chrono::steady_clock::now() + d;
  for (;;) {
    check_interrupt(code, where);
    auto now = std::chrono::steady_clock::now();
    if (now >= end) return;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(end - now, std::chrono::milliseconds(100)));
  }
}

} // namespace tokenprov
