// SPDX-License-Identifier: Apache-2.0
// p11-kit's module registry, for RFC 7512's module-name query attribute.
#pragma once

#include <string>

namespace tokenprov {

// The file of the PKCS#11 module p11-kit registers under NAME (the name of its
// .module file, e.g. "softhsm2"), read by libp11-kit itself (its system,
// package and user configuration, enable-in/disable-in included). libp11-kit
// is loaded with dlopen() on first use, so no other command pays for it.
// Throws Error(Token) when libp11-kit cannot be loaded, no module has that
// name, or the registration needs init arguments tokenprov cannot pass
// (x-init-reserved).
std::string p11kit_module_path(const std::string& name);

} // namespace tokenprov
