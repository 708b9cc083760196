// SPDX-License-Identifier: Apache-2.0
// PKCS#11 URIs put to work: module, PIN source and token selection from a URI.
#include "tokenprov/uri_resolve.hpp"

#include "tokenprov/error.hpp"
#include "tokenprov/p11kit_registry.hpp"
#include "tokenprov/secret.hpp"
#include "tokenprov/token.hpp"

#include <sys/stat.h>

namespace tokenprov {

namespace {

// The same file, by device and inode when both exist, else by name.
bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  if (::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0)
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  return a == b;
}

bool is_object_attribute(const std::string& name) { return name == "object" || name == "type" || name == "id"; }

// A URI scheme at the start of VALUE ("https:", "pkcs11:"), RFC 3986 section 3.1.
std::string scheme_of(const std::string& value) {
  auto colon = value.find(':');
  if (colon == std::string::npos || colon == 0) return {};
  auto alpha = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  if (!alpha(value[0])) return {};
  for (std::size_t i = 1; i < colon; ++i) {
    char c = value[i];
    if (!alpha(c) && !(c >= '0' && c <= '9') && c != '+' && c != '-' && c != '.') return {};
  }
  return value.substr(0, colon);
}

std::optional<Pkcs11Uri> parse_if_uri(const std::string& selector) {
  if (!Pkcs11Uri::looks_like_uri(selector)) return std::nullopt;
  return Pkcs11Uri::parse(selector);
}

} // namespace

std::optional<std::string> uri_module(const Pkcs11Uri& uri) {
  auto path = uri.get("module-path");
  auto name = uri.get("module-name");
  if (path) {
    if (path->empty() || path->front() != '/')
      fail(ExitCode::Usage, "The PKCS#11 URI's module-path '" + *path + "' is not an absolute path.",
           "Give the module file's full path, e.g. module-path=/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so.");
    struct stat st {};
    if (::stat(path->c_str(), &st) == 0 && S_ISDIR(st.st_mode))
      fail(ExitCode::Usage, "The PKCS#11 URI's module-path '" + *path + "' is a directory; tokenprov loads a module file.",
           "Give the module file's full path in module-path.");
  }
  if (name) {
    if (name->empty() || name->find('/') != std::string::npos)
      fail(ExitCode::Usage, "The PKCS#11 URI's module-name '" + *name + "' is not a module name.",
           "module-name is the name p11-kit registers a module under (e.g. softhsm2); a file goes in module-path.");
    std::string file = p11kit_module_path(*name);
    if (path && !same_file(*path, file))
      fail(ExitCode::Usage,
           "The PKCS#11 URI names two modules: module-path '" + *path + "' and module-name '" + *name +
               "', which p11-kit registers as '" + file + "'.",
           "Keep one of them.");
    if (!path) return file;
  }
  return path;
}

std::string resolve_module_for(const std::string& cli_module, const std::string& profile_module,
                               const std::string& selector) {
  if (auto uri = parse_if_uri(selector)) {
    if (auto m = uri_module(*uri)) {
      if (!cli_module.empty() && !same_file(cli_module, *m))
        fail(ExitCode::Usage,
             "--module names '" + cli_module + "' but the PKCS#11 URI names the module '" + *m +
                 "' (module-path or module-name).",
             "Give the module once: drop --module, or the URI's module-path/module-name.");
      return cli_module.empty() ? *m : cli_module;
    }
  }
  return resolve_module_path(cli_module, profile_module);
}

std::string token_selector_with_key(const std::string& token, const std::string& key) {
  auto kuri = parse_if_uri(key);
  if (!kuri) return token;
  Pkcs11Uri carried; // what the key URI says beyond its object
  for (const auto& [name, value] : kuri->path)
    if (!is_object_attribute(name)) carried.path.emplace(name, value);
  carried.query = kuri->query;
  if (carried.path.empty() && carried.query.empty()) return token;

  Pkcs11Uri merged;
  if (Pkcs11Uri::looks_like_uri(token)) {
    merged = Pkcs11Uri::parse(token);
  } else if (token.rfind("serial:", 0) == 0) {
    merged.path["serial"] = token.substr(7);
  } else if (!token.empty()) {
    merged.path["token"] = token;
  }
  for (const auto& [name, value] : carried.path) {
    auto it = merged.path.find(name);
    if (it == merged.path.end()) {
      merged.path.emplace(name, value);
    } else if (it->second != value) {
      fail(ExitCode::Token,
           "No token matches both --token and --key: one says " + name + "='" + it->second + "', the other " + name +
               "='" + value + "'.",
           "Drop --token (the key URI names the token), or make them agree.");
    }
  }
  for (const auto& [name, value] : carried.query) {
    if (Pkcs11Uri::is_standard_query_attribute(name)) {
      auto mine = merged.get(name);
      if (mine && *mine != value)
        fail(ExitCode::Usage, "--token and --key give different " + name + " values in their PKCS#11 URIs.",
             "Give " + name + " once.");
      if (mine) continue;
    }
    merged.query.emplace(name, value);
  }
  return merged.format();
}

std::string secret_source_from_pin_source(const std::string& value) {
  const std::string where = "The PKCS#11 URI's pin-source '" + value + "'";
  if (value.empty()) fail(ExitCode::Usage, where + " is empty.", "Write pin-source=file:/PATH, or drop it.");
  if (value.front() == '|')
    fail(ExitCode::Usage, where + " asks to run a program for the PIN; tokenprov runs no program a URI names.",
         "Put the PIN in a file only you can read and use pin-source=file:/PATH, or use --pin-source.");
  if (value.front() == '/') return "file:" + value;
  std::string scheme = scheme_of(value);
  if (scheme == "file") {
    std::string rest = value.substr(5);
    if (rest.rfind("//", 0) == 0) { // RFC 8089: file://HOST/PATH, the host empty or localhost
      auto slash = rest.find('/', 2);
      std::string host = rest.substr(2, slash == std::string::npos ? std::string::npos : slash - 2);
      if (slash == std::string::npos || !(host.empty() || host == "localhost"))
        fail(ExitCode::Usage, where + " names a file on another host; tokenprov reads local files only.",
             "Write pin-source=file:/PATH.");
      rest = rest.substr(slash);
    }
    if (rest.empty()) fail(ExitCode::Usage, where + " names no file.", "Write pin-source=file:/PATH.");
    return "file:" + rest;
  }
  if (value == "prompt" || scheme == "env" || scheme == "fd") return value;
  if (!scheme.empty())
    fail(ExitCode::Usage,
         where + " is a " + scheme +
             ": URI, which tokenprov cannot read a PIN from; it reads file: URIs and paths, and env:VAR, fd:N, prompt.",
         "Put the PIN in a file only you can read and use pin-source=file:/PATH.");
  return "file:" + value; // a relative path, as file:PATH takes it
}

std::string pin_source_for(const std::string& cli_source, const std::string& selector) {
  auto uri = parse_if_uri(selector);
  auto ps = uri ? uri->get("pin-source") : std::nullopt;
  if (!ps) return cli_source;
  std::string mapped = secret_source_from_pin_source(*ps);
  if (!cli_source.empty() && cli_source != mapped)
    fail(ExitCode::Usage,
         "--pin-source '" + cli_source + "' and the PKCS#11 URI's pin-source '" + *ps + "' name different PIN sources.",
         "Give the PIN source once.");
  return mapped;
}

bool uri_selects_token(const Pkcs11Uri& uri, const p11::Module& module, const p11::TokenInfo& token) {
  if (!uri.matches_token(token)) return false;
  if (uri.names_library() && !uri.matches_library(module.library_info())) return false;
  if (uri.names_slot() && !uri.matches_slot(module.slot_info(token.slot_id))) return false;
  return true;
}

} // namespace tokenprov
