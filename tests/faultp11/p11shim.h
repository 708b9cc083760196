// SPDX-License-Identifier: Apache-2.0
/*
 * p11shim.h: what the PKCS#11 shims of the tests and the bench share (faultp11
 * here, latencyp11 in tests/latencyp11): the list of the 68 v2.40 functions
 * with their parameters (X-macros that generate the forwarding wrappers),
 * function indices and names, CK_RV names, and loading the real module.
 *
 * Each shim defines FP_SHIM_NAME (its name in messages) before including
 * this file, and its own C_GetFunctionList (the only exported symbol).
 * Everything here is static: each shim gets its own copy.
 */
#ifndef TOKENPROV_P11SHIM_H
#define TOKENPROV_P11SHIM_H

#ifndef FP_SHIM_NAME
#error "define FP_SHIM_NAME before including p11shim.h"
#endif

#include <p11-kit/pkcs11.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FP_UNUSED __attribute__((unused))

#define FP_EXPORT __attribute__((visibility("default")))
#define FP_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define FP_PATH_MAX 4096

/* All 68 entries of CK_FUNCTION_LIST (v2.40), in the structure's order. */
#define FP_ALL_FUNCTIONS(X)                                                                             \
  X(C_Initialize) X(C_Finalize) X(C_GetInfo) X(C_GetFunctionList) X(C_GetSlotList) X(C_GetSlotInfo)     \
  X(C_GetTokenInfo) X(C_GetMechanismList) X(C_GetMechanismInfo) X(C_InitToken) X(C_InitPIN)           \
  X(C_SetPIN) X(C_OpenSession) X(C_CloseSession) X(C_CloseAllSessions) X(C_GetSessionInfo)            \
  X(C_GetOperationState) X(C_SetOperationState) X(C_Login) X(C_Logout) X(C_CreateObject)              \
  X(C_CopyObject) X(C_DestroyObject) X(C_GetObjectSize) X(C_GetAttributeValue)                        \
  X(C_SetAttributeValue) X(C_FindObjectsInit) X(C_FindObjects) X(C_FindObjectsFinal)                 \
  X(C_EncryptInit) X(C_Encrypt) X(C_EncryptUpdate) X(C_EncryptFinal) X(C_DecryptInit) X(C_Decrypt)    \
  X(C_DecryptUpdate) X(C_DecryptFinal) X(C_DigestInit) X(C_Digest) X(C_DigestUpdate) X(C_DigestKey)   \
  X(C_DigestFinal) X(C_SignInit) X(C_Sign) X(C_SignUpdate) X(C_SignFinal) X(C_SignRecoverInit)        \
  X(C_SignRecover) X(C_VerifyInit) X(C_Verify) X(C_VerifyUpdate) X(C_VerifyFinal)                     \
  X(C_VerifyRecoverInit) X(C_VerifyRecover) X(C_DigestEncryptUpdate) X(C_DecryptDigestUpdate)         \
  X(C_SignEncryptUpdate) X(C_DecryptVerifyUpdate) X(C_GenerateKey) X(C_GenerateKeyPair) X(C_WrapKey) \
  X(C_UnwrapKey) X(C_DeriveKey) X(C_SeedRandom) X(C_GenerateRandom) X(C_GetFunctionStatus)           \
  X(C_CancelFunction) X(C_WaitForSlotEvent)

/* The functions forwarded by the generic wrapper: all but C_Initialize,
 * C_Finalize and C_GetFunctionList. X(name, parameters, arguments). */
#define FP_FORWARDED(X)                                                                                  \
  X(C_GetInfo, (CK_INFO_PTR info), (info))                                                               \
  X(C_GetSlotList, (CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count), (present, list, count))  \
  X(C_GetSlotInfo, (CK_SLOT_ID slot, CK_SLOT_INFO_PTR info), (slot, info))                               \
  X(C_GetTokenInfo, (CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info), (slot, info))                             \
  X(C_GetMechanismList, (CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count),               \
    (slot, list, count))                                                                                 \
  X(C_GetMechanismInfo, (CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info),           \
    (slot, type, info))                                                                                  \
  X(C_InitToken, (CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len, CK_UTF8CHAR_PTR label),        \
    (slot, pin, pin_len, label))                                                                         \
  X(C_InitPIN, (CK_SESSION_HANDLE s, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len), (s, pin, pin_len))          \
  X(C_SetPIN,                                                                                            \
    (CK_SESSION_HANDLE s, CK_UTF8CHAR_PTR old_pin, CK_ULONG old_len, CK_UTF8CHAR_PTR new_pin,            \
     CK_ULONG new_len),                                                                                  \
    (s, old_pin, old_len, new_pin, new_len))                                                             \
  X(C_OpenSession,                                                                                       \
    (CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify, CK_SESSION_HANDLE_PTR s),       \
    (slot, flags, app, notify, s))                                                                       \
  X(C_CloseSession, (CK_SESSION_HANDLE s), (s))                                                          \
  X(C_CloseAllSessions, (CK_SLOT_ID slot), (slot))                                                       \
  X(C_GetSessionInfo, (CK_SESSION_HANDLE s, CK_SESSION_INFO_PTR info), (s, info))                        \
  X(C_GetOperationState, (CK_SESSION_HANDLE s, CK_BYTE_PTR state, CK_ULONG_PTR state_len),               \
    (s, state, state_len))                                                                               \
  X(C_SetOperationState,                                                                                 \
    (CK_SESSION_HANDLE s, CK_BYTE_PTR state, CK_ULONG state_len, CK_OBJECT_HANDLE enc_key,               \
     CK_OBJECT_HANDLE auth_key),                                                                         \
    (s, state, state_len, enc_key, auth_key))                                                            \
  X(C_Login, (CK_SESSION_HANDLE s, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len),            \
    (s, user, pin, pin_len))                                                                             \
  X(C_Logout, (CK_SESSION_HANDLE s), (s))                                                                \
  X(C_CreateObject,                                                                                      \
    (CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR templ, CK_ULONG count, CK_OBJECT_HANDLE_PTR obj),             \
    (s, templ, count, obj))                                                                              \
  X(C_CopyObject,                                                                                        \
    (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_PTR templ, CK_ULONG count,                  \
     CK_OBJECT_HANDLE_PTR new_obj),                                                                      \
    (s, obj, templ, count, new_obj))                                                                     \
  X(C_DestroyObject, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj), (s, obj))                              \
  X(C_GetObjectSize, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj, CK_ULONG_PTR size), (s, obj, size))     \
  X(C_GetAttributeValue,                                                                                 \
    (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_PTR templ, CK_ULONG count),                 \
    (s, obj, templ, count))                                                                              \
  X(C_SetAttributeValue,                                                                                 \
    (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_PTR templ, CK_ULONG count),                 \
    (s, obj, templ, count))                                                                              \
  X(C_FindObjectsInit, (CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR templ, CK_ULONG count), (s, templ, count)) \
  X(C_FindObjects, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE_PTR objs, CK_ULONG max, CK_ULONG_PTR count),   \
    (s, objs, max, count))                                                                               \
  X(C_FindObjectsFinal, (CK_SESSION_HANDLE s), (s))                                                      \
  X(C_EncryptInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key), (s, mech, key))   \
  X(C_Encrypt,                                                                                           \
    (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len),       \
    (s, in, in_len, out, out_len))                                                                       \
  X(C_EncryptUpdate,                                                                                     \
    (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len),       \
    (s, in, in_len, out, out_len))                                                                       \
  X(C_EncryptFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR out, CK_ULONG_PTR out_len), (s, out, out_len))     \
  X(C_DecryptInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key), (s, mech, key))   \
  X(C_Decrypt,                                                                                           \
    (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len),       \
    (s, in, in_len, out, out_len))                                                                       \
  X(C_DecryptUpdate,                                                                                     \
    (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len),       \
    (s, in, in_len, out, out_len))                                                                       \
  X(C_DecryptFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR out, CK_ULONG_PTR out_len), (s, out, out_len))     \
  X(C_DigestInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech), (s, mech))                               \
  X(C_Digest,                                                                                            \
    (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len),       \
    (s, in, in_len, out, out_len))                                                                       \
  X(C_DigestUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len), (s, in, in_len))             \
  X(C_DigestKey, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key), (s, key))                                  \
  X(C_DigestFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR out, CK_ULONG_PTR out_len), (s, out, out_len))      \
  X(C_SignInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key), (s, mech, key))      \
  X(C_Sign,                                                                                              \
    (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len),       \
    (s, in, in_len, sig, sig_len))                                                                       \
  X(C_SignUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len), (s, in, in_len))               \
  X(C_SignFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len), (s, sig, sig_len))        \
  X(C_SignRecoverInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key),               \
    (s, mech, key))                                                                                      \
  X(C_SignRecover,                                                                                       \
    (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len),       \
    (s, in, in_len, sig, sig_len))                                                                       \
  X(C_VerifyInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key), (s, mech, key))    \
  X(C_Verify, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR sig, CK_ULONG sig_len), \
    (s, in, in_len, sig, sig_len))                                                                       \
  X(C_VerifyUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len), (s, in, in_len))             \
  X(C_VerifyFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR sig, CK_ULONG sig_len), (s, sig, sig_len))          \
  X(C_VerifyRecoverInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key),             \
    (s, mech, key))                                                                                      \
  X(C_VerifyRecover,                                                                                     \
    (CK_SESSION_HANDLE s, CK_BYTE_PTR sig, CK_ULONG sig_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len),     \
    (s, sig, sig_len, out, out_len))                                                                     \
  X(C_DigestEncryptUpdate,                                                                               \
    (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len),       \
    (s, in, in_len, out, out_len))                                                                       \
  X(C_DecryptDigestUpdate,                                                                               \
    (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len),       \
    (s, in, in_len, out, out_len))                                                                       \
  X(C_SignEncryptUpdate,                                                                                 \
    (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len),       \
    (s, in, in_len, out, out_len))                                                                       \
  X(C_DecryptVerifyUpdate,                                                                               \
    (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len),       \
    (s, in, in_len, out, out_len))                                                                       \
  X(C_GenerateKey,                                                                                       \
    (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_ATTRIBUTE_PTR templ, CK_ULONG count,                 \
     CK_OBJECT_HANDLE_PTR key),                                                                          \
    (s, mech, templ, count, key))                                                                        \
  X(C_GenerateKeyPair,                                                                                   \
    (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_ATTRIBUTE_PTR pub_templ, CK_ULONG pub_count,         \
     CK_ATTRIBUTE_PTR priv_templ, CK_ULONG priv_count, CK_OBJECT_HANDLE_PTR pub,                         \
     CK_OBJECT_HANDLE_PTR priv),                                                                         \
    (s, mech, pub_templ, pub_count, priv_templ, priv_count, pub, priv))                                  \
  X(C_WrapKey,                                                                                           \
    (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key,        \
     CK_BYTE_PTR out, CK_ULONG_PTR out_len),                                                             \
    (s, mech, wrapping, key, out, out_len))                                                              \
  X(C_UnwrapKey,                                                                                         \
    (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE unwrapping, CK_BYTE_PTR wrapped,       \
     CK_ULONG wrapped_len, CK_ATTRIBUTE_PTR templ, CK_ULONG count, CK_OBJECT_HANDLE_PTR key),            \
    (s, mech, unwrapping, wrapped, wrapped_len, templ, count, key))                                      \
  X(C_DeriveKey,                                                                                         \
    (CK_SESSION_HANDLE s, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE base, CK_ATTRIBUTE_PTR templ,          \
     CK_ULONG count, CK_OBJECT_HANDLE_PTR key),                                                          \
    (s, mech, base, templ, count, key))                                                                  \
  X(C_SeedRandom, (CK_SESSION_HANDLE s, CK_BYTE_PTR seed, CK_ULONG seed_len), (s, seed, seed_len))       \
  X(C_GenerateRandom, (CK_SESSION_HANDLE s, CK_BYTE_PTR out, CK_ULONG out_len), (s, out, out_len))       \
  X(C_GetFunctionStatus, (CK_SESSION_HANDLE s), (s))                                                     \
  X(C_CancelFunction, (CK_SESSION_HANDLE s), (s))                                                        \
  X(C_WaitForSlotEvent, (CK_FLAGS flags, CK_SLOT_ID_PTR slot, CK_VOID_PTR reserved), (flags, slot, reserved))

/* ---- function indices and names ----------------------------------------- */

enum fp_index {
#define FP_ENUM(name) FP_IDX_##name,
  FP_ALL_FUNCTIONS(FP_ENUM)
#undef FP_ENUM
  FP_COUNT
};

static const char* const fp_names[FP_COUNT] FP_UNUSED = {
#define FP_NAME(name) #name,
    FP_ALL_FUNCTIONS(FP_NAME)
#undef FP_NAME
};

#define FP_ONE(...) +1
_Static_assert(FP_COUNT == 68, "PKCS#11 v2.40 has 68 functions");
_Static_assert(0 FP_FORWARDED(FP_ONE) == 65, "every function but the three special ones is forwarded");
_Static_assert(sizeof(CK_FUNCTION_LIST) == offsetof(CK_FUNCTION_LIST, C_Initialize) + 68 * sizeof(void (*)(void)),
               "CK_FUNCTION_LIST has 68 entries");
#undef FP_ONE

/* ---- return value names --------------------------------------------------- */

struct fp_rv_name {
  CK_RV rv;
  const char* name;
};
#define FP_RV(x) {x, #x}
static const struct fp_rv_name fp_rv_names[] FP_UNUSED = {
    FP_RV(CKR_OK),
    FP_RV(CKR_CANCEL),
    FP_RV(CKR_HOST_MEMORY),
    FP_RV(CKR_SLOT_ID_INVALID),
    FP_RV(CKR_GENERAL_ERROR),
    FP_RV(CKR_FUNCTION_FAILED),
    FP_RV(CKR_ARGUMENTS_BAD),
    FP_RV(CKR_NO_EVENT),
    FP_RV(CKR_CANT_LOCK),
    FP_RV(CKR_ATTRIBUTE_READ_ONLY),
    FP_RV(CKR_ATTRIBUTE_SENSITIVE),
    FP_RV(CKR_ATTRIBUTE_TYPE_INVALID),
    FP_RV(CKR_ATTRIBUTE_VALUE_INVALID),
    FP_RV(CKR_DATA_INVALID),
    FP_RV(CKR_DATA_LEN_RANGE),
    FP_RV(CKR_DEVICE_ERROR),
    FP_RV(CKR_DEVICE_MEMORY),
    FP_RV(CKR_DEVICE_REMOVED),
    FP_RV(CKR_FUNCTION_CANCELED),
    FP_RV(CKR_FUNCTION_NOT_SUPPORTED),
    FP_RV(CKR_KEY_HANDLE_INVALID),
    FP_RV(CKR_KEY_UNEXTRACTABLE),
    FP_RV(CKR_MECHANISM_INVALID),
    FP_RV(CKR_MECHANISM_PARAM_INVALID),
    FP_RV(CKR_OBJECT_HANDLE_INVALID),
    FP_RV(CKR_OPERATION_ACTIVE),
    FP_RV(CKR_OPERATION_NOT_INITIALIZED),
    FP_RV(CKR_PIN_INCORRECT),
    FP_RV(CKR_PIN_INVALID),
    FP_RV(CKR_PIN_LEN_RANGE),
    FP_RV(CKR_PIN_EXPIRED),
    FP_RV(CKR_PIN_LOCKED),
    FP_RV(CKR_SESSION_CLOSED),
    FP_RV(CKR_SESSION_COUNT),
    FP_RV(CKR_SESSION_HANDLE_INVALID),
    FP_RV(CKR_SESSION_READ_ONLY),
    FP_RV(CKR_SESSION_EXISTS),
    FP_RV(CKR_SIGNATURE_INVALID),
    FP_RV(CKR_TEMPLATE_INCOMPLETE),
    FP_RV(CKR_TEMPLATE_INCONSISTENT),
    FP_RV(CKR_TOKEN_NOT_PRESENT),
    FP_RV(CKR_TOKEN_NOT_RECOGNIZED),
    FP_RV(CKR_TOKEN_WRITE_PROTECTED),
    FP_RV(CKR_USER_ALREADY_LOGGED_IN),
    FP_RV(CKR_USER_NOT_LOGGED_IN),
    FP_RV(CKR_USER_PIN_NOT_INITIALIZED),
    FP_RV(CKR_USER_TYPE_INVALID),
    FP_RV(CKR_BUFFER_TOO_SMALL),
    FP_RV(CKR_CRYPTOKI_NOT_INITIALIZED),
    FP_RV(CKR_CRYPTOKI_ALREADY_INITIALIZED),
    FP_RV(CKR_FUNCTION_REJECTED),
};
#undef FP_RV

static void fp_warn(const char* fmt, ...) __attribute__((format(printf, 1, 2))) FP_UNUSED;
static void fp_warn(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs(FP_SHIM_NAME ": ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

FP_UNUSED static const char* fp_rv_name(CK_RV rv, char* buf, size_t n) {
  for (size_t i = 0; i < sizeof fp_rv_names / sizeof fp_rv_names[0]; ++i)
    if (fp_rv_names[i].rv == rv) return fp_rv_names[i].name;
  snprintf(buf, n, "0x%08lx", (unsigned long)rv);
  return buf;
}

FP_UNUSED static int fp_parse_rv(const char* s, CK_RV* out) {
  for (size_t i = 0; i < sizeof fp_rv_names / sizeof fp_rv_names[0]; ++i)
    if (strcmp(fp_rv_names[i].name, s) == 0) {
      *out = fp_rv_names[i].rv;
      return 1;
    }
  char* end = NULL;
  errno = 0;
  unsigned long v = strtoul(s, &end, 0); /* 0x.. hex, or decimal */
  if (errno || end == s || *end || s[0] == '-') return 0;
  *out = (CK_RV)v;
  return 1;
}

FP_UNUSED static int fp_function_index(const char* s) {
  for (int i = 0; i < FP_COUNT; ++i) {
    if (strcmp(fp_names[i], s) == 0) return i;
    if (strncmp(s, "C_", 2) != 0 && strcmp(fp_names[i] + 2, s) == 0) return i; /* "CreateObject" */
  }
  return -1;
}

FP_UNUSED static const char* fp_env(const char* name) {
  const char* v = getenv(name);
  return v && *v ? v : NULL;
}

/* Loads the real module at PATH (dlopen, RTLD_LOCAL) and gets its function
 * list. SELF is the shim's own C_GetFunctionList (a PATH that names the shim
 * is refused); VAR names the variable PATH came from, for the messages. On
 * success *HANDLE and *LIST are set; the handle is never closed. */
FP_UNUSED static CK_RV fp_open_real(const char* path, const char* var, CK_C_GetFunctionList self, void** handle,
                                    CK_FUNCTION_LIST** out) {
  if (strlen(path) >= FP_PATH_MAX) {
    fp_warn("%s is too long", var);
    return CKR_GENERAL_ERROR;
  }
  void* h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* e = dlerror();
    fp_warn("cannot load the real module '%s': %s", path, e ? e : "unknown error");
    return CKR_GENERAL_ERROR;
  }
  CK_C_GetFunctionList get;
  void* sym = dlsym(h, "C_GetFunctionList");
  memcpy(&get, &sym, sizeof get); /* object pointer -> function pointer, without a cast warning */
  if (!get) {
    fp_warn("'%s' has no C_GetFunctionList", path);
    dlclose(h);
    return CKR_GENERAL_ERROR;
  }
  if (get == self) {
    fp_warn("%s names the shim itself ('%s')", var, path);
    dlclose(h);
    return CKR_GENERAL_ERROR;
  }
  CK_FUNCTION_LIST* list = NULL;
  CK_RV rv = get(&list);
  if (rv != CKR_OK || !list) {
    fp_warn("C_GetFunctionList of '%s' failed (0x%lx)", path, (unsigned long)rv);
    dlclose(h);
    return rv != CKR_OK ? rv : CKR_GENERAL_ERROR;
  }
  *handle = h;
  *out = list;
  return CKR_OK;
}

#endif
