// SPDX-License-Identifier: Apache-2.0
/*
 * latencyp11: a PKCS#11 v2.40 module that forwards every call to a real one
 * (SoftHSM2 by default) and then waits as long as a card would take for it,
 * per a latency profile, and counts the calls at the module boundary. It is
 * the card-latency model of the benchmark (bench/, docs/performance.md): the
 * waits are real (nanosleep), not CPU, so figures under it are stable on a
 * shared machine, and several tokens wait side by side as separate cards do.
 * It shares its wrapper code with faultp11 (tests/faultp11/p11shim.h).
 *
 * Environment (read at C_Initialize, every time):
 *
 *   LATENCYP11_MODULE=PATH     the real module (default SoftHSM2)
 *   LATENCYP11_PROFILE=PATH    the latency profile (below); unset: no waits,
 *                              the shim only counts
 *   LATENCYP11_SCALE=X         every wait multiplied by X (default 1)
 *   LATENCYP11_COUNT_FILE=PATH the counters are written there (through a
 *                              temporary file and a rename) at C_Finalize and
 *                              when the library is unloaded; "%p" in PATH is
 *                              the process id, so each process of a pipeline
 *                              writes its own file. The counters cover the
 *                              whole process (every C_Initialize of it).
 *
 * Counter file, one "name value" a line:
 *   calls N          every call but C_GetFunctionList
 *   logins_so N      C_Login calls as CKU_SO
 *   logins_user N    C_Login calls as CKU_USER (or CKU_CONTEXT_SPECIFIC)
 *   modelled_us N    the sum of the waits (the modelled card time)
 *   C_Name N         calls per function (only those called)
 *
 * Profile: lines "key = value", "#" starts a comment. Times are a number
 * with a unit, us, ms or s ("150ms", "2.5s").
 *
 *   default = 2ms                  a function the profile does not name
 *   C_Login = 60ms                 a function (any PKCS#11 name)
 *   C_GenerateKeyPair/CKM_EC_KEY_PAIR_GEN = 900ms
 *   C_Sign/0x1041 = 150ms          per mechanism (name or number): for
 *                                  C_GenerateKey(Pair), C_WrapKey, C_UnwrapKey
 *                                  the call's mechanism, for C_Sign*, C_Verify*,
 *                                  C_Encrypt*, C_Decrypt* the one their *Init
 *                                  set on the session
 *   C_CreateObject.per_byte = 30us per byte of the attribute values written
 *                                  (C_CreateObject, C_SetAttributeValue), read
 *                                  (C_GetAttributeValue) or passed in (C_Sign,
 *                                  C_Decrypt, ...), added to the fixed part
 *   C_GetSlotList.per_item = 20ms  per slot returned (C_GetSlotList), per
 *                                  object handle returned (C_FindObjects)
 *   jitter = 0.15                  each wait is multiplied by a factor drawn
 *                                  uniformly from [1 - jitter, 1 + jitter]
 *   seed = 42                      the seed of that draw (splitmix64): the same
 *                                  profile gives the same sequence per process
 *
 * A profile that cannot be read or parsed makes C_Initialize fail with
 * CKR_GENERAL_ERROR and a message on stderr. A call is forwarded first; then
 * the shim waits until the call has taken the modelled time in all (the real
 * module's own time counts as the card's), outside any lock of the shim. The
 * shim never changes a call's arguments or result.
 */
#define _POSIX_C_SOURCE 200809L

#include <p11-kit/pkcs11.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FP_SHIM_NAME "latencyp11"
#include "../faultp11/p11shim.h"

/* ---- the profile --------------------------------------------------------------- */

#define LP_MAX_MECH_RULES 64
#define LP_NO_MECH ((CK_MECHANISM_TYPE)~0UL)

struct lp_mech_rule {
  int fn;
  CK_MECHANISM_TYPE mech;
  double us;
};

struct lp_profile {
  double default_us;
  double fn_us[FP_COUNT]; /* < 0: not set, default_us */
  double per_byte_us[FP_COUNT];
  double per_item_us[FP_COUNT];
  struct lp_mech_rule mech[LP_MAX_MECH_RULES];
  int n_mech;
  double jitter;
  uint64_t seed;
  double scale;
};

static const struct {
  const char* name;
  CK_MECHANISM_TYPE type;
} lp_mech_names[] = {
    {"CKM_RSA_PKCS_KEY_PAIR_GEN", CKM_RSA_PKCS_KEY_PAIR_GEN},
    {"CKM_RSA_PKCS", CKM_RSA_PKCS},
    {"CKM_RSA_X_509", CKM_RSA_X_509},
    {"CKM_RSA_PKCS_OAEP", CKM_RSA_PKCS_OAEP},
    {"CKM_RSA_PKCS_PSS", CKM_RSA_PKCS_PSS},
    {"CKM_SHA256_RSA_PKCS", CKM_SHA256_RSA_PKCS},
    {"CKM_SHA256_RSA_PKCS_PSS", CKM_SHA256_RSA_PKCS_PSS},
    {"CKM_EC_KEY_PAIR_GEN", CKM_EC_KEY_PAIR_GEN},
    {"CKM_ECDSA", CKM_ECDSA},
    {"CKM_ECDSA_SHA256", CKM_ECDSA_SHA256},
    {"CKM_EC_EDWARDS_KEY_PAIR_GEN", 0x1055UL},
    {"CKM_EDDSA", 0x1057UL},
    {"CKM_AES_KEY_GEN", CKM_AES_KEY_GEN},
    {"CKM_AES_KEY_WRAP", 0x2109UL},
    {"CKM_AES_KEY_WRAP_PAD", 0x210AUL},
};

static pthread_mutex_t lp_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lp_profile lp_prof;
static int lp_have_profile;
static uint64_t lp_rng;
static char lp_count_file[FP_PATH_MAX];
static unsigned long lp_total, lp_per_fn[FP_COUNT], lp_logins_so, lp_logins_user;
static double lp_modelled_us;
static void* lp_real_handle;
static char lp_real_path[FP_PATH_MAX];
static CK_FUNCTION_LIST* lp_real; /* __atomic */
static CK_FUNCTION_LIST lp_list;  /* defined at the end */

static CK_FUNCTION_LIST* lp_real_list(void) { return __atomic_load_n(&lp_real, __ATOMIC_ACQUIRE); }

static char* lp_trim(char* s) {
  while (*s == ' ' || *s == '\t') ++s;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) s[--n] = '\0';
  return s;
}

/* "150ms", "2.5s", "800us" -> microseconds; -1 when unparsable. */
static double lp_parse_time(const char* v) {
  char* end = NULL;
  errno = 0;
  double x = strtod(v, &end);
  if (errno || end == v || x < 0 || !isfinite(x)) return -1;
  while (*end == ' ') ++end;
  if (strcmp(end, "us") == 0) return x;
  if (strcmp(end, "ms") == 0) return x * 1e3;
  if (strcmp(end, "s") == 0) return x * 1e6;
  return -1;
}

static int lp_parse_mech(const char* s, CK_MECHANISM_TYPE* out) {
  for (size_t i = 0; i < sizeof lp_mech_names / sizeof lp_mech_names[0]; ++i)
    if (strcmp(lp_mech_names[i].name, s) == 0) {
      *out = lp_mech_names[i].type;
      return 1;
    }
  char* end = NULL;
  errno = 0;
  unsigned long v = strtoul(s, &end, 0);
  if (errno || end == s || *end || s[0] == '-') return 0;
  *out = (CK_MECHANISM_TYPE)v;
  return 1;
}

/* Reads PATH into *p. Returns 0 after a message naming the line. */
static int lp_read_profile(const char* path, struct lp_profile* p) {
  FILE* f = fopen(path, "r");
  if (!f) {
    fp_warn("cannot read the profile '%s': %s", path, strerror(errno));
    return 0;
  }
  char line[512];
  int lineno = 0, ok = 1;
  while (ok && fgets(line, sizeof line, f)) {
    ++lineno;
    char* hash = strchr(line, '#');
    if (hash) *hash = '\0';
    char* s = lp_trim(line);
    if (!*s) continue;
    char* eq = strchr(s, '=');
    if (!eq) {
      fp_warn("%s:%d: not 'key = value'", path, lineno);
      ok = 0;
      break;
    }
    *eq = '\0';
    char* key = lp_trim(s);
    char* val = lp_trim(eq + 1);
    if (strcmp(key, "jitter") == 0) {
      char* end = NULL;
      p->jitter = strtod(val, &end);
      if (end == val || *end || p->jitter < 0 || p->jitter >= 1) {
        fp_warn("%s:%d: jitter must be a fraction in [0, 1)", path, lineno);
        ok = 0;
      }
      continue;
    }
    if (strcmp(key, "seed") == 0) {
      char* end = NULL;
      p->seed = strtoull(val, &end, 0);
      if (end == val || *end) {
        fp_warn("%s:%d: seed must be a number", path, lineno);
        ok = 0;
      }
      continue;
    }
    double us = lp_parse_time(val);
    if (us < 0) {
      fp_warn("%s:%d: '%s' is not a time (a number with us, ms or s)", path, lineno, val);
      ok = 0;
      break;
    }
    if (strcmp(key, "default") == 0) {
      p->default_us = us;
      continue;
    }
    char* slash = strchr(key, '/');
    char* dot = strchr(key, '.');
    if (slash) *slash = '\0';
    if (dot) *dot = '\0';
    int fn = fp_function_index(key);
    if (fn < 0 || fn == FP_IDX_C_GetFunctionList) {
      fp_warn("%s:%d: '%s' is not a PKCS#11 function", path, lineno, key);
      ok = 0;
    } else if (slash) {
      CK_MECHANISM_TYPE m;
      if (!lp_parse_mech(slash + 1, &m)) {
        fp_warn("%s:%d: '%s' is not a mechanism this shim knows (a CKM_ name or a number)", path, lineno, slash + 1);
        ok = 0;
      } else if (p->n_mech == LP_MAX_MECH_RULES) {
        fp_warn("%s:%d: more than %d mechanism rules", path, lineno, LP_MAX_MECH_RULES);
        ok = 0;
      } else {
        p->mech[p->n_mech++] = (struct lp_mech_rule){fn, m, us};
      }
    } else if (dot && strcmp(dot + 1, "per_byte") == 0) {
      p->per_byte_us[fn] = us;
    } else if (dot && strcmp(dot + 1, "per_item") == 0) {
      p->per_item_us[fn] = us;
    } else if (dot) {
      fp_warn("%s:%d: '.%s' is neither .per_byte nor .per_item", path, lineno, dot + 1);
      ok = 0;
    } else {
      p->fn_us[fn] = us;
    }
  }
  fclose(f);
  return ok;
}

static void lp_profile_clear(struct lp_profile* p) {
  memset(p, 0, sizeof *p);
  for (int i = 0; i < FP_COUNT; ++i) p->fn_us[i] = -1;
  p->scale = 1;
}

/* ---- mechanisms of the operations active on a session ---------------------------- */

enum { LP_OP_SIGN, LP_OP_VERIFY, LP_OP_ENCRYPT, LP_OP_DECRYPT, LP_OPS };
#define LP_SESSIONS 4096
static struct {
  CK_SESSION_HANDLE s;
  CK_MECHANISM_TYPE mech[LP_OPS];
} lp_sessions[LP_SESSIONS]; /* a hint for the cost only; a collision costs the default */

static void lp_set_mech(CK_SESSION_HANDLE s, int op, const CK_MECHANISM* m) {
  pthread_mutex_lock(&lp_lock);
  size_t i = (size_t)(s % LP_SESSIONS);
  if (lp_sessions[i].s != s) {
    lp_sessions[i].s = s;
    for (int k = 0; k < LP_OPS; ++k) lp_sessions[i].mech[k] = LP_NO_MECH;
  }
  lp_sessions[i].mech[op] = m ? m->mechanism : LP_NO_MECH;
  pthread_mutex_unlock(&lp_lock);
}

static CK_MECHANISM_TYPE lp_get_mech(CK_SESSION_HANDLE s, int op) {
  pthread_mutex_lock(&lp_lock);
  size_t i = (size_t)(s % LP_SESSIONS);
  CK_MECHANISM_TYPE m = lp_sessions[i].s == s ? lp_sessions[i].mech[op] : LP_NO_MECH;
  pthread_mutex_unlock(&lp_lock);
  return m;
}

/* ---- counting and waiting ------------------------------------------------------------ */

static uint64_t lp_next_random_locked(void) { /* splitmix64 */
  uint64_t z = (lp_rng += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* Counts the call and returns how long it waits (microseconds). */
static double lp_account(int idx, CK_MECHANISM_TYPE mech, unsigned long bytes, unsigned long items) {
  pthread_mutex_lock(&lp_lock);
  ++lp_total;
  ++lp_per_fn[idx];
  double us = 0;
  if (lp_have_profile) {
    const struct lp_profile* p = &lp_prof;
    us = p->fn_us[idx] >= 0 ? p->fn_us[idx] : p->default_us;
    if (mech != LP_NO_MECH)
      for (int i = 0; i < p->n_mech; ++i)
        if (p->mech[i].fn == idx && p->mech[i].mech == mech) us = p->mech[i].us;
    us += p->per_byte_us[idx] * (double)bytes + p->per_item_us[idx] * (double)items;
    if (p->jitter > 0) {
      double u = (double)(lp_next_random_locked() >> 11) / 9007199254740992.0; /* [0, 1) */
      us *= 1 + p->jitter * (2 * u - 1);
    }
    us *= p->scale;
    lp_modelled_us += us;
  }
  pthread_mutex_unlock(&lp_lock);
  return us;
}

static double lp_now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

/* The call started at T0 and the card takes US for it: waits what is left
 * (the real module's own time counts as the card's; a real module slower
 * than the model is not waited for). */
static void lp_wait_rest(double t0, double us) {
  double left = us - (lp_now_us() - t0);
  if (left <= 0) return;
  struct timespec t = {(time_t)(left / 1e6), (long)(fmod(left, 1e6) * 1e3)};
  while (nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
}

static unsigned long lp_template_bytes(const CK_ATTRIBUTE* t, CK_ULONG n) {
  unsigned long b = 0;
  for (CK_ULONG i = 0; t && i < n; ++i)
    if (t[i].pValue && t[i].ulValueLen != CK_UNAVAILABLE_INFORMATION) b += t[i].ulValueLen;
  return b;
}

/* Writes the counters to the count file. Called with lp_lock held (or at unload). */
static void lp_write_count_locked(void) {
  if (!lp_count_file[0]) return;
  char path[FP_PATH_MAX + 32], tmp[FP_PATH_MAX + 64];
  size_t o = 0;
  for (const char* c = lp_count_file; *c && o + 24 < sizeof path; ++c) {
    if (c[0] == '%' && c[1] == 'p') {
      o += (size_t)snprintf(path + o, sizeof path - o, "%ld", (long)getpid());
      ++c;
    } else {
      path[o++] = *c;
    }
  }
  path[o] = '\0';
  snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
  FILE* f = fopen(tmp, "w");
  if (!f) return;
  int ok = fprintf(f, "calls %lu\nlogins_so %lu\nlogins_user %lu\nmodelled_us %.0f\n", lp_total, lp_logins_so,
                   lp_logins_user, lp_modelled_us) > 0;
  for (int i = 0; i < FP_COUNT; ++i)
    if (lp_per_fn[i]) ok &= fprintf(f, "%s %lu\n", fp_names[i], lp_per_fn[i]) > 0;
  ok &= fclose(f) == 0;
  if (!ok || rename(tmp, path) != 0) unlink(tmp);
}

static CK_RV lp_load_real_locked(void) {
  const char* path = fp_env("LATENCYP11_MODULE");
  if (!path) path = FP_DEFAULT_MODULE;
  if (lp_real_list() && strcmp(path, lp_real_path) == 0) return CKR_OK;
  void* h = NULL;
  CK_FUNCTION_LIST* list = NULL;
  CK_RV rv = fp_open_real(path, "LATENCYP11_MODULE", C_GetFunctionList, &h, &list);
  if (rv != CKR_OK) return rv;
  lp_real_handle = h;
  strcpy(lp_real_path, path);
  __atomic_store_n(&lp_real, list, __ATOMIC_RELEASE);
  return CKR_OK;
}

/* ---- the functions ---------------------------------------------------------------------- */

/* Forwards the call; lp_t0_ is when it started (the wait is topped up from there). */
#define LP_REAL(name, args)                                           \
  const double lp_t0_ = lp_now_us();                                  \
  do {                                                                \
    CK_FUNCTION_LIST* real_ = lp_real_list();                         \
    if (!real_) rv = CKR_CRYPTOKI_NOT_INITIALIZED;                    \
    else if (!real_->name) rv = CKR_FUNCTION_NOT_SUPPORTED;           \
    else rv = real_->name args;                                       \
  } while (0)
#define lp_after(idx, mech, bytes, items) lp_wait_rest(lp_t0_, lp_account((idx), (mech), (bytes), (items)))

static CK_RV lp_C_Initialize(CK_VOID_PTR args) {
  struct lp_profile p;
  lp_profile_clear(&p);
  int ok = 1;
  const char* prof = fp_env("LATENCYP11_PROFILE");
  if (prof) ok = lp_read_profile(prof, &p);
  const char* scale = fp_env("LATENCYP11_SCALE");
  if (ok && scale) {
    char* end = NULL;
    p.scale = strtod(scale, &end);
    if (end == scale || *end || !(p.scale >= 0) || !isfinite(p.scale)) {
      fp_warn("LATENCYP11_SCALE='%s' is not a factor >= 0", scale);
      ok = 0;
    }
  }
  pthread_mutex_lock(&lp_lock);
  CK_RV rv = CKR_GENERAL_ERROR;
  const char* cf = fp_env("LATENCYP11_COUNT_FILE");
  if (cf && strlen(cf) >= FP_PATH_MAX) {
    fp_warn("LATENCYP11_COUNT_FILE is too long");
    ok = 0;
  }
  if (ok) {
    snprintf(lp_count_file, sizeof lp_count_file, "%s", cf ? cf : "");
    lp_prof = p;
    lp_have_profile = prof != NULL;
    lp_rng = p.seed;
    rv = lp_load_real_locked();
  }
  pthread_mutex_unlock(&lp_lock);
  const double lp_t0_ = lp_now_us();
  if (rv == CKR_OK) {
    CK_FUNCTION_LIST* real = lp_real_list();
    rv = real->C_Initialize ? real->C_Initialize(args) : CKR_FUNCTION_NOT_SUPPORTED;
  }
  lp_after(FP_IDX_C_Initialize, LP_NO_MECH, 0, 0);
  return rv;
}

static CK_RV lp_C_Finalize(CK_VOID_PTR reserved) {
  CK_RV rv;
  LP_REAL(C_Finalize, (reserved));
  lp_after(FP_IDX_C_Finalize, LP_NO_MECH, 0, 0);
  pthread_mutex_lock(&lp_lock);
  lp_write_count_locked();
  pthread_mutex_unlock(&lp_lock);
  return rv;
}

/* Every forwarded function: the call, then its fixed wait. The functions
 * whose wait depends on a mechanism, bytes or items are replaced below. */
#define LP_DEFINE(name, params, args)                \
  static CK_RV lp_##name params {                    \
    CK_RV rv;                                        \
    LP_REAL(name, args);                             \
    lp_after(FP_IDX_##name, LP_NO_MECH, 0, 0);       \
    return rv;                                       \
  }
FP_FORWARDED(LP_DEFINE)
#undef LP_DEFINE

static CK_RV lp_x_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count) {
  CK_RV rv;
  LP_REAL(C_GetSlotList, (present, list, count));
  lp_after(FP_IDX_C_GetSlotList, LP_NO_MECH, 0, rv == CKR_OK && list && count ? *count : 0);
  return rv;
}

static CK_RV lp_x_Login(CK_SESSION_HANDLE s, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len) {
  CK_RV rv;
  LP_REAL(C_Login, (s, user, pin, pin_len));
  pthread_mutex_lock(&lp_lock);
  if (user == CKU_SO) ++lp_logins_so;
  else ++lp_logins_user;
  pthread_mutex_unlock(&lp_lock);
  lp_after(FP_IDX_C_Login, LP_NO_MECH, 0, 0);
  return rv;
}

static CK_RV lp_x_CreateObject(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR obj) {
  CK_RV rv;
  LP_REAL(C_CreateObject, (s, t, n, obj));
  lp_after(FP_IDX_C_CreateObject, LP_NO_MECH, lp_template_bytes(t, n), 0);
  return rv;
}

static CK_RV lp_x_SetAttributeValue(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n) {
  CK_RV rv;
  LP_REAL(C_SetAttributeValue, (s, o, t, n));
  lp_after(FP_IDX_C_SetAttributeValue, LP_NO_MECH, lp_template_bytes(t, n), 0);
  return rv;
}

static CK_RV lp_x_GetAttributeValue(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n) {
  CK_RV rv;
  LP_REAL(C_GetAttributeValue, (s, o, t, n));
  lp_after(FP_IDX_C_GetAttributeValue, LP_NO_MECH, lp_template_bytes(t, n), 0);
  return rv;
}

static CK_RV lp_x_FindObjects(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE_PTR objs, CK_ULONG max, CK_ULONG_PTR count) {
  CK_RV rv;
  LP_REAL(C_FindObjects, (s, objs, max, count));
  lp_after(FP_IDX_C_FindObjects, LP_NO_MECH, 0, rv == CKR_OK && count ? *count : 0);
  return rv;
}

static CK_RV lp_x_GenerateKeyPair(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pt, CK_ULONG pn,
                                  CK_ATTRIBUTE_PTR kt, CK_ULONG kn, CK_OBJECT_HANDLE_PTR pub,
                                  CK_OBJECT_HANDLE_PTR priv) {
  CK_RV rv;
  LP_REAL(C_GenerateKeyPair, (s, m, pt, pn, kt, kn, pub, priv));
  lp_after(FP_IDX_C_GenerateKeyPair, m ? m->mechanism : LP_NO_MECH, 0, 0);
  return rv;
}

static CK_RV lp_x_GenerateKey(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR t, CK_ULONG n,
                              CK_OBJECT_HANDLE_PTR key) {
  CK_RV rv;
  LP_REAL(C_GenerateKey, (s, m, t, n, key));
  lp_after(FP_IDX_C_GenerateKey, m ? m->mechanism : LP_NO_MECH, 0, 0);
  return rv;
}

static CK_RV lp_x_WrapKey(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE w, CK_OBJECT_HANDLE k,
                          CK_BYTE_PTR out, CK_ULONG_PTR out_len) {
  CK_RV rv;
  LP_REAL(C_WrapKey, (s, m, w, k, out, out_len));
  lp_after(FP_IDX_C_WrapKey, m ? m->mechanism : LP_NO_MECH, 0, 0);
  return rv;
}

static CK_RV lp_x_UnwrapKey(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE u, CK_BYTE_PTR in,
                            CK_ULONG in_len, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR key) {
  CK_RV rv;
  LP_REAL(C_UnwrapKey, (s, m, u, in, in_len, t, n, key));
  lp_after(FP_IDX_C_UnwrapKey, m ? m->mechanism : LP_NO_MECH, in_len, 0);
  return rv;
}

/* The *Init functions note their mechanism on the session. */
#define LP_INIT(op_name, op)                                                                         \
  static CK_RV lp_x_##op_name##Init(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key) { \
    CK_RV rv;                                                                                        \
    LP_REAL(C_##op_name##Init, (s, m, key));                                                         \
    if (rv == CKR_OK) lp_set_mech(s, op, m);                                                         \
    lp_after(FP_IDX_C_##op_name##Init, m ? m->mechanism : LP_NO_MECH, 0, 0);                         \
    return rv;                                                                                       \
  }
LP_INIT(Sign, LP_OP_SIGN)
LP_INIT(Verify, LP_OP_VERIFY)
LP_INIT(Encrypt, LP_OP_ENCRYPT)
LP_INIT(Decrypt, LP_OP_DECRYPT)
#undef LP_INIT

/* One-shot and update operations: the session's mechanism, the input's bytes. */
#define LP_OP(name, op)                                                                                     \
  static CK_RV lp_x_##name(CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,          \
                           CK_ULONG_PTR out_len) {                                                          \
    CK_RV rv;                                                                                               \
    LP_REAL(C_##name, (s, in, in_len, out, out_len));                                                       \
    lp_after(FP_IDX_C_##name, lp_get_mech(s, op), in_len, 0);                                               \
    return rv;                                                                                              \
  }
LP_OP(Sign, LP_OP_SIGN)
LP_OP(Encrypt, LP_OP_ENCRYPT)
LP_OP(Decrypt, LP_OP_DECRYPT)
#undef LP_OP

static CK_RV lp_x_SignUpdate(CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len) {
  CK_RV rv;
  LP_REAL(C_SignUpdate, (s, in, in_len));
  lp_after(FP_IDX_C_SignUpdate, lp_get_mech(s, LP_OP_SIGN), in_len, 0);
  return rv;
}

static CK_RV lp_x_SignFinal(CK_SESSION_HANDLE s, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len) {
  CK_RV rv;
  LP_REAL(C_SignFinal, (s, sig, sig_len));
  lp_after(FP_IDX_C_SignFinal, lp_get_mech(s, LP_OP_SIGN), 0, 0);
  return rv;
}

static CK_RV lp_x_Verify(CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR sig, CK_ULONG sig_len) {
  CK_RV rv;
  LP_REAL(C_Verify, (s, in, in_len, sig, sig_len));
  lp_after(FP_IDX_C_Verify, lp_get_mech(s, LP_OP_VERIFY), in_len, 0);
  return rv;
}

FP_EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
  if (!list) return CKR_ARGUMENTS_BAD;
  pthread_mutex_lock(&lp_lock);
  CK_RV rv = lp_load_real_locked();
  pthread_mutex_unlock(&lp_lock);
  if (rv != CKR_OK) return rv;
  /* the functions whose wait depends on the call */
  lp_list.C_GetSlotList = lp_x_GetSlotList;
  lp_list.C_Login = lp_x_Login;
  lp_list.C_CreateObject = lp_x_CreateObject;
  lp_list.C_SetAttributeValue = lp_x_SetAttributeValue;
  lp_list.C_GetAttributeValue = lp_x_GetAttributeValue;
  lp_list.C_FindObjects = lp_x_FindObjects;
  lp_list.C_GenerateKeyPair = lp_x_GenerateKeyPair;
  lp_list.C_GenerateKey = lp_x_GenerateKey;
  lp_list.C_WrapKey = lp_x_WrapKey;
  lp_list.C_UnwrapKey = lp_x_UnwrapKey;
  lp_list.C_SignInit = lp_x_SignInit;
  lp_list.C_VerifyInit = lp_x_VerifyInit;
  lp_list.C_EncryptInit = lp_x_EncryptInit;
  lp_list.C_DecryptInit = lp_x_DecryptInit;
  lp_list.C_Sign = lp_x_Sign;
  lp_list.C_Encrypt = lp_x_Encrypt;
  lp_list.C_Decrypt = lp_x_Decrypt;
  lp_list.C_SignUpdate = lp_x_SignUpdate;
  lp_list.C_SignFinal = lp_x_SignFinal;
  lp_list.C_Verify = lp_x_Verify;
  *list = &lp_list;
  return CKR_OK;
}

static CK_FUNCTION_LIST lp_list = {
    .version = {2, 40},
    .C_Initialize = lp_C_Initialize,
    .C_Finalize = lp_C_Finalize,
    .C_GetFunctionList = C_GetFunctionList,
#define LP_ENTRY(name, params, args) .name = lp_##name,
    FP_FORWARDED(LP_ENTRY)
#undef LP_ENTRY
};

/* At unload (normally process exit): the counters of a process that never
 * called C_Finalize (the libp11 engine of the pipeline's openssl commands)
 * still reach the count file. */
__attribute__((destructor)) static void lp_at_unload(void) {
  int locked = pthread_mutex_trylock(&lp_lock) == 0;
  lp_write_count_locked();
  if (locked) pthread_mutex_unlock(&lp_lock);
}
