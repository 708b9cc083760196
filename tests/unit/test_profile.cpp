// SPDX-License-Identifier: Apache-2.0
// Token profiles: the shipped ones load, bad ones are refused with a message
// naming the file and the field.
#include "tokenprov/error.hpp"
#include "tokenprov/profile.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <unistd.h>

using tokenprov::Error;
using tokenprov::ExitCode;
using tokenprov::parse_profile;
using tokenprov::Profile;

namespace fs = std::filesystem;

namespace {

const std::string kTokensDir = std::string(TOKENPROV_SOURCE_DIR) + "/tokens";

// A valid profile to start the bad ones from.
const std::string kGoodHead = R"(
description = "test"
module = "/usr/lib/softhsm/libsofthsm2.so"
)";
const std::string kGoodKey = R"(
[[keys]]
role = "auth"
algorithm = "rsa2048"
usage = ["sign", "decrypt"]
exportable = true
backup = true
)";

// Parses TEXT as tokens/bad.toml, expecting Error(BadInput) whose message
// names the file and contains every string of NEEDLES.
void require_bad(const std::string& text, std::initializer_list<std::string> needles) {
  INFO("profile:\n" << text);
  try {
    (void)parse_profile(text, "tokens/bad.toml");
    FAIL("parse_profile accepted a bad profile");
  } catch (const Error& e) {
    std::string msg = e.what();
    INFO("message: " << msg);
    CHECK(e.code() == ExitCode::BadInput);
    CHECK(msg.find("tokens/bad.toml") != std::string::npos);
    for (const auto& n : needles)
      CHECK(msg.find(n) != std::string::npos);
    CHECK_FALSE(e.hint().empty());
  }
}

// Sets an environment variable for one scope.
class ScopedEnv {
public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
  const char* name_;
  std::optional<std::string> old_;
};

// A temporary directory removed at the end of the scope.
class TempDir {
public:
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "tokenprov-profile-XXXXXX").string();
    if (!::mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  std::string write(const std::string& name, const std::string& text) const {
    auto p = path_ / name;
    std::ofstream(p) << text;
    return p.string();
  }

private:
  fs::path path_;
};

} // namespace

TEST_CASE("every shipped profile in tokens/ loads", "[unit][profile]") {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(kTokensDir)) {
    if (entry.path().extension() != ".toml") continue;
    INFO(entry.path().string());
    Profile by_path;
    REQUIRE_NOTHROW(by_path = tokenprov::load_profile(entry.path().string()));
    CHECK(by_path.name == entry.path().stem().string());
    CHECK(by_path.source_path == entry.path().string());
    CHECK_FALSE(by_path.description.empty());
    CHECK_FALSE(by_path.module.empty());
    CHECK_FALSE(by_path.keys.empty());
    for (const auto& k : by_path.keys) {
      CHECK(tokenprov::is_known_algorithm(k.algorithm));
      CHECK_FALSE(k.usage.empty());
      if (!by_path.allow_export) CHECK_FALSE(k.exportable);
    }
    names.insert(by_path.name);
  }
  for (const char* required : {"softhsm", "softhsm-demo", "opensc", "yubikey-piv", "safenet-etoken",
                               "tpm2-pkcs11", "opencryptoki"}) {
    INFO(required);
    CHECK(names.count(required) == 1);
  }
}

TEST_CASE("shipped profiles say what the contract and the vendors say", "[unit][profile]") {
  SECTION("softhsm-demo: SoftHSM2, one exportable RSA-2048 key for SCEP") {
    auto p = tokenprov::load_profile("softhsm-demo");
    CHECK(p.name == "softhsm-demo");
    CHECK(p.module == "/usr/lib/softhsm/libsofthsm2.so");
    CHECK(p.allow_export);
    REQUIRE(p.keys.size() == 1);
    CHECK(p.keys[0].algorithm == "rsa2048");
    CHECK(p.keys[0].exportable);
    CHECK(p.keys[0].backup);
    CHECK(p.keys[0].usage == std::vector<std::string>{"sign", "decrypt"});
  }
  SECTION("softhsm: tests and demo") {
    auto p = tokenprov::load_profile("softhsm");
    CHECK(p.module == "/usr/lib/softhsm/libsofthsm2.so");
    const auto* auth = p.find_key("auth");
    REQUIRE(auth != nullptr);
    CHECK(auth->algorithm == "rsa2048");
    CHECK(auth->exportable);
    CHECK(auth->backup);
    CHECK(p.find_key("nope") == nullptr);
  }
  SECTION("yubikey-piv: never exportable, PIN 6-8") {
    auto p = tokenprov::load_profile("yubikey-piv");
    CHECK(p.module == "/usr/lib/x86_64-linux-gnu/libykcs11.so");
    CHECK_FALSE(p.allow_export);
    CHECK(p.user_pin.min_length == 6);
    CHECK(p.user_pin.max_length == 8);
    for (const auto& k : p.keys)
      CHECK_FALSE(k.id.empty());
  }
  SECTION("opensc and safenet-etoken: non-exportable keys") {
    auto o = tokenprov::load_profile("opensc");
    CHECK(o.module == "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so");
    auto s = tokenprov::load_profile("safenet-etoken");
    CHECK(s.module == "/usr/lib/libeTPkcs11.so");
    for (const auto* p : {&o, &s})
      for (const auto& k : p->keys)
        CHECK_FALSE(k.exportable);
  }
}

TEST_CASE("profile defaults", "[unit][profile]") {
  auto p = parse_profile("[[keys]]\nrole = \"auth\"\nalgorithm = \"ec-p256\"\n", "/somewhere/minimal.toml");
  CHECK(p.name == "minimal");
  CHECK(p.source_path == "/somewhere/minimal.toml");
  CHECK(p.description.empty());
  CHECK(p.module.empty());
  CHECK(p.token_label_template == "tp-{user}");
  CHECK(p.user_pin.min_length == 4);
  CHECK(p.user_pin.max_length == 64);
  CHECK(p.so_pin.min_length == 4);
  CHECK(p.allow_export);
  CHECK(p.backup_compat == "modern");
  CHECK(p.backup_password_min == 8);
  CHECK(p.scep_url.empty());
  CHECK(p.ca_fingerprint.empty());
  REQUIRE(p.keys.size() == 1);
  CHECK(p.keys[0].usage == std::vector<std::string>{"sign"});
  CHECK_FALSE(p.keys[0].exportable);
  CHECK_FALSE(p.keys[0].backup);
  CHECK(p.keys[0].label_template == "{role}");
  CHECK(p.keys[0].id.empty());

  auto r = parse_profile("[[keys]]\nrole = \"a\"\nalgorithm = \"rsa3072\"\n", "r.toml");
  CHECK(r.keys[0].usage == std::vector<std::string>{"sign", "decrypt"});
}

TEST_CASE("every profile field is read", "[unit][profile]") {
  auto p = parse_profile(R"(
description = "full"
module = "/lib/x.so"
token_label = "{user}-{serial}"
allow_export = true
[pin]
min_length = 6
max_length = 8
[so_pin]
min_length = 8
max_length = 16
[backup]
compat = "legacy"
password_min_length = 12
[scep]
url = "https://ca.example.com/scep"
ca_fingerprint = "AB:CD:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89"
[[keys]]
role = "sign"
algorithm = "ec-p384"
usage = ["sign", "derive"]
label = "{role}-{cn}"
id = "0A"
[[keys]]
role = "edge"
algorithm = "ed25519"
exportable = true
)",
                         "full.toml");
  CHECK(p.description == "full");
  CHECK(p.module == "/lib/x.so");
  CHECK(p.token_label_template == "{user}-{serial}");
  CHECK(p.user_pin.min_length == 6);
  CHECK(p.user_pin.max_length == 8);
  CHECK(p.so_pin.min_length == 8);
  CHECK(p.so_pin.max_length == 16);
  CHECK(p.backup_compat == "legacy");
  CHECK(p.backup_password_min == 12);
  CHECK(p.scep_url == "https://ca.example.com/scep");
  CHECK(p.ca_fingerprint == "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
  REQUIRE(p.keys.size() == 2);
  CHECK(p.keys[0].usage == std::vector<std::string>{"sign", "derive"});
  CHECK(p.keys[0].label_template == "{role}-{cn}");
  CHECK(p.keys[0].id == "0a");
  CHECK(p.keys[1].algorithm == "ed25519");
  CHECK(p.keys[1].exportable);
}

TEST_CASE("bad profiles are BadInput naming the file and the field", "[unit][profile]") {
  SECTION("TOML syntax error") {
    require_bad("module = \"/x.so\nrole = 1\n", {"line 1", "TOML syntax error"});
  }
  SECTION("unknown top-level field") {
    require_bad("modul = \"/x.so\"\n" + kGoodKey, {"unknown top-level field 'modul'"});
  }
  SECTION("unknown key field") {
    require_bad(kGoodHead + kGoodKey + "extractable = true\n", {"keys[1]", "unknown field 'extractable'"});
  }
  SECTION("unknown field in [pin]") {
    require_bad("[pin]\nminimum = 4\n" + kGoodKey, {"[pin]", "'minimum'"});
  }
  SECTION("unknown algorithm") {
    require_bad(kGoodHead + "[[keys]]\nrole = \"auth\"\nalgorithm = \"rsa1024\"\n",
                {"keys[1].algorithm 'rsa1024' is not one of rsa2048, rsa3072, rsa4096, ec-p256, ec-p384, ed25519"});
  }
  SECTION("missing algorithm") {
    require_bad("[[keys]]\nrole = \"auth\"\n", {"keys[1].algorithm is missing"});
  }
  SECTION("missing role") {
    require_bad("[[keys]]\nalgorithm = \"rsa2048\"\n", {"keys[1].role is missing"});
  }
  SECTION("EC key cannot decrypt") {
    require_bad(kGoodHead + "[[keys]]\nrole = \"auth\"\nalgorithm = \"ec-p256\"\nusage = [\"sign\", \"decrypt\"]\n",
                {"keys[1].usage 'decrypt'", "ec-p256"});
  }
  SECTION("Ed25519 key cannot unwrap or derive") {
    require_bad("[[keys]]\nrole = \"a\"\nalgorithm = \"ed25519\"\nusage = [\"unwrap\"]\n", {"keys[1].usage 'unwrap'"});
    require_bad("[[keys]]\nrole = \"a\"\nalgorithm = \"ed25519\"\nusage = [\"derive\"]\n", {"keys[1].usage 'derive'"});
  }
  SECTION("unknown usage") {
    require_bad("[[keys]]\nrole = \"a\"\nalgorithm = \"rsa2048\"\nusage = [\"encrypt\"]\n",
                {"keys[1].usage 'encrypt' is not one of sign, decrypt, unwrap, derive"});
  }
  SECTION("usage given twice, or empty") {
    require_bad("[[keys]]\nrole = \"a\"\nalgorithm = \"rsa2048\"\nusage = [\"sign\", \"sign\"]\n",
                {"keys[1].usage lists 'sign' twice"});
    require_bad("[[keys]]\nrole = \"a\"\nalgorithm = \"rsa2048\"\nusage = []\n", {"keys[1].usage is empty"});
  }
  SECTION("backup without exportable") {
    require_bad(kGoodHead + "[[keys]]\nrole = \"auth\"\nalgorithm = \"rsa2048\"\nexportable = false\nbackup = true\n",
                {"keys[1].backup", "not exportable"});
  }
  SECTION("exportable key in a profile that forbids export") {
    require_bad("allow_export = false\n" + kGoodKey, {"keys[1].exportable", "allow_export = false"});
  }
  SECTION("duplicate role") {
    require_bad(kGoodHead + kGoodKey + kGoodKey, {"keys[2].role 'auth'", "unique"});
  }
  SECTION("duplicate id") {
    require_bad("[[keys]]\nrole = \"a\"\nalgorithm = \"rsa2048\"\nid = \"01\"\n"
                "[[keys]]\nrole = \"b\"\nalgorithm = \"rsa2048\"\nid = \"01\"\n",
                {"keys[2].id '01'"});
  }
  SECTION("bad id") {
    require_bad("[[keys]]\nrole = \"a\"\nalgorithm = \"rsa2048\"\nid = \"xyz\"\n", {"keys[1].id 'xyz'"});
  }
  SECTION("no keys") {
    require_bad(kGoodHead, {"no keys"});
    require_bad(kGoodHead + "keys = []\n", {"no keys"});
    require_bad(kGoodHead + "[keys]\nrole = \"a\"\n", {"keys must be an array of tables"});
  }
  SECTION("bad backup compat") {
    require_bad("[backup]\ncompat = \"ancient\"\n" + kGoodKey,
                {"backup.compat 'ancient' is not one of modern, legacy"});
  }
  SECTION("wrong value types") {
    require_bad("module = 5\n" + kGoodKey, {"module must be a string"});
    require_bad("allow_export = \"no\"\n" + kGoodKey, {"allow_export must be true or false"});
    require_bad("[pin]\nmin_length = \"4\"\n" + kGoodKey, {"pin.min_length must be a whole number"});
    require_bad("[pin]\nmin_length = -1\n" + kGoodKey, {"pin.min_length must not be negative"});
    require_bad("pin = 4\n" + kGoodKey, {"[pin] must be a table"});
    require_bad("[[keys]]\nrole = \"a\"\nalgorithm = \"rsa2048\"\nusage = \"sign\"\n",
                {"keys[1].usage must be an array"});
  }
  SECTION("PIN policy out of order") {
    require_bad("[so_pin]\nmin_length = 8\nmax_length = 6\n" + kGoodKey,
                {"so_pin.max_length (6) is less than min_length (8)"});
    require_bad("[pin]\nmin_length = 0\n" + kGoodKey, {"pin.min_length must be at least 1"});
  }
  SECTION("unknown template placeholders") {
    require_bad("token_label = \"tp-{role}\"\n" + kGoodKey, {"token_label", "{role}"});
    require_bad("[[keys]]\nrole = \"a\"\nalgorithm = \"rsa2048\"\nlabel = \"{role}-{usr}\"\n",
                {"keys[1].label", "{usr}"});
  }
  SECTION("bad SCEP defaults") {
    require_bad("[scep]\nurl = \"ftp://ca\"\n" + kGoodKey, {"scep.url 'ftp://ca'"});
    require_bad("[scep]\nca_fingerprint = \"abcd\"\n" + kGoodKey, {"scep.ca_fingerprint 'abcd'"});
  }
  SECTION("line numbers point at the offending field") {
    require_bad("description = \"x\"\n\n[[keys]]\nrole = \"a\"\nalgorithm = \"dsa\"\n", {"line 5"});
  }
}

TEST_CASE("load_profile finds names and reports missing files", "[unit][profile]") {
  SECTION("a name that exists nowhere") {
    try {
      (void)tokenprov::load_profile("no-such-profile");
      FAIL("load_profile found a profile that does not exist");
    } catch (const Error& e) {
      std::string msg = e.what();
      CHECK(e.code() == ExitCode::BadInput);
      CHECK(msg.find("no-such-profile.toml") != std::string::npos);
      CHECK(msg.find(kTokensDir) != std::string::npos);
      CHECK(std::string(e.hint()).find("softhsm-demo") != std::string::npos);
    }
  }
  SECTION("a path that does not exist") {
    try {
      (void)tokenprov::load_profile("/nonexistent/dir/p.toml");
      FAIL("load_profile read a file that does not exist");
    } catch (const Error& e) {
      CHECK(e.code() == ExitCode::BadInput);
      CHECK(std::string(e.what()).find("/nonexistent/dir/p.toml") != std::string::npos);
    }
  }
  SECTION("an empty name") {
    CHECK_THROWS_AS(tokenprov::load_profile(""), Error);
  }
  SECTION("$TOKENPROV_PROFILE_DIR comes first") {
    TempDir dir;
    dir.write("softhsm-demo.toml", "description = \"override\"\n" + kGoodKey);
    dir.write("mine.toml", kGoodHead + kGoodKey);
    ScopedEnv env("TOKENPROV_PROFILE_DIR", dir.path().string());
    CHECK(tokenprov::profile_search_dirs().front() == dir.path().string());
    CHECK(tokenprov::load_profile("softhsm-demo").description == "override");
    auto mine = tokenprov::load_profile("mine");
    CHECK(mine.name == "mine");
    CHECK(mine.source_path == (dir.path() / "mine.toml").string());
    auto names = tokenprov::list_profiles();
    CHECK(std::find(names.begin(), names.end(), "mine") != names.end());
    CHECK(std::find(names.begin(), names.end(), "yubikey-piv") != names.end());
  }
  SECTION("a bad file found by path names the path") {
    TempDir dir;
    auto path = dir.write("broken.toml", "[[keys]]\nrole = \"a\"\nalgorithm = \"rsa512\"\n");
    try {
      (void)tokenprov::load_profile(path);
      FAIL("load_profile accepted a bad profile");
    } catch (const Error& e) {
      CHECK(e.code() == ExitCode::BadInput);
      CHECK(std::string(e.what()).find(path) != std::string::npos);
      CHECK(std::string(e.what()).find("rsa512") != std::string::npos);
    }
  }
}

TEST_CASE("expand_template", "[unit][profile]") {
  std::map<std::string, std::string> vars = {{"role", "auth"}, {"user", "alice"}, {"serial", "0123"}, {"cn", "Alice"}};
  CHECK(tokenprov::expand_template("{role}-{user}", vars) == "auth-alice");
  CHECK(tokenprov::expand_template("tp-{serial}", vars) == "tp-0123");
  CHECK(tokenprov::expand_template("plain", vars) == "plain");
  CHECK(tokenprov::expand_template("", vars) == "");
  CHECK(tokenprov::expand_template("{{literal}} {cn}", vars) == "{literal} Alice");
  CHECK(tokenprov::expand_template("{user}{user}", vars) == "alicealice");
  for (const char* bad : {"{usr}", "{role", "role}", "{}", "x-{Role}"}) {
    INFO(bad);
    try {
      (void)tokenprov::expand_template(bad, vars);
      FAIL("expand_template accepted a bad template");
    } catch (const Error& e) {
      CHECK(e.code() == ExitCode::BadInput);
    }
  }
  try {
    (void)tokenprov::expand_template("{usr}", vars);
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("{usr}") != std::string::npos);
    CHECK(std::string(e.what()).find("{user}") != std::string::npos);
  }
}

TEST_CASE("known algorithms", "[unit][profile]") {
  for (const char* a : {"rsa2048", "rsa3072", "rsa4096", "ec-p256", "ec-p384", "ed25519"})
    CHECK(tokenprov::is_known_algorithm(a));
  for (const char* a : {"rsa1024", "RSA2048", "ec-p521", "", "ed448"})
    CHECK_FALSE(tokenprov::is_known_algorithm(a));
  CHECK(tokenprov::known_algorithms().size() == 6);
}

TEST_CASE("protocol and the cmp table are read and checked", "[unit][profile]") {
  auto p = parse_profile("protocol = \"cmp\"\n[cmp]\nurl = \"https://ca.example.org/pkix/\"\n"
                         "ca_fingerprint = \"" + std::string(32, 'A') + std::string(32, 'b') + "\"\n"
                         "[[keys]]\nrole = \"auth\"\nalgorithm = \"ec-p256\"\n",
                         "cmp.toml");
  CHECK(p.protocol == "cmp");
  CHECK(p.cmp_url == "https://ca.example.org/pkix/");
  CHECK(p.cmp_ca_fingerprint == std::string(32, 'a') + std::string(32, 'b'));
  auto bad = [](const std::string& text, const std::string& field) {
    try {
      (void)parse_profile(text + "[[keys]]\nrole = \"a\"\nalgorithm = \"rsa2048\"\n", "bad.toml");
      FAIL("accepted: " << text);
    } catch (const Error& e) {
      CHECK(e.code() == ExitCode::BadInput);
      CHECK(std::string(e.what()).find(field) != std::string::npos);
    }
  };
  bad("protocol = \"acme\"\n", "protocol");
  bad("[cmp]\nurl = \"ftp://ca/\"\n", "cmp.url");
  bad("[cmp]\nca_fingerprint = \"12\"\n", "cmp.ca_fingerprint");
  bad("[cmp]\nreference = \"4711\"\n", "reference");
}
