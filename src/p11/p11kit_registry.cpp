// SPDX-License-Identifier: Apache-2.0
// module-name (RFC 7512 section 2.4) through p11-kit's own configuration
// reading: p11_kit_modules_load() reads the registry exactly as p11-kit-proxy
// and every p11-kit consumer do, p11_kit_module_for_name() picks the module,
// p11_kit_module_get_filename() gives its file. tokenprov then loads that file
// itself (p11::Module), the one owner of its C_Initialize.
//
// libp11-kit is loaded with dlopen() here, like libcurl in curl_lazy.cpp: the
// binary does not link it, and only a URI with module-name loads it. The
// function types come from p11-kit's own header, so they cannot drift.
#include "tokenprov/p11kit_registry.hpp"

#include "tokenprov/error.hpp"

#include <p11-kit/p11-kit.h>

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>

namespace tokenprov {

namespace {

struct P11KitApi {
  decltype(&p11_kit_modules_load) modules_load = nullptr;
  decltype(&p11_kit_module_for_name) module_for_name = nullptr;
  decltype(&p11_kit_module_get_filename) module_get_filename = nullptr;
  decltype(&p11_kit_config_option) config_option = nullptr;
  decltype(&p11_kit_message) message = nullptr;
  decltype(&p11_kit_be_quiet) be_quiet = nullptr;
};

template <typename F> void resolve(void* handle, const char* name, F& out) {
  out = reinterpret_cast<F>(::dlsym(handle, name));
  if (!out)
    fail(ExitCode::Token, std::string("libp11-kit.so.0 has no ") + name + "; module-name needs p11-kit 0.23 or later.",
         "Name the module file with module-path or --module instead.");
}

const P11KitApi& api() {
  static const P11KitApi a = [] {
    void* h = ::dlopen("libp11-kit.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* e = ::dlerror();
      fail(ExitCode::Token,
           std::string("A PKCS#11 URI names its module with module-name, which needs p11-kit's library, but "
                       "libp11-kit.so.0 cannot be loaded: ") +
               (e ? e : "unknown error") + ".",
           "Install libp11-kit0, or name the module file with module-path or --module.");
    }
    P11KitApi r;
    resolve(h, "p11_kit_modules_load", r.modules_load);
    resolve(h, "p11_kit_module_for_name", r.module_for_name);
    resolve(h, "p11_kit_module_get_filename", r.module_get_filename);
    resolve(h, "p11_kit_config_option", r.config_option);
    resolve(h, "p11_kit_message", r.message);
    resolve(h, "p11_kit_be_quiet", r.be_quiet);
    return r; // libp11-kit stays loaded: the module list below lives in it
  }();
  return a;
}

} // namespace

std::string p11kit_module_path(const std::string& name) {
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  const auto& p = api();
  // Loaded (dlopen, C_GetFunctionList; never initialized) once and kept:
  // releasing the list would dlclose the modules, which tokenprov never does
  // (docs/architecture.md, "Module lifetime").
  static CK_FUNCTION_LIST** modules = nullptr;
  if (!modules) {
    p.be_quiet(); // a broken registration of another module is not this command's business
    modules = p.modules_load(nullptr, P11_KIT_MODULE_UNMANAGED);
    if (!modules) {
      const char* m = p.message();
      fail(ExitCode::Token, std::string("p11-kit could not read its module registry") + (m ? ": " + std::string(m) : "") + ".",
           "Check the .module files p11-kit reads ('p11-kit list-modules' shows what it sees).");
    }
  }
  CK_FUNCTION_LIST* module = p.module_for_name(modules, name.c_str());
  if (!module)
    fail(ExitCode::Token,
         "No PKCS#11 module named '" + name +
             "' is registered with p11-kit (a NAME.module file in /usr/share/p11-kit/modules, /etc/pkcs11/modules "
             "or ~/.config/pkcs11/modules, enabled for this program).",
         "See 'p11-kit list-modules' for the registered names, or name the module file with module-path.");
  char* file = p.module_get_filename(module);
  if (!file)
    fail(ExitCode::Token, "p11-kit registers the module '" + name + "' without a module file.",
         "Name the module file with module-path or --module.");
  std::string path(file);
  std::free(file); // p11-kit: "Use free() to release the return value"
  if (char* reserved = p.config_option(module, "x-init-reserved")) {
    std::free(reserved);
    fail(ExitCode::Token,
         "p11-kit's registration of the module '" + name +
             "' passes it initialization arguments (x-init-reserved), which tokenprov cannot pass when it loads '" +
             path + "' itself.",
         "Use the module through p11-kit's proxy: --module /usr/lib/x86_64-linux-gnu/p11-kit-proxy.so with "
         "pkcs11:token=... (no module-name).");
  }
  return path;
}

} // namespace tokenprov
