// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/p11/function_list.hpp"

#include "tokenprov/error.hpp"

namespace tokenprov::p11 {

void check_function_list(const CK_FUNCTION_LIST* fn, const std::string& path) {
  std::string missing;
  auto need = [&](const void* entry, const char* name) {
    if (entry) return;
    if (!missing.empty()) missing += ", ";
    missing += name;
  };
  // Every function tokenprov calls (grep -o 'C_[A-Za-z]*(' src), in the list's order.
#define TP_NEED(name) need(reinterpret_cast<const void*>(fn->name), #name)
  TP_NEED(C_Initialize);
  TP_NEED(C_Finalize);
  TP_NEED(C_GetInfo);
  TP_NEED(C_GetSlotList);
  TP_NEED(C_GetSlotInfo);
  TP_NEED(C_GetTokenInfo);
  TP_NEED(C_GetMechanismList);
  TP_NEED(C_InitToken);
  TP_NEED(C_InitPIN);
  TP_NEED(C_SetPIN);
  TP_NEED(C_OpenSession);
  TP_NEED(C_CloseSession);
  TP_NEED(C_Login);
  TP_NEED(C_Logout);
  TP_NEED(C_CreateObject);
  TP_NEED(C_DestroyObject);
  TP_NEED(C_GetAttributeValue);
  TP_NEED(C_SetAttributeValue);
  TP_NEED(C_FindObjectsInit);
  TP_NEED(C_FindObjects);
  TP_NEED(C_FindObjectsFinal);
  TP_NEED(C_DecryptInit);
  TP_NEED(C_Decrypt);
  TP_NEED(C_SignInit);
  TP_NEED(C_Sign);
  TP_NEED(C_GenerateKeyPair);
  TP_NEED(C_WrapKey);
  TP_NEED(C_UnwrapKey);
  TP_NEED(C_GenerateRandom);
#undef TP_NEED
  if (!missing.empty())
    fail(ExitCode::Token,
         "The PKCS#11 module '" + path + "' has no " + missing +
             " in its function list (a NULL entry where PKCS#11 wants a function); it was not used.",
         "The module is broken or incomplete: update it, or ask its vendor. (A function a module does not offer "
         "must still be there, answering CKR_FUNCTION_NOT_SUPPORTED.)");
}

} // namespace tokenprov::p11
