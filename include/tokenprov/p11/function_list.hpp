// SPDX-License-Identifier: Apache-2.0
// Checking a module's function list before it is used.
#pragma once

#include "tokenprov/p11/pkcs11.hpp"

#include <string>

namespace tokenprov::p11 {

// Error(Token) naming PATH and the missing functions when an entry of FN that
// tokenprov calls is NULL. PKCS#11 wants every entry set (a function a module
// does not offer returns CKR_FUNCTION_NOT_SUPPORTED); a NULL entry would crash
// the process the moment it is called, so such a module is refused at load.
void check_function_list(const CK_FUNCTION_LIST* fn, const std::string& path);

} // namespace tokenprov::p11
