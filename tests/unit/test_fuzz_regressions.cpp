// SPDX-License-Identifier: Apache-2.0
// Inputs that crashed or hung a parser, found while fuzzing it (tests/fuzz/,
// docs/fuzzing.md), fed to it again after the fix. Each file is also a seed in
// tests/fuzz/corpus/<target>/ (named regress-*), so the fuzzers keep
// exercising it; keep both when minimizing a corpus.
#include "tokenprov/error.hpp"
#include "tokenprov/pkcs12.hpp"
#include "tokenprov/profile.hpp"
#include "tokenprov/secret.hpp"

#include "support/testutil.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

using namespace tokenprov;
using Catch::Matchers::Contains;

namespace {

std::vector<std::uint8_t> corpus_file(const std::string& target, const std::string& name) {
  return test::read_bytes(std::string(TOKENPROV_SOURCE_DIR) + "/tests/fuzz/corpus/" + target + "/" + name);
}

// pkcs12::parse with the seed password must throw Error(BadInput) naming the
// file, its message containing NEEDLE.
void require_bad_input(const std::string& name, bool require_key, const std::string& needle) {
  INFO(name);
  auto der = corpus_file("pkcs12", name);
  Secret pw(std::string("fuzz"));
  try {
    (void)pkcs12::parse(der, pw, name, require_key);
    FAIL("pkcs12::parse accepted the file");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::BadInput);
    CHECK_THAT(e.what(), Contains(name));
    CHECK_THAT(e.what(), Contains(needle));
  }
}

} // namespace

// A friendlyName attribute whose value is a BOOLEAN, not a BMPString: the
// reader took the ASN1_TYPE's union as an ASN1_STRING and dereferenced
// 0xff (SEGV in ASN1_STRING_get0_data). A name of another type is now
// ignored, as a localKeyID of another type always was.
TEST_CASE("fuzz regression: PKCS#12 friendlyName that is not a string", "[unit]") {
  const std::string name = "regress-friendlyname-boolean.p12";
  auto der = corpus_file("pkcs12", name);
  Secret pw(std::string("fuzz"));
  pkcs12::Contents c;
  REQUIRE_NOTHROW(c = pkcs12::parse(der, pw, name, false));
  CHECK(c.leaf != nullptr);
  CHECK(c.friendly_name.empty());
  CHECK_FALSE(c.key);

  require_bad_input(name, true, "no private key");
}

// Iteration counts of 2^31-1 (MAC) or 8,388,607 (key bag, certificate safe)
// kept parse() in the KDF for hours / many seconds: a hang of `restore` on a
// hostile file. Refused now before any KDF runs, quickly.
TEST_CASE("fuzz regression: PKCS#12 with absurd KDF iteration counts", "[unit]") {
  for (const char* name : {"regress-mac-iterations.p12", "regress-key-iterations.p12", "regress-safe-iterations.p12",
                           "regress-safe-iterations-macfail.p12"}) {
    auto start = std::chrono::steady_clock::now();
    require_bad_input(name, false, "iterations");
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  }
}

// A table name 40,000 levels deep ("[a.a.a...]", 80 KB) overflowed the stack
// inside toml++ (ASan: stack-overflow in libtomlplusplus; a plain build
// crashes from about 35,000 levels). Profiles are capped at 32 KiB now,
// which bounds the nesting well below that.
TEST_CASE("fuzz regression: profile nested deeper than the stack", "[unit]") {
  const std::string name = "regress-deep-table-name.toml";
  auto bytes = corpus_file("profile", name);
  const std::string text(bytes.begin(), bytes.end());
  try {
    (void)parse_profile(text, name);
    FAIL("parse_profile accepted the file");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::BadInput);
    CHECK_THAT(e.what(), Contains(name));
    CHECK_THAT(e.what(), Contains("at most 32768"));
  }

  // The cap leaves room: a real profile padded with comments to 32 KiB reads.
  std::string padded = "[[keys]]\nrole = \"auth\"\nalgorithm = \"ec-p256\"\n";
  while (padded.size() + 80 <= 32 * 1024)
    padded += "# " + std::string(76, 'x') + "\n";
  CHECK(padded.size() <= 32 * 1024);
  Profile p;
  REQUIRE_NOTHROW(p = parse_profile(padded, "padded.toml"));
  CHECK(p.keys.size() == 1);
  // As deep as the cap allows still ends in an Error or a profile, not a crash.
  std::string deep = "[a";
  while (deep.size() + 2 < 32 * 1024 - 16)
    deep += ".a";
  deep += "]\nx = 1\n";
  CHECK_THROWS_AS(parse_profile(deep, "deep.toml"), Error);
}
