// SPDX-License-Identifier: Apache-2.0
// The benchmark's card-latency shim (tests/latencyp11) in front of SoftHSM2:
// the same operations through it and without it give the same results (the
// objects, their attributes, signatures that verify), its counters count the
// calls at the module boundary, and a profile it cannot read is refused. No
// timed assertion: the waits are the bench's business.
#include "support/softhsm_fixture.hpp"

#include "tokenprov/keys.hpp"
#include "tokenprov/ossl.hpp"
#include "tokenprov/p11/module.hpp"
#include "tokenprov/token.hpp"

#include <catch2/catch.hpp>

#include <openssl/evp.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#ifndef LATENCYP11_PATH
#error "LATENCYP11_PATH (the built liblatencyp11.so) must be defined by the build"
#endif

using namespace tokenprov;
using namespace tokenprov::test;

namespace {

constexpr const char* kShim = LATENCYP11_PATH;

// Sets LATENCYP11_* for the shim's next C_Initialize; unset again at the end of the scope.
class LatencyEnv {
public:
  explicit LatencyEnv(const std::map<std::string, std::string>& vars) {
    clear();
    for (const auto& [k, v] : vars) ::setenv(k.c_str(), v.c_str(), 1);
  }
  ~LatencyEnv() { clear(); }
  LatencyEnv(const LatencyEnv&) = delete;
  LatencyEnv& operator=(const LatencyEnv&) = delete;

private:
  static void clear() {
    for (const char* v : {"LATENCYP11_PROFILE", "LATENCYP11_COUNT_FILE", "LATENCYP11_SCALE", "LATENCYP11_MODULE"})
      ::unsetenv(v);
  }
};

std::map<std::string, unsigned long> read_counts(const std::string& path) {
  std::ifstream in(path);
  std::map<std::string, unsigned long> m;
  std::string k;
  unsigned long v = 0;
  while (in >> k >> v) m[k] = v;
  return m;
}

std::string hex(const p11::Bytes& b) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (auto c : b) {
    s += d[c >> 4];
    s += d[c & 15];
  }
  return s;
}

bool verifies(EVP_PKEY* pub, const std::vector<std::uint8_t>& msg, const ossl::Bytes& sig) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx && EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, pub) == 1 &&
            EVP_DigestVerify(ctx, sig.data(), sig.size(), msg.data(), msg.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

// What one pass leaves on the token and sees, in a form that does not depend
// on the key material: every object's class, label, id (for the data object,
// its value) and policy attributes, sorted; and whether each signature made on
// the token verified with the token's public key.
struct Outcome {
  std::vector<std::string> objects;
  std::vector<bool> signatures_verify;
  bool operator==(const Outcome&) const = default;
};

Outcome exercise(const std::string& module, const std::string& label) {
  Secret pin{std::string(kUserPin)};
  auto ctx = open_token({module, label, TokenState::Initialized, true, &pin});
  auto& s = *ctx.session;
  Outcome o;
  const std::vector<std::uint8_t> msg(1000, 0x5a);
  for (Algorithm a : {Algorithm::EcP256, Algorithm::Rsa2048}) {
    auto k = generate_key(s, a, {"key-" + algorithm_name(a), {}, false, 0});
    auto pub = public_key(s, k);
    auto sig = sign_message(s, k, msg);
    o.signatures_verify.push_back(verifies(pub.get(), msg, sig.value));
  }
  // A 3000-byte data object: the shim's per-byte write cost path.
  std::vector<std::uint8_t> value(3000);
  for (std::size_t i = 0; i < value.size(); ++i) value[i] = static_cast<std::uint8_t>(i * 7);
  p11::Attributes data;
  data.add_class(CKO_DATA).add_bool(CKA_TOKEN, true).add_bool(CKA_PRIVATE, false);
  data.add_string(CKA_LABEL, "blob").add_bytes(CKA_VALUE, value);
  s.create(data, "the data object");

  p11::Attributes all;
  for (CK_OBJECT_HANDLE h : s.find(all)) {
    std::ostringstream line;
    auto cls = s.attr_ulong(h, CKA_CLASS);
    line << "class=" << (cls ? *cls : ~0UL) << " label=" << s.attr_string(h, CKA_LABEL);
    if (cls && *cls == CKO_DATA) {
      auto v = s.attr_bytes(h, CKA_VALUE);
      line << " value=" << (v ? hex(*v) : "-");
    } else {
      auto kt = s.attr_ulong(h, CKA_KEY_TYPE);
      line << " key_type=" << (kt ? *kt : ~0UL);
      auto id = s.attr_bytes(h, CKA_ID);
      line << " id_len=" << (id ? id->size() : 0);
      auto bools = s.attr_bools(h, {CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, CKA_EXTRACTABLE, CKA_SIGN, CKA_VERIFY,
                                    CKA_DECRYPT, CKA_ENCRYPT, CKA_DERIVE, CKA_WRAP, CKA_UNWRAP, CKA_MODIFIABLE});
      for (auto& b : bools) line << ' ' << (b ? (*b ? '1' : '0') : '-');
    }
    o.objects.push_back(line.str());
  }
  std::sort(o.objects.begin(), o.objects.end());
  return o;
}

} // namespace

TEST_CASE("latencyp11 gives the same objects, attributes and signatures as the module itself",
          "[softhsm][latency]") {
  SoftHsm hsm;
  hsm.create_token("direct");
  hsm.create_token("modelled");
  std::string profile = hsm.write_file("test.profile",
                                       "# a small model: every path of the shim, short waits\n"
                                       "seed = 7\njitter = 0.5\ndefault = 50us\n"
                                       "C_Login = 200us\n"
                                       "C_GenerateKeyPair/CKM_EC_KEY_PAIR_GEN = 300us\n"
                                       "C_GenerateKeyPair/0x0 = 400us\n"
                                       "C_Sign/CKM_ECDSA = 100us\n"
                                       "C_CreateObject.per_byte = 0.1us\n"
                                       "C_GetSlotList.per_item = 10us\n"
                                       "C_FindObjects.per_item = 10us\n");
  std::string count_file = hsm.dir() + "/count-%p";
  Outcome direct = exercise(kSoftHsmModule, "direct");
  Outcome modelled;
  {
    LatencyEnv env({{"LATENCYP11_PROFILE", profile}, {"LATENCYP11_COUNT_FILE", count_file}});
    modelled = exercise(kShim, "modelled");
  } // the last session closed: C_Finalize wrote the counters
  CHECK(direct.signatures_verify == std::vector<bool>{true, true});
  CHECK(modelled.objects.size() == 5); // two key pairs and the data object
  CHECK(modelled == direct);

  auto counts = read_counts(hsm.dir() + "/count-" + std::to_string(::getpid()));
  CHECK(counts["C_Initialize"] == 1);
  CHECK(counts["C_Finalize"] == 1);
  CHECK(counts["C_GenerateKeyPair"] == 2);
  CHECK(counts["C_Sign"] >= 2);
  CHECK(counts["C_CreateObject"] == 1);
  CHECK(counts["logins_user"] == 1);
  CHECK(counts["logins_so"] == 0);
  CHECK(counts["modelled_us"] > 0);
  unsigned long sum = 0;
  for (auto& [k, v] : counts)
    if (k.rfind("C_", 0) == 0) sum += v;
  CHECK(sum == counts["calls"]);

  // What the shim left on the token is there for the module itself too.
  Secret pin{std::string(kUserPin)};
  auto ctx = open_token({kSoftHsmModule, "modelled", TokenState::Initialized, false, &pin});
  CHECK(find_key(*ctx.session, "key-ec-p256").id.size() > 0);
}

TEST_CASE("latencyp11 refuses a profile it cannot parse at C_Initialize", "[softhsm][latency]") {
  SoftHsm hsm;
  hsm.create_token("t");
  auto bad = GENERATE(as<std::string>{}, "C_Nope = 1ms\n", "C_Login = fast\n", "jitter = 2\n",
                      "C_Sign/CKM_UNHEARD_OF = 1ms\n", "C_Sign.per_kilo = 1ms\n", "no equals sign\n");
  std::string profile = hsm.write_file("bad.profile", bad);
  LatencyEnv env({{"LATENCYP11_PROFILE", profile}});
  try {
    auto m = p11::Module::load(kShim);
    FAIL("the shim initialized with the profile: " << bad);
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::Token);
    CHECK_THAT(e.what(), Catch::Contains("C_Initialize") && Catch::Contains("CKR_GENERAL_ERROR"));
  }
}
