// SPDX-License-Identifier: Apache-2.0
/*
 * faultp11: a PKCS#11 v2.40 module that forwards every call to a real module
 * and injects one failure (or a "pulled-out token") where the environment
 * says, so the reliability tests can fail each PKCS#11 call tokenprov makes
 * in turn and check that nothing is left half-done.
 *
 * The real module is dlopen()ed from $FAULTP11_MODULE (default SoftHSM2).
 * Every call except C_GetFunctionList is counted: a global call number and a
 * per-function number. The configuration is read from the environment at
 * C_Initialize (again at every C_Initialize):
 *
 *   FAULTP11_FAIL_AT=N       the Nth call (1-based) fails
 *   FAULTP11_FAIL_FUNC=NAME  the Nth call of NAME (C_CreateObject, ...) fails;
 *                            N is FAULTP11_FAIL_AT, default 1
 *   FAULTP11_RV=RV           the error: a CKR_ name or a number (0x.. hex);
 *                            default CKR_DEVICE_ERROR
 *   FAULTP11_STICKY=1        once triggered, every later call fails too,
 *                            except C_Finalize, C_CloseSession,
 *                            C_CloseAllSessions and C_Logout (cleanup)
 *   FAULTP11_KILL_AT=N       the process kills itself with SIGKILL just before
 *                            the Nth call would be forwarded (the kill sweep:
 *                            a run stopped between two PKCS#11 calls)
 *   FAULTP11_COUNT_FILE=PATH the number of counted calls is written there at
 *                            C_Finalize and when the library is unloaded
 *   FAULTP11_LOG=PATH        one line per call appended: "N NAME RV", with a
 *                            fourth word "injected" on injected failures
 *   FAULTP11_NULL=NAME[,NAME] C_GetFunctionList hands out a function list
 *                            whose NAME entries are NULL (a module that
 *                            leaves functions out); read at C_GetFunctionList
 *   FAULTP11_SERIAL=TEXT     every token reports TEXT as its serial number
 *                            (as tpm2-pkcs11 and NSS do with 0000000000000000);
 *                            the real module's slots stay apart
 *   FAULTP11_HIDE_MECHANISMS=0x210A,0x1085
 *                            the token seems not to have these mechanisms:
 *                            left out of C_GetMechanismList, and
 *                            C_GetMechanismInfo answers CKR_MECHANISM_INVALID
 *                            (so a test can make a module offer less; with
 *                            it set, one C_GetMechanismList counts as two)
 *   FAULTP11_SCOPE=process   count across C_Initialize/C_Finalize cycles (for
 *                            a process that loads the module more than once);
 *                            by default ("init") every C_Initialize restarts
 *                            the counters and re-arms the fault, so a test
 *                            that loads the module again starts afresh
 *
 * A failed call is never forwarded, so the real token is not changed by it.
 * An unparsable configuration makes C_Initialize fail with CKR_GENERAL_ERROR
 * and a message on stderr.
 *
 * Only C_GetFunctionList is exported: the real module's own references to
 * C_* symbols must never bind to the shim.
 */
#define _POSIX_C_SOURCE 200809L

#include <p11-kit/pkcs11.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FP_SHIM_NAME "faultp11"
#include "p11shim.h"

/* ---- state ------------------------------------------------------------------ */

struct fp_config {
  unsigned long fail_at; /* 0: no fault */
  int fail_func;         /* -1: FAIL_AT counts every call */
  CK_RV rv;
  int sticky;
  int process_scope;
  char count_file[FP_PATH_MAX];
  char log_file[FP_PATH_MAX];
  unsigned long kill_at; /* 0: no kill */
};

static pthread_mutex_t fp_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fp_config fp_cfg = {0, -1, CKR_DEVICE_ERROR, 0, 0, "", "", 0};
static unsigned long fp_total;            /* counted calls */
static unsigned long fp_per_fn[FP_COUNT]; /* counted calls per function */
static int fp_triggered;                  /* the configured fault has fired */
static int fp_initialized;                /* a C_Initialize through the shim succeeded, no C_Finalize yet */
static int fp_configured;                 /* the environment was read at least once */
static void* fp_real_handle;
static char fp_real_path[FP_PATH_MAX];
static CK_FUNCTION_LIST* fp_real; /* accessed with __atomic builtins */

static CK_FUNCTION_LIST fp_list; /* defined at the end */


static int fp_copy_path(char* dst, const char* src, const char* var) {
  dst[0] = '\0';
  if (!src) return 1;
  if (strlen(src) >= FP_PATH_MAX) {
    fp_warn("%s is too long", var);
    return 0;
  }
  strcpy(dst, src);
  return 1;
}

/* Reads the FAULTP11_* variables into *c. Returns 0 (after a message) when
 * one is unusable; the fault is then off, the file paths are kept. */
static int fp_read_config(struct fp_config* c) {
  int ok = 1;
  memset(c, 0, sizeof *c);
  c->fail_func = -1;
  c->rv = CKR_DEVICE_ERROR;
  ok &= fp_copy_path(c->count_file, fp_env("FAULTP11_COUNT_FILE"), "FAULTP11_COUNT_FILE");
  ok &= fp_copy_path(c->log_file, fp_env("FAULTP11_LOG"), "FAULTP11_LOG");

  const char* v;
  if ((v = fp_env("FAULTP11_SCOPE"))) {
    if (strcmp(v, "process") == 0) c->process_scope = 1;
    else if (strcmp(v, "init") != 0) {
      fp_warn("FAULTP11_SCOPE='%s' is neither 'init' nor 'process'", v);
      ok = 0;
    }
  }
  if ((v = fp_env("FAULTP11_STICKY")))
    c->sticky = !(strcmp(v, "0") == 0 || strcmp(v, "no") == 0 || strcmp(v, "false") == 0);
  if ((v = fp_env("FAULTP11_RV")) && !fp_parse_rv(v, &c->rv)) {
    fp_warn("FAULTP11_RV='%s' is not a CKR_ name this shim knows nor a number (0x...)", v);
    ok = 0;
  }
  if ((v = fp_env("FAULTP11_FAIL_AT"))) {
    char* end = NULL;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || end == v || *end || n == 0 || v[0] == '-') {
      fp_warn("FAULTP11_FAIL_AT='%s' is not a positive call number", v);
      ok = 0;
    } else {
      c->fail_at = n;
    }
  }
  if ((v = fp_env("FAULTP11_KILL_AT"))) {
    char* end = NULL;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || end == v || *end || n == 0 || v[0] == '-') {
      fp_warn("FAULTP11_KILL_AT='%s' is not a positive call number", v);
      ok = 0;
    } else {
      c->kill_at = n;
    }
  }
  if ((v = fp_env("FAULTP11_FAIL_FUNC"))) {
    int idx = fp_function_index(v);
    if (idx < 0 || idx == FP_IDX_C_GetFunctionList) {
      fp_warn("FAULTP11_FAIL_FUNC='%s' is not a PKCS#11 function the shim counts", v);
      ok = 0;
    } else {
      c->fail_func = idx;
      if (!c->fail_at) c->fail_at = 1;
    }
  }
  if (c->rv == CKR_OK && c->fail_at) {
    fp_warn("FAULTP11_RV=CKR_OK would inject nothing");
    ok = 0;
  }
  if (!ok) {
    c->fail_at = 0;
    c->kill_at = 0;
    c->sticky = 0;
  }
  return ok;
}

static CK_FUNCTION_LIST* fp_real_list(void) { return __atomic_load_n(&fp_real, __ATOMIC_ACQUIRE); }

/* Loads the real module named by $FAULTP11_MODULE unless that one is loaded
 * already. Called with fp_lock held. A module once loaded is never unloaded. */
static CK_RV fp_load_real_locked(void) {
  const char* path = fp_env("FAULTP11_MODULE");
  if (!path) path = FP_DEFAULT_MODULE;
  if (fp_real_list() && strcmp(path, fp_real_path) == 0) return CKR_OK;
  void* h = NULL;
  CK_FUNCTION_LIST* list = NULL;
  CK_RV rv = fp_open_real(path, "FAULTP11_MODULE", C_GetFunctionList, &h, &list);
  if (rv != CKR_OK) return rv;
  fp_real_handle = h;
  strcpy(fp_real_path, path);
  __atomic_store_n(&fp_real, list, __ATOMIC_RELEASE);
  return CKR_OK;
}

static int fp_exempt_from_sticky(int idx) {
  return idx == FP_IDX_C_Finalize || idx == FP_IDX_C_CloseSession || idx == FP_IDX_C_CloseAllSessions ||
         idx == FP_IDX_C_Logout;
}

/* Counts a call; returns 1 when it must fail with *rv instead of being forwarded. */
static int fp_count_locked(int idx, unsigned long* callno, CK_RV* rv) {
  unsigned long n = ++fp_total;
  unsigned long per = ++fp_per_fn[idx];
  int inject = 0;
  *callno = n;
  if (fp_cfg.kill_at && n == fp_cfg.kill_at) kill(getpid(), SIGKILL); /* never returns */
  if (fp_triggered) {
    inject = fp_cfg.sticky && !fp_exempt_from_sticky(idx);
  } else if (fp_cfg.fail_at) {
    if (fp_cfg.fail_func < 0) inject = n == fp_cfg.fail_at;
    else inject = idx == fp_cfg.fail_func && per == fp_cfg.fail_at;
    if (inject) fp_triggered = 1;
  }
  *rv = fp_cfg.rv;
  return inject;
}

static int fp_enter(int idx, unsigned long* callno, CK_RV* rv) {
  pthread_mutex_lock(&fp_lock);
  int inject = fp_count_locked(idx, callno, rv);
  pthread_mutex_unlock(&fp_lock);
  return inject;
}

static void fp_log_locked(unsigned long callno, int idx, CK_RV rv, int injected) {
  if (!fp_cfg.log_file[0]) return;
  int fd = open(fp_cfg.log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return;
  char buf[32], line[160];
  int len = snprintf(line, sizeof line, "%lu %s %s%s\n", callno, fp_names[idx], fp_rv_name(rv, buf, sizeof buf),
                     injected ? " injected" : "");
  if (len > 0) {
    ssize_t w = write(fd, line, (size_t)len);
    (void)w;
  }
  close(fd);
}

static void fp_leave(unsigned long callno, int idx, CK_RV rv, int injected) {
  pthread_mutex_lock(&fp_lock);
  fp_log_locked(callno, idx, rv, injected);
  pthread_mutex_unlock(&fp_lock);
}

/* Writes the call count to FAULTP11_COUNT_FILE (through a temporary file and
 * a rename, so a reader never sees half a number). */
static void fp_write_count_locked(void) {
  if (!fp_cfg.count_file[0]) return;
  char tmp[FP_PATH_MAX + 32];
  snprintf(tmp, sizeof tmp, "%s.%ld.tmp", fp_cfg.count_file, (long)getpid());
  FILE* f = fopen(tmp, "w");
  if (!f) return;
  int ok = fprintf(f, "%lu\n", fp_total) > 0;
  ok &= fclose(f) == 0;
  if (!ok || rename(tmp, fp_cfg.count_file) != 0) unlink(tmp);
}

/* ---- the functions ------------------------------------------------------------ */

static CK_RV fp_C_Initialize(CK_VOID_PTR args) {
  unsigned long callno;
  CK_RV rv;
  pthread_mutex_lock(&fp_lock);
  struct fp_config c;
  int config_ok = fp_read_config(&c);
  fp_cfg = c;
  if (!fp_configured || !c.process_scope) {
    /* A new run: counters restart and the fault is armed again. */
    fp_total = 0;
    memset(fp_per_fn, 0, sizeof fp_per_fn);
    fp_triggered = 0;
  }
  fp_configured = 1;
  int inject = fp_count_locked(FP_IDX_C_Initialize, &callno, &rv);
  if (!config_ok) {
    inject = 1;
    rv = CKR_GENERAL_ERROR;
  }
  CK_RV load_rv = inject ? CKR_OK : (fp_initialized ? CKR_OK : fp_load_real_locked());
  if (load_rv != CKR_OK) {
    inject = 1; /* not an injected fault, but nothing was forwarded either */
    rv = load_rv;
  }
  pthread_mutex_unlock(&fp_lock);

  if (!inject) {
    CK_FUNCTION_LIST* real = fp_real_list();
    rv = real->C_Initialize ? real->C_Initialize(args) : CKR_FUNCTION_NOT_SUPPORTED;
  }
  pthread_mutex_lock(&fp_lock);
  if (!inject && rv == CKR_OK) fp_initialized = 1;
  fp_log_locked(callno, FP_IDX_C_Initialize, rv, inject && config_ok && load_rv == CKR_OK);
  pthread_mutex_unlock(&fp_lock);
  return rv;
}

static CK_RV fp_C_Finalize(CK_VOID_PTR reserved) {
  unsigned long callno;
  CK_RV rv;
  int inject = fp_enter(FP_IDX_C_Finalize, &callno, &rv);
  if (!inject) {
    CK_FUNCTION_LIST* real = fp_real_list();
    rv = !real ? CKR_CRYPTOKI_NOT_INITIALIZED
               : real->C_Finalize ? real->C_Finalize(reserved) : CKR_FUNCTION_NOT_SUPPORTED;
  }
  pthread_mutex_lock(&fp_lock);
  if (!inject && rv == CKR_OK) fp_initialized = 0;
  fp_log_locked(callno, FP_IDX_C_Finalize, rv, inject);
  fp_write_count_locked();
  pthread_mutex_unlock(&fp_lock);
  return rv;
}

#define FP_DEFINE(name, params, args)                                                  \
  static CK_RV fp_##name params {                                                      \
    unsigned long callno;                                                              \
    CK_RV rv;                                                                          \
    int inject = fp_enter(FP_IDX_##name, &callno, &rv);                                \
    if (!inject) {                                                                     \
      CK_FUNCTION_LIST* real = fp_real_list();                                         \
      if (!real) rv = CKR_CRYPTOKI_NOT_INITIALIZED;                                    \
      else if (!real->name) rv = CKR_FUNCTION_NOT_SUPPORTED;                           \
      else rv = real->name args;                                                       \
    }                                                                                  \
    fp_leave(callno, FP_IDX_##name, rv, inject);                                       \
    return rv;                                                                         \
  }
FP_FORWARDED(FP_DEFINE)
#undef FP_DEFINE

/* C_GetTokenInfo, then FAULTP11_SERIAL (read at each call) over the serial. */
static CK_RV fp_serial_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info) {
  CK_RV rv = fp_C_GetTokenInfo(slot, info);
  const char* serial = fp_env("FAULTP11_SERIAL");
  if (rv == CKR_OK && info && serial) {
    size_t n = strlen(serial);
    if (n > sizeof info->serialNumber) n = sizeof info->serialNumber;
    memset(info->serialNumber, ' ', sizeof info->serialNumber);
    memcpy(info->serialNumber, serial, n);
  }
  return rv;
}

/* ---- FAULTP11_HIDE_MECHANISMS -------------------------------------------------- */

static int fp_hidden(CK_MECHANISM_TYPE m) {
  const char* v = fp_env("FAULTP11_HIDE_MECHANISMS");
  while (v && *v) {
    char* end = NULL;
    unsigned long x = strtoul(v, &end, 0);
    if (end == v) break;
    if (x == m) return 1;
    if (*end != ',') break;
    v = end + 1;
  }
  return 0;
}

static CK_RV fp_hide_C_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count) {
  if (!fp_env("FAULTP11_HIDE_MECHANISMS")) return fp_C_GetMechanismList(slot, list, count);
  if (!count) return CKR_ARGUMENTS_BAD;
  CK_ULONG n = 0;
  CK_RV rv = fp_C_GetMechanismList(slot, NULL, &n);
  if (rv != CKR_OK) return rv;
  CK_MECHANISM_TYPE* all = calloc(n ? n : 1, sizeof *all);
  if (!all) return CKR_HOST_MEMORY;
  rv = fp_C_GetMechanismList(slot, all, &n);
  CK_ULONG k = 0;
  if (rv == CKR_OK) {
    for (CK_ULONG i = 0; i < n; ++i)
      if (!fp_hidden(all[i])) all[k++] = all[i];
    if (list && *count < k) rv = CKR_BUFFER_TOO_SMALL;
    else if (list) memcpy(list, all, k * sizeof *all);
    *count = k;
  }
  free(all);
  return rv;
}

static CK_RV fp_hide_C_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info) {
  if (fp_hidden(type)) return CKR_MECHANISM_INVALID;
  return fp_C_GetMechanismInfo(slot, type, info);
}

FP_EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
  if (!list) return CKR_ARGUMENTS_BAD;
  pthread_mutex_lock(&fp_lock);
  CK_RV rv = fp_load_real_locked();
  pthread_mutex_unlock(&fp_lock);
  if (rv != CKR_OK) return rv;
  fp_list.C_GetTokenInfo = fp_serial_GetTokenInfo;
  fp_list.C_GetMechanismList = fp_hide_C_GetMechanismList;
  fp_list.C_GetMechanismInfo = fp_hide_C_GetMechanismInfo;
  *list = &fp_list;
  const char* nulls = getenv("FAULTP11_NULL");
  if (nulls && *nulls) {
    /* A copy with the named entries NULL. The entries follow the version in
     * FP_ALL_FUNCTIONS order, all of one pointer size. */
    static CK_FUNCTION_LIST holed;
    holed = fp_list;
    CK_VOID_PTR* entries = (CK_VOID_PTR*)(void*)&holed.C_Initialize;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", nulls);
    char* save = NULL;
    for (char* name = strtok_r(buf, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
      int idx = fp_function_index(name);
      if (idx < 0) {
        fp_warn("FAULTP11_NULL names an unknown function '%s'", name);
        return CKR_GENERAL_ERROR;
      }
      entries[idx] = NULL;
    }
    *list = &holed;
  }
  return CKR_OK;
}

static CK_FUNCTION_LIST fp_list = {
    .version = {2, 40},
    .C_Initialize = fp_C_Initialize,
    .C_Finalize = fp_C_Finalize,
    .C_GetFunctionList = C_GetFunctionList,
#define FP_ENTRY(name, params, args) .name = fp_##name,
    FP_FORWARDED(FP_ENTRY)
#undef FP_ENTRY
};

/* At unload (normally process exit): the count of a run that never called
 * C_Finalize (a crash-free early exit) still reaches the count file. */
__attribute__((destructor)) static void fp_at_unload(void) {
  int locked = pthread_mutex_trylock(&fp_lock) == 0;
  fp_write_count_locked();
  if (locked) pthread_mutex_unlock(&fp_lock);
}
