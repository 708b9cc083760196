// SPDX-License-Identifier: Apache-2.0
#include "common.hpp"

#include "tokenprov/profile.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/uri_resolve.hpp"
#include "tokenprov/utf8.hpp"

#include <iostream>
#include <unistd.h>

namespace tokenprov::cli {

void status(const Global& g, const std::string& line) {
  if (!g.quiet) std::cerr << escape_invalid_utf8(line) << std::endl; // a foreign label's bytes shown as \xNN
}

void print_json(const nlohmann::json& j) { std::cout << json_text(j) << std::endl; }

int finish(const Global& g, nlohmann::json result, const std::string& human) {
  if (g.json) {
    nlohmann::json out = {{"ok", true}};
    if (result.is_object()) out.update(result); // `{}` from a command with nothing to add is null
    print_json(out);
  } else if (!human.empty()) {
    std::cout << escape_invalid_utf8(human);
    if (human.back() != '\n') std::cout << '\n';
  }
  return 0;
}

Secret secret_from(const std::string& source, const std::string& what, ExitCode code, bool confirm,
                   std::size_t min_length) {
  SecretRequest req;
  req.what = what;
  req.code = code;
  req.confirm = confirm;
  req.min_length = min_length;
  return read_secret(source.empty() ? "prompt" : source, req);
}

Secret user_pin(const Global& g, std::size_t min_length) {
  return secret_from(pin_source(g), "user PIN", ExitCode::Pin, false, min_length);
}

Secret so_pin(const Global& g) { return secret_from(g.so_pin_source, "SO PIN", ExitCode::Pin); }

const Profile& profile(const Global& g) {
  static const Profile p = load_profile(g.profile); // one command per process: one profile
  return p;
}

void check_export(const Global& g, bool exportable, ExportAsk ask) {
  if (exportable && !g.profile.empty()) check_export_allowed(g.profile, profile(g).allow_export, exportable, ask);
}

std::string module_path(const Global& g) {
  std::string profile_module;
  if (!g.profile.empty() && g.module.empty()) profile_module = profile(g).module;
  return resolve_module_for(g.module, profile_module, g.token);
}

std::string pin_source(const Global& g) { return pin_source_for(g.pin_source, g.token); }

Global with_key_uri(const Global& g, const std::string& key) {
  Global out = g;
  out.token = token_selector_with_key(g.token, key);
  return out;
}

std::vector<std::string> split_commas(const std::vector<std::string>& in) {
  std::vector<std::string> out;
  for (auto& s : in) {
    std::size_t start = 0;
    while (start <= s.size()) {
      auto c = s.find(',', start);
      std::string w = s.substr(start, c == std::string::npos ? std::string::npos : c - start);
      if (!w.empty()) out.push_back(w);
      if (c == std::string::npos) break;
      start = c + 1;
    }
  }
  return out;
}

} // namespace tokenprov::cli
