// SPDX-License-Identifier: Apache-2.0
// libcurl, loaded when tokenprov first speaks HTTP (SCEP), not at process start.
//
// Linked the usual way, libcurl brings some 25 more shared libraries into every
// tokenprov process (GnuTLS, Nettle, GMP, Kerberos, LDAP, SASL, SSH, RTMP,
// IDN, PSL, Brotli, zstd, ...). Loading and relocating them cost each command
// about 2.5 ms of CPU before main(): a tenth of a short `provision` run on
// SoftHSM2, in which only SCEP ever needs HTTP (see docs/performance.md).
//
// So the binary does not link libcurl: this file defines the libcurl functions
// tokenprov calls, and each forwards to the real one, resolved with dlopen()
// on first use. Only the functions below exist; calling another libcurl
// function from tokenprov is a link error, fixed by adding it here. The
// headers are libcurl's own, so the signatures cannot drift.
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

#include "tokenprov/error.hpp"

#include <dlfcn.h>

#include <cstdarg>
#include <string>

namespace {

struct CurlApi {
  CURLcode (*global_init)(long);
  CURL* (*easy_init)();
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...);
  CURLcode (*easy_perform)(CURL*);
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...);
  void (*easy_cleanup)(CURL*);
  const char* (*easy_strerror)(CURLcode);
  char* (*easy_escape)(CURL*, const char*, int);
  void (*free)(void*);
  curl_slist* (*slist_append)(curl_slist*, const char*);
  void (*slist_free_all)(curl_slist*);
};

CurlApi load() {
  void* h = nullptr;
  std::string why;
  for (const char* soname : {"libcurl.so.4", "libcurl-gnutls.so.4"}) {
    h = ::dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (h) break;
    if (why.empty()) {
      const char* e = ::dlerror();
      why = e ? e : "not found";
    }
  }
  if (!h)
    tokenprov::fail(tokenprov::ExitCode::Ca, "Cannot load libcurl, which tokenprov needs for HTTP (SCEP): " + why + ".",
                    "Install libcurl (on Debian: apt-get install libcurl4).");
  auto sym = [h](const char* name) {
    void* p = ::dlsym(h, name);
    if (!p)
      tokenprov::fail(tokenprov::ExitCode::Ca, std::string("The libcurl on this machine has no ") + name + ".",
                      "Install the libcurl4 package.");
    return p;
  };
  CurlApi a{};
  a.global_init = reinterpret_cast<decltype(a.global_init)>(sym("curl_global_init"));
  a.easy_init = reinterpret_cast<decltype(a.easy_init)>(sym("curl_easy_init"));
  a.easy_setopt = reinterpret_cast<decltype(a.easy_setopt)>(sym("curl_easy_setopt"));
  a.easy_perform = reinterpret_cast<decltype(a.easy_perform)>(sym("curl_easy_perform"));
  a.easy_getinfo = reinterpret_cast<decltype(a.easy_getinfo)>(sym("curl_easy_getinfo"));
  a.easy_cleanup = reinterpret_cast<decltype(a.easy_cleanup)>(sym("curl_easy_cleanup"));
  a.easy_strerror = reinterpret_cast<decltype(a.easy_strerror)>(sym("curl_easy_strerror"));
  a.easy_escape = reinterpret_cast<decltype(a.easy_escape)>(sym("curl_easy_escape"));
  a.free = reinterpret_cast<decltype(a.free)>(sym("curl_free"));
  a.slist_append = reinterpret_cast<decltype(a.slist_append)>(sym("curl_slist_append"));
  a.slist_free_all = reinterpret_cast<decltype(a.slist_free_all)>(sym("curl_slist_free_all"));
  return a;
}

// Loaded once (thread-safe); a failure throws and the next call tries again.
const CurlApi& api() {
  static const CurlApi a = load();
  return a;
}

} // namespace

extern "C" {

CURLcode curl_global_init(long flags) { return api().global_init(flags); }

CURL* curl_easy_init() { return api().easy_init(); }

// One argument after the option, its type given by the option's number range (curl.h, CURLOPTTYPE_*).
CURLcode curl_easy_setopt(CURL* curl, CURLoption option, ...) {
  va_list ap;
  va_start(ap, option);
  CURLcode rc;
  if (option < CURLOPTTYPE_OBJECTPOINT) {
    long v = va_arg(ap, long);
    rc = api().easy_setopt(curl, option, v);
  } else if (option < CURLOPTTYPE_FUNCTIONPOINT) {
    void* v = va_arg(ap, void*);
    rc = api().easy_setopt(curl, option, v);
  } else if (option < CURLOPTTYPE_OFF_T) {
    using Fn = void (*)();
    Fn v = va_arg(ap, Fn);
    rc = api().easy_setopt(curl, option, v);
  } else if (option < CURLOPTTYPE_BLOB) {
    curl_off_t v = va_arg(ap, curl_off_t);
    rc = api().easy_setopt(curl, option, v);
  } else {
    void* v = va_arg(ap, void*);
    rc = api().easy_setopt(curl, option, v);
  }
  va_end(ap);
  return rc;
}

CURLcode curl_easy_perform(CURL* curl) { return api().easy_perform(curl); }

// Every CURLINFO takes one pointer.
CURLcode curl_easy_getinfo(CURL* curl, CURLINFO info, ...) {
  va_list ap;
  va_start(ap, info);
  void* p = va_arg(ap, void*);
  va_end(ap);
  return api().easy_getinfo(curl, info, p);
}

void curl_easy_cleanup(CURL* curl) {
  if (curl) api().easy_cleanup(curl);
}

const char* curl_easy_strerror(CURLcode code) { return api().easy_strerror(code); }

char* curl_easy_escape(CURL* curl, const char* s, int length) { return api().easy_escape(curl, s, length); }

void curl_free(void* p) {
  if (p) api().free(p);
}

curl_slist* curl_slist_append(curl_slist* list, const char* s) { return api().slist_append(list, s); }

void curl_slist_free_all(curl_slist* list) {
  if (list) api().slist_free_all(list);
}

} // extern "C"
