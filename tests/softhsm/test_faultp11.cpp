// SPDX-License-Identifier: Apache-2.0
// The fault-injecting PKCS#11 shim (tests/faultp11) loaded through tokenprov's
// own module layer, in front of SoftHSM2: it forwards faithfully, fails the
// call it is told to fail without forwarding it, and counts the calls.
#include "support/softhsm_fixture.hpp"

#include "tokenprov/keys.hpp"
#include "tokenprov/p11/module.hpp"
#include "tokenprov/token.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#ifndef FAULTP11_PATH
#error "FAULTP11_PATH (the built libfaultp11.so) must be defined by the build"
#endif

using namespace tokenprov;
using namespace tokenprov::test;

namespace {

constexpr const char* kShim = FAULTP11_PATH;

const char* const kFaultVars[] = {"FAULTP11_FAIL_AT", "FAULTP11_FAIL_FUNC", "FAULTP11_RV",    "FAULTP11_STICKY",
                                  "FAULTP11_COUNT_FILE", "FAULTP11_LOG",  "FAULTP11_SCOPE", "FAULTP11_MODULE"};

// Sets FAULTP11_* variables for the shim's next C_Initialize; all of them are
// unset again when it goes out of scope.
class FaultEnv {
public:
  FaultEnv() { clear(); }
  explicit FaultEnv(const std::map<std::string, std::string>& vars) {
    clear();
    for (const auto& [k, v] : vars) ::setenv(k.c_str(), v.c_str(), 1);
  }
  ~FaultEnv() { clear(); }
  FaultEnv(const FaultEnv&) = delete;
  FaultEnv& operator=(const FaultEnv&) = delete;

private:
  static void clear() {
    for (const char* v : kFaultVars) ::unsetenv(v);
  }
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct LogLine {
  unsigned long n = 0;
  std::string fn, rv;
  bool injected = false;
};

std::vector<LogLine> read_log(const std::string& path) {
  std::vector<LogLine> out;
  std::istringstream is(slurp(path));
  std::string line;
  while (std::getline(is, line)) {
    std::istringstream ls(line);
    LogLine l;
    std::string mark;
    ls >> l.n >> l.fn >> l.rv >> mark;
    l.injected = mark == "injected";
    out.push_back(l);
  }
  return out;
}

unsigned long read_count(const std::string& path) {
  std::string s = slurp(path);
  REQUIRE_FALSE(s.empty());
  return std::stoul(s);
}

// Every object on the token, read through SoftHSM2 directly (not the shim).
std::size_t objects_on_token(const std::string& label) {
  Secret pin{std::string(kUserPin)};
  auto ctx = open_token({kSoftHsmModule, label, TokenState::Initialized, false, &pin});
  p11::Attributes all;
  return ctx.session->find(all).size();
}

} // namespace

TEST_CASE("faultp11 without FAULTP11_* variables forwards every call faithfully", "[softhsm][fault]") {
  SoftHsm hsm;
  auto serial = hsm.create_token("plain");
  FaultEnv env;
  Secret pin{std::string(kUserPin)};
  p11::Bytes id;
  {
    auto m = p11::Module::load(kShim);
    CHECK(m->owns_initialize());
    CHECK(m->manufacturer() == "SoftHSM");
    auto t = find_token(*m, "plain");
    CHECK(t.serial == serial);
    CHECK(find_token(*m, "", TokenState::Blank).initialized() == false);

    auto ctx = open_token({kShim, "plain", TokenState::Initialized, true, &pin});
    auto k = generate_key(*ctx.session, Algorithm::EcP256, {"through-shim", {}, false, 0});
    id = k.id;
    auto pub = public_key(*ctx.session, k);
    const std::uint8_t msg[] = {'h', 'i'};
    auto sig = sign_message(*ctx.session, k, msg);
    CHECK_FALSE(sig.value.empty());
    CHECK(find_key(*ctx.session, "through-shim").id == id);
  }
  // The key is really on the token.
  Secret pin2{std::string(kUserPin)};
  auto ctx = open_token({kSoftHsmModule, "plain", TokenState::Initialized, false, &pin2});
  CHECK(find_key(*ctx.session, "through-shim").id == id);
}

TEST_CASE("an injected C_GenerateKeyPair failure is reported with its rv and leaves no object", "[softhsm][fault]") {
  auto [rv_env, rv_name] = GENERATE(values<std::pair<std::string, std::string>>(
      {{"", "CKR_DEVICE_ERROR"}, {"CKR_DEVICE_REMOVED", "CKR_DEVICE_REMOVED"}, {"0x6", "CKR_FUNCTION_FAILED"}}));
  SoftHsm hsm;
  hsm.create_token("faulty");
  std::string count_file = hsm.dir() + "/count", log_file = hsm.dir() + "/log";
  {
    std::map<std::string, std::string> vars = {{"FAULTP11_FAIL_FUNC", "C_GenerateKeyPair"},
                                               {"FAULTP11_COUNT_FILE", count_file},
                                               {"FAULTP11_LOG", log_file}};
    if (!rv_env.empty()) vars["FAULTP11_RV"] = rv_env;
    FaultEnv env(vars);
    Secret pin{std::string(kUserPin)};
    auto ctx = open_token({kShim, "faulty", TokenState::Initialized, true, &pin});
    try {
      generate_key(*ctx.session, Algorithm::EcP256, {"doomed", {}, false, 0});
      FAIL("the key pair was generated despite the fault");
    } catch (const p11::P11Error& e) {
      CHECK(e.function() == "C_GenerateKeyPair");
      CHECK(std::string(e.what()).find(rv_name) != std::string::npos);
      CHECK(e.code() == ExitCode::Token);
    }
    // Not sticky: the session still works.
    CHECK(ctx.session->random(8).size() == 8);
  } // sessions closed, C_Finalize: the count file is written

  auto log = read_log(log_file);
  REQUIRE(log.size() >= 4);
  CHECK(read_count(count_file) == log.size());
  CHECK(log.front().fn == "C_Initialize");
  CHECK(log.back().fn == "C_Finalize");
  CHECK(log.back().rv == "CKR_OK");
  int injected = 0;
  for (std::size_t i = 0; i < log.size(); ++i) {
    CHECK(log[i].n == i + 1);
    if (log[i].injected) {
      ++injected;
      CHECK(log[i].fn == "C_GenerateKeyPair");
      CHECK(log[i].rv == rv_name);
    } else {
      CHECK(log[i].rv == "CKR_OK");
    }
  }
  CHECK(injected == 1);
  // Read through the real module: the failed call never reached the token.
  CHECK(objects_on_token("faulty") == 0);
}

// tpm2-pkcs11 answers CKR_GENERAL_ERROR to a template that denies a usage its TPM key has anyway;
// keygen then asks for the granted usages only and sets the denied ones false afterwards.
TEST_CASE("a key generation answered CKR_GENERAL_ERROR is made with the granted usages, then the full policy",
          "[softhsm][fault]") {
  SoftHsm hsm;
  hsm.create_token("tpmlike");
  std::string log_file = hsm.dir() + "/log";
  {
    FaultEnv env({{"FAULTP11_FAIL_FUNC", "C_GenerateKeyPair"}, {"FAULTP11_RV", "CKR_GENERAL_ERROR"},
                  {"FAULTP11_LOG", log_file}});
    Secret pin{std::string(kUserPin)};
    auto ctx = open_token({kShim, "tpmlike", TokenState::Initialized, true, &pin});
    auto k = generate_key(*ctx.session, Algorithm::EcP256, {"granted", {}, false, 0});
    auto& s = *ctx.session;
    CHECK(s.attr_bool(k.priv, CKA_SIGN) == true);
    // SoftHSM2 gives an EC key decrypt and unwrap unless told otherwise: set false after generation.
    CHECK(s.attr_bool(k.priv, CKA_DECRYPT) == false);
    CHECK(s.attr_bool(k.priv, CKA_UNWRAP) == false);
    CHECK(s.attr_bool(k.priv, CKA_DERIVE) == false);
    CHECK(s.attr_bool(k.pub, CKA_ENCRYPT) == false);
    CHECK(s.attr_bool(k.priv, CKA_EXTRACTABLE) == false);
    CHECK(s.attr_bool(k.priv, CKA_NEVER_EXTRACTABLE) == true);
  }
  int generations = 0;
  for (auto& l : read_log(log_file))
    if (l.fn == "C_GenerateKeyPair") ++generations;
  CHECK(generations == 2);
  CHECK(objects_on_token("tpmlike") == 2);
}

TEST_CASE("a sticky fault fails every later call but lets the cleanup through", "[softhsm][fault]") {
  SoftHsm hsm;
  hsm.create_token("pulled");
  std::string log_file = hsm.dir() + "/log";
  {
    FaultEnv env({{"FAULTP11_FAIL_FUNC", "C_GenerateKeyPair"},
                  {"FAULTP11_RV", "CKR_TOKEN_NOT_PRESENT"},
                  {"FAULTP11_STICKY", "1"},
                  {"FAULTP11_LOG", log_file}});
    Secret pin{std::string(kUserPin)};
    auto ctx = open_token({kShim, "pulled", TokenState::Initialized, true, &pin});
    CHECK_THROWS_WITH(generate_key(*ctx.session, Algorithm::EcP256, {"k", {}, false, 0}),
                      Catch::Contains("CKR_TOKEN_NOT_PRESENT"));
    CHECK_THROWS_WITH(ctx.session->random(8), Catch::Contains("CKR_TOKEN_NOT_PRESENT"));
    CHECK_THROWS_AS(ctx.module->slots(), p11::P11Error);
  }
  auto log = read_log(log_file);
  bool after = false;
  std::map<std::string, std::string> cleanup;
  for (const auto& l : log) {
    if (l.fn == "C_GenerateKeyPair") after = true;
    if (!after) {
      CHECK_FALSE(l.injected);
    } else if (l.fn == "C_Logout" || l.fn == "C_CloseSession" || l.fn == "C_Finalize") {
      CHECK_FALSE(l.injected);
      cleanup[l.fn] = l.rv;
    } else {
      CHECK(l.injected);
      CHECK(l.rv == "CKR_TOKEN_NOT_PRESENT");
    }
  }
  // The only session closes without a C_Logout first: closing a token's last
  // session logs it out (p11::Session's destructor).
  CHECK(cleanup.count("C_Logout") == 0);
  CHECK(cleanup["C_CloseSession"] == "CKR_OK");
  CHECK(cleanup["C_Finalize"] == "CKR_OK");
  CHECK(objects_on_token("pulled") == 0);

  // The next C_Initialize reads the (now empty) environment again: the token is back.
  FaultEnv none;
  auto m = p11::Module::load(kShim);
  CHECK(find_token(*m, "pulled").label == "pulled");
}

TEST_CASE("FAULTP11_FAIL_AT fails the Nth call of any function, and the count file gives N's range",
          "[softhsm][fault]") {
  SoftHsm hsm;
  hsm.create_token("sweep");
  // One run of a small job through the shim; returns the error message, empty on success.
  auto job = [] {
    try {
      Secret pin{std::string(kUserPin)};
      auto ctx = open_token({kShim, "sweep", TokenState::Initialized, false, &pin});
      auto keys = private_keys(*ctx.session);
      (void)keys;
      return std::string();
    } catch (const Error& e) {
      return std::string(e.what());
    }
  };
  std::string count_file = hsm.dir() + "/count";
  {
    FaultEnv env({{"FAULTP11_COUNT_FILE", count_file}});
    REQUIRE(job().empty());
  }
  unsigned long total = read_count(count_file);
  REQUIRE(total >= 8);
  // Every call but the last (C_Finalize, whose failure would leave SoftHSM
  // initialized in this process) fails in turn.
  for (unsigned long n = 1; n < total; ++n) {
    INFO("call " << n << " of " << total);
    std::string log_file = hsm.dir() + "/log" + std::to_string(n);
    std::string err;
    {
      FaultEnv env({{"FAULTP11_FAIL_AT", std::to_string(n)}, {"FAULTP11_LOG", log_file}});
      err = job();
    }
    auto log = read_log(log_file);
    REQUIRE(log.size() >= n);
    CHECK(log[n - 1].injected);
    CHECK(log[n - 1].rv == "CKR_DEVICE_ERROR");
    for (std::size_t i = 0; i < log.size(); ++i)
      if (i != n - 1) CHECK_FALSE(log[i].injected);
    // A failure tokenprov cannot shrug off is reported with the rv.
    if (!err.empty()) CHECK(err.find("CKR_DEVICE_ERROR") != std::string::npos);
    if (n == 1) CHECK_FALSE(err.empty()); // C_Initialize
  }
}

TEST_CASE("an unusable FAULTP11_* setting makes C_Initialize fail loudly", "[softhsm][fault]") {
  SoftHsm hsm;
  hsm.create_token("conf");
  FaultEnv env(std::map<std::string, std::string>{{"FAULTP11_RV", "CKR_NO_SUCH_THING"}});
  CHECK_THROWS_WITH(p11::Module::load(kShim), Catch::Contains("CKR_GENERAL_ERROR"));
}
