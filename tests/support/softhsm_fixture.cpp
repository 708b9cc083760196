// SPDX-License-Identifier: Apache-2.0
#include "support/softhsm_fixture.hpp"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <sys/stat.h>
#include <sys/wait.h>

namespace fs = std::filesystem;

namespace tokenprov::test {

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out.push_back(c);
  }
  return out + "'";
}

int run(const std::string& cmd, std::string* out) {
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("popen failed for: " + cmd);
  std::array<char, 4096> buf{};
  std::string text;
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) text.append(buf.data(), n);
  int st = ::pclose(p);
  if (out) *out = text;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

SoftHsm::SoftHsm() {
  std::string tmpl = (fs::temp_directory_path() / "tokenprov-test-XXXXXX").string();
  if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  token_dir_ = dir_ + "/tokens";
  fs::create_directories(token_dir_);
  conf_ = dir_ + "/softhsm2.conf";
  std::ifstream in(std::string(TOKENPROV_SOURCE_DIR) + "/softhsm-config/softhsm2.conf.in");
  if (!in) throw std::runtime_error("cannot read softhsm-config/softhsm2.conf.in");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = std::regex_replace(ss.str(), std::regex("@TOKENDIR@"), token_dir_);
  std::ofstream(conf_) << text;
  if (const char* old = std::getenv("SOFTHSM2_CONF")) {
    had_old_conf_ = true;
    old_conf_ = old;
  }
  ::setenv("SOFTHSM2_CONF", conf_.c_str(), 1);
}

SoftHsm::~SoftHsm() {
  if (had_old_conf_) ::setenv("SOFTHSM2_CONF", old_conf_.c_str(), 1);
  else ::unsetenv("SOFTHSM2_CONF");
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

std::string SoftHsm::create_token(const std::string& label, const std::string& so_pin, const std::string& pin) {
  std::string out;
  std::string cmd = "SOFTHSM2_CONF=" + shell_quote(conf_) + " softhsm2-util --init-token --free --label " +
                    shell_quote(label) + " --so-pin " + shell_quote(so_pin) + " --pin " + shell_quote(pin) + " 2>&1";
  if (run(cmd, &out) != 0) throw std::runtime_error("softhsm2-util failed: " + out);
  // Find the serial of the token with that label.
  std::string slots;
  run("SOFTHSM2_CONF=" + shell_quote(conf_) + " softhsm2-util --show-slots 2>&1", &slots);
  std::istringstream is(slots);
  std::string line, serial, last_serial;
  bool in_token = false;
  while (std::getline(is, line)) {
    auto trim = [](std::string s) {
      s.erase(0, s.find_first_not_of(" \t"));
      s.erase(s.find_last_not_of(" \t\r") + 1);
      return s;
    };
    std::string t = trim(line);
    if (t.rfind("Serial number:", 0) == 0) last_serial = trim(t.substr(14));
    if (t.rfind("Label:", 0) == 0 && trim(t.substr(6)) == label) {
      in_token = true;
      serial = last_serial;
    }
  }
  if (!in_token || serial.empty()) throw std::runtime_error("created token not found: " + slots);
  return serial;
}

std::string SoftHsm::write_file(const std::string& name, const std::string& text) const {
  std::string p = dir_ + "/" + name;
  std::ofstream(p) << text;
  ::chmod(p.c_str(), 0600);
  return p;
}

} // namespace tokenprov::test
