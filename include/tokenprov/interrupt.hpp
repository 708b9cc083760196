// SPDX-License-Identifier: Apache-2.0
// SIGINT, SIGTERM and SIGHUP as a flag: the handler only notes the signal;
// the run checks the flag between steps and in its waits (SCEP polling, HTTP
// transfers, a token lock held by another run) and turns it into an Error,
// so the normal rollback path removes what the run made before it exits.
#pragma once

#include "tokenprov/error.hpp"

#include <chrono>

namespace tokenprov {

// Installs the handlers (once per process; the CLI does it in main).
void install_interrupt_handlers();

// The signal that arrived (SIGINT, SIGTERM, SIGHUP), or 0.
int interrupt_signal() noexcept;
inline bool interrupted() noexcept { return interrupt_signal() != 0; }

// Throws Error(CODE) saying which signal stopped the run, if one arrived.
// WHERE names what was going on ("while waiting for the CA").
void check_interrupt(ExitCode code, const std::string& where = {});

// Sleeps for D, waking early (and throwing, as check_interrupt) on a signal.
void interruptible_sleep(std::chrono::milliseconds d, ExitCode code, const std::string& where = {});

} // namespace tokenprov
