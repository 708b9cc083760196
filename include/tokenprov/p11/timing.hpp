// SPDX-License-Identifier: Apache-2.0
// Optional timing of every PKCS#11 call (tokenprov --timings).
//
// When enabled before a module is loaded, Module::load() hands the module's
// CK_FUNCTION_LIST to wrap(), which returns a list of the same shape whose
// every entry times the call (steady clock) and forwards it. Nothing else in
// tokenprov changes: Module and Session call through fn() as always. When
// timing is not enabled, Module uses the module's own list and pays nothing.
//
// Counters are atomic, so fleet workers may call concurrently; with several
// workers the PKCS#11 sum can exceed the wall time.
#pragma once

#include "tokenprov/p11/pkcs11.hpp"

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace tokenprov::p11::timing {

// Turns timing on for modules loaded from now on.
void enable();
bool enabled();

// The list Module should call: a timing wrapper of `real` when timing is
// enabled, else `real` itself. Only one module per process is timed (the
// first); another module gets its own list back.
CK_FUNCTION_LIST* wrap(CK_FUNCTION_LIST* real);

struct Entry {
  std::string function; // "C_Sign"
  std::uint64_t calls = 0;
  std::uint64_t ns = 0;
};

struct Report {
  std::uint64_t wall_ns = 0;  // since the process started running static initializers
  std::uint64_t p11_ns = 0;   // sum over every PKCS#11 call
  std::uint64_t p11_calls = 0;
  std::vector<Entry> entries; // functions called at least once, most time first
};

Report snapshot();

// Prints the report as lines starting "tokenprov: timings:" (stderr format).
void print(std::ostream& out, const Report& r);

// Prints the report to stderr when destroyed, if timing is enabled.
class PrintAtExit {
public:
  PrintAtExit() = default;
  ~PrintAtExit();
  PrintAtExit(const PrintAtExit&) = delete;
  PrintAtExit& operator=(const PrintAtExit&) = delete;
};

} // namespace tokenprov::p11::timing
