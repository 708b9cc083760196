// SPDX-License-Identifier: Apache-2.0
// The PKCS#11 layer against real SoftHSM2 tokens.
#include "support/softhsm_fixture.hpp"

#include "tokenprov/inventory.hpp"
#include "tokenprov/p11/module.hpp"
#include "tokenprov/token.hpp"

#include <catch2/catch.hpp>

#include <dlfcn.h>

using namespace tokenprov;
using namespace tokenprov::test;

TEST_CASE("a SoftHSM token made by softhsm2-util is found by label and serial", "[softhsm]") {
  SoftHsm hsm;
  auto serial = hsm.create_token("alpha");
  hsm.create_token("beta");
  auto m = p11::Module::load(kSoftHsmModule);
  CHECK(m->owns_initialize());
  auto t = find_token(*m, "alpha");
  CHECK(t.serial == serial);
  CHECK(t.initialized());
  CHECK(find_token(*m, "serial:" + serial).label == "alpha");
  CHECK(find_token(*m, "pkcs11:token=beta").label == "beta");
  try {
    find_token(*m, "nope");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::Token);
    CHECK(std::string(e.what()).find("nope") != std::string::npos);
  }
  // Two initialized tokens: an empty selector is ambiguous.
  CHECK_THROWS_AS(find_token(*m, "", TokenState::Initialized), Error);
  // The free slot SoftHSM keeps is the blank token.
  CHECK_FALSE(find_token(*m, "", TokenState::Blank).initialized());
}

TEST_CASE("a missing module or a file that is not a module gives exit 6 naming the path", "[softhsm]") {
  try {
    p11::Module::load("/nonexistent/libnothing.so");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::Token);
    CHECK(std::string(e.what()).find("/nonexistent/libnothing.so") != std::string::npos);
  }
  try {
    p11::Module::load("/usr/lib/x86_64-linux-gnu/libz.so.1");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::Token);
    CHECK(std::string(e.what()).find("C_GetFunctionList") != std::string::npos);
  }
}

TEST_CASE("a wrong PIN is reported once, with the token's flags, and never retried", "[softhsm]") {
  SoftHsm hsm;
  hsm.create_token("pins");
  auto m = p11::Module::load(kSoftHsmModule);
  auto t = find_token(*m, "pins");
  p11::Session s(m, t.slot_id, false);
  try {
    s.login(CKU_USER, Secret(std::string("000000")));
    FAIL("no error");
  } catch (const p11::P11Error& e) {
    CHECK(e.rv() == CKR_PIN_INCORRECT);
    CHECK(e.code() == ExitCode::Pin);
    CHECK(std::string(e.what()).find("incorrect") != std::string::npos);
    CHECK(std::string(e.what()).find("token reports") != std::string::npos);
  }
  CHECK_FALSE(s.logged_in());
  s.login(CKU_USER, Secret(std::string(kUserPin)));
  CHECK(s.logged_in());
}

TEST_CASE("modules are shared per process and finalized by their last user", "[softhsm]") {
  SoftHsm hsm;
  hsm.create_token("shared");
  std::weak_ptr<p11::Module> weak;
  {
    auto a = p11::Module::load(kSoftHsmModule);
    auto b = p11::Module::load(kSoftHsmModule);
    CHECK(a.get() == b.get());
    weak = a;
    auto t = find_token(*a, "shared");
    p11::Session s(a, t.slot_id, false);
    a.reset();
    b.reset();
    // The session keeps the module alive: it still works.
    CHECK_FALSE(weak.expired());
    CHECK(s.token_info().label == "shared");
  }
  CHECK(weak.expired());
  // After C_Finalize the module can be loaded and initialized again.
  auto c = p11::Module::load(kSoftHsmModule);
  CHECK(c->owns_initialize());
  CHECK(find_token(*c, "shared").label == "shared");
}

TEST_CASE("a module someone else initialized is used and never finalized by us", "[softhsm]") {
  SoftHsm hsm;
  hsm.create_token("foreign");
  // Play the part of libp11: initialize the module through its own function list first.
  void* h = ::dlopen(kSoftHsmModule, RTLD_NOW | RTLD_LOCAL);
  REQUIRE(h);
  auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(h, "C_GetFunctionList"));
  CK_FUNCTION_LIST* fn = nullptr;
  REQUIRE(get(&fn) == CKR_OK);
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  REQUIRE(fn->C_Initialize(&args) == CKR_OK);
  {
    auto m = p11::Module::load(kSoftHsmModule);
    CHECK_FALSE(m->owns_initialize());
    CHECK(find_token(*m, "foreign").label == "foreign");
  }
  // Our Module is gone; the other owner's use still works, so we did not finalize.
  CK_ULONG n = 0;
  CHECK(fn->C_GetSlotList(CK_TRUE, nullptr, &n) == CKR_OK);
  CHECK(n >= 1);
  CHECK(fn->C_Finalize(nullptr) == CKR_OK);
  ::dlclose(h);
}
