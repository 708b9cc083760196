// SPDX-License-Identifier: Apache-2.0
// Where token profiles are found: the search path, the names found there,
// and loading one by name or path.
#include "tokenprov/profile.hpp"

#include "tokenprov/error.hpp"
#include "tokenprov/fileio.hpp"

#include "profile_detail.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>

namespace tokenprov {

namespace fs = std::filesystem;
using profile_detail::join;

std::vector<std::string> profile_search_dirs() {
  std::vector<std::string> dirs;
  auto add = [&](std::string d) {
    if (!d.empty() && std::find(dirs.begin(), dirs.end(), d) == dirs.end()) dirs.push_back(std::move(d));
  };
  if (const char* env = std::getenv("TOKENPROV_PROFILE_DIR")) add(env);
  // An installed binary moved with its prefix (or installed with
  // `cmake --install --prefix` elsewhere than the configured prefix) finds the
  // profiles beside it: PREFIX/bin/tokenprov -> PREFIX/share/tokenprov/tokens.
  {
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec && exe.parent_path().filename() == "bin") {
      fs::path beside = exe.parent_path().parent_path() / "share" / "tokenprov" / "tokens";
      if (fs::is_directory(beside, ec)) add(beside.string());
    }
  }
#ifdef TOKENPROV_DATA_DIR
  add(std::string(TOKENPROV_DATA_DIR) + "/tokens");
#endif
#ifdef TOKENPROV_SOURCE_DIR
  add(std::string(TOKENPROV_SOURCE_DIR) + "/tokens");
#endif
  return dirs;
}

std::vector<std::string> list_profiles() {
  std::set<std::string> names;
  for (const auto& dir : profile_search_dirs()) {
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const auto& path = it->path();
      if (path.extension() == ".toml") names.insert(path.stem().string());
    }
  }
  return {names.begin(), names.end()};
}

Profile load_profile(const std::string& name_or_path) {
  if (name_or_path.empty()) fail(ExitCode::BadInput, "No profile was given.", "Pass --profile NAME or --profile PATH.");

  std::string path;
  bool is_path = name_or_path.find('/') != std::string::npos ||
                 (name_or_path.size() >= 5 && name_or_path.compare(name_or_path.size() - 5, 5, ".toml") == 0);
  if (is_path) {
    path = name_or_path;
    std::error_code ec;
    if (!fs::exists(path, ec))
      fail(ExitCode::BadInput, "The profile file " + path + " does not exist.",
           "Check the path, or give a profile name such as softhsm-demo.");
  } else {
    auto dirs = profile_search_dirs();
    for (const auto& dir : dirs) {
      std::string candidate = dir + "/" + name_or_path + ".toml";
      std::error_code ec;
      if (fs::exists(candidate, ec)) {
        path = candidate;
        break;
      }
    }
    if (path.empty()) {
      std::string looked = dirs.empty() ? std::string("nowhere (no profile directory is configured)") : join(dirs);
      auto available = list_profiles();
      fail(ExitCode::BadInput,
           "The profile '" + name_or_path + "' was not found: looked for " + name_or_path + ".toml in " + looked + ".",
           available.empty() ? "Give the path to a profile file, or set TOKENPROV_PROFILE_DIR."
                             : "Known profiles: " + join(available) + ". Or give the path to a profile file.");
    }
  }

  auto data = read_input_file(path, input::profile);
  return parse_profile(std::string(data.begin(), data.end()), path);
}

} // namespace tokenprov
