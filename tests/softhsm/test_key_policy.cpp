// SPDX-License-Identifier: Apache-2.0
// Every policy attribute of a generated key, read back one by one from
// SoftHSM2 (whose defaults, left alone, give EC private keys decrypt,
// unwrap, sign-recover and derive): the expected values are written out
// here by hand, not taken from the template builder.
#include "support/softhsm_fixture.hpp"

#include "tokenprov/key_policy.hpp"
#include "tokenprov/keys.hpp"
#include "tokenprov/token.hpp"

#include <catch2/catch.hpp>

#include <map>

using namespace tokenprov;
using namespace tokenprov::test;

namespace {
struct Case {
  const char* alg;
  unsigned usage;
  bool exportable;
  // private: sign decrypt unwrap derive; public: verify encrypt wrap derive
  bool sign, decrypt, unwrap, derive;
};

void check_half(const p11::Session& s, CK_OBJECT_HANDLE h, const std::map<CK_ATTRIBUTE_TYPE, bool>& want,
                const std::string& what) {
  for (const auto& [a, v] : want) {
    INFO(what << " " << attribute_name(a));
    CHECK(s.attr_bool(h, a) == v);
  }
}
} // namespace

TEST_CASE("every policy attribute is set for every key type and usage", "[softhsm]") {
  auto c = GENERATE(values<Case>({{"rsa2048", 0, false, true, true, false, false},
                                  {"rsa2048", UsageSign | UsageUnwrap, true, true, false, true, false},
                                  {"ec-p256", 0, false, true, false, false, false},
                                  {"ec-p256", UsageSign | UsageDerive, true, true, false, false, true},
                                  {"ec-p384", UsageDerive, false, false, false, false, true},
                                  {"ed25519", 0, true, true, false, false, false}}));
  SoftHsm hsm;
  hsm.create_token("kp");
  Secret pin{std::string(kUserPin)};
  auto ctx = open_token({kSoftHsmModule, "kp", TokenState::Initialized, true, &pin});
  auto& s = *ctx.session;
  auto k = generate_key(s, parse_algorithm(c.alg), KeyPolicy{"k", {}, c.exportable, c.usage});
  std::string what = std::string(c.alg) + " usage " + std::to_string(c.usage);
  check_half(s, k.priv,
             {{CKA_TOKEN, true}, {CKA_PRIVATE, true}, {CKA_SENSITIVE, true}, {CKA_EXTRACTABLE, c.exportable},
              {CKA_MODIFIABLE, true}, {CKA_SIGN, c.sign}, {CKA_SIGN_RECOVER, false}, {CKA_DECRYPT, c.decrypt},
              {CKA_UNWRAP, c.unwrap}, {CKA_DERIVE, c.derive}},
             what + " private");
  check_half(s, k.pub,
             {{CKA_TOKEN, true}, {CKA_PRIVATE, false}, {CKA_MODIFIABLE, true}, {CKA_VERIFY, c.sign},
              {CKA_VERIFY_RECOVER, false}, {CKA_ENCRYPT, c.decrypt}, {CKA_WRAP, c.unwrap}, {CKA_DERIVE, c.derive}},
             what + " public");
}

TEST_CASE("attr_bools reads several attributes in one call, absent ones as nullopt", "[softhsm]") {
  SoftHsm hsm;
  hsm.create_token("kp");
  Secret pin{std::string(kUserPin)};
  auto ctx = open_token({kSoftHsmModule, "kp", TokenState::Initialized, true, &pin});
  auto& s = *ctx.session;
  auto k = generate_key(s, Algorithm::EcP256, KeyPolicy{"k", {}, false, 0});
  // CKA_MODULUS_BITS is no attribute of an EC key: the token answers
  // CKR_ATTRIBUTE_TYPE_INVALID and still fills the others.
  auto v = s.attr_bools(k.priv, {CKA_SIGN, 0x121 /* CKA_MODULUS_BITS */, CKA_DECRYPT});
  REQUIRE(v.size() == 3);
  CHECK(v[0] == true);
  CHECK(!v[1]);
  CHECK(v[2] == false);
}
