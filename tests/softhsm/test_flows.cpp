// SPDX-License-Identifier: Apache-2.0
// The flows in-process, without the binary (issue 18): init and list,
// pickup, backup and restore, provision (blank token to certificate and
// backup, rerun), and fleet, on real SoftHSM2 tokens. The end-to-end tests
// in tests/e2e run the same jobs through the CLI.
#include "support/softhsm_fixture.hpp"
#include "support/testutil.hpp"

#include "tokenprov/backup.hpp"
#include "tokenprov/fleet.hpp"
#include "tokenprov/inventory.hpp"
#include "tokenprov/keys.hpp"
#include "tokenprov/pickup.hpp"
#include "tokenprov/profile.hpp"
#include "tokenprov/provision.hpp"
#include "tokenprov/token.hpp"
#include "tokenprov/token_admin.hpp"
#include "tokenprov/uri.hpp"

#include <catch2/catch.hpp>

#include <openssl/pem.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>

using namespace tokenprov;
using namespace tokenprov::test;
namespace fs = std::filesystem;

namespace {

const Secret& user_pin() {
  static const Secret s{std::string(kUserPin)};
  return s;
}
const Secret& so_pin() {
  static const Secret s{std::string(kSoPin)};
  return s;
}

TokenContext open(const std::string& label) {
  return open_token({kSoftHsmModule, label, TokenState::Initialized, true, &user_pin()});
}

std::size_t object_count(const std::string& label) {
  auto inv = take_inventory(p11::Module::load(kSoftHsmModule), label, &user_pin());
  REQUIRE(inv.tokens.size() == 1);
  return inv.tokens[0].objects.size();
}

// The test CA issues for every PEM request in CSR_DIR into CERT_DIR (leaf then chain), as a CA would.
void issue_all(const TestPki& pki, const std::string& csr_dir, const std::string& cert_dir) {
  fs::create_directories(cert_dir);
  for (const auto& e : fs::directory_iterator(csr_dir)) {
    auto text = read_text(e.path().string());
    ossl::BioPtr b(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> req(PEM_read_bio_X509_REQ(b.get(), nullptr, nullptr, nullptr),
                                                           X509_REQ_free);
    REQUIRE(req);
    auto leaf = issue_cert("/CN=" + e.path().stem().string(), X509_REQ_get0_pubkey(req.get()), pki.intermediate.get(),
                           pki.intermediate_key.get());
    std::ofstream out(cert_dir + "/" + e.path().stem().string() + ".pem");
    out << ossl::to_pem(leaf.get()) << ossl::to_pem(pki.intermediate.get()) << ossl::to_pem(pki.root.get());
  }
}

Profile demo_profile() {
  return load_profile(std::string(TOKENPROV_SOURCE_DIR) + "/tokens/softhsm-demo.toml");
}

} // namespace

TEST_CASE("init sets up a blank token once and list shows it with its objects", "[softhsm][flows]") {
  SoftHsm hsm;
  InitRequest req{kSoftHsmModule, "", "fresh", false, 4};
  auto t = init_token(req, so_pin(), user_pin());
  CHECK(t.label == "fresh");
  CHECK(object_count("fresh") == 0);
  // Initialized now: a second init of it without force is refused, the token unchanged.
  InitRequest again{kSoftHsmModule, "fresh", "other", false, 4};
  try {
    init_token(again, so_pin(), user_pin());
    FAIL("init of an initialized token without --force went through");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::Exists);
  }
  auto ctx = open("fresh");
  auto k = generate_key(*ctx.session, Algorithm::EcP256, KeyPolicy{"k", {}, false, 0});
  CHECK(object_count("fresh") == 2);
  auto inv = take_inventory(p11::Module::load(kSoftHsmModule), "fresh", &user_pin());
  auto j = to_json(inv);
  CHECK(j["tokens"][0]["label"] == "fresh");
  CHECK(j["tokens"][0]["objects"].size() == 2);
}

TEST_CASE("pickup writes leaf and chain once, and refuses a certificate for no key", "[softhsm][flows]") {
  SoftHsm hsm;
  hsm.create_token("pk");
  auto pki = make_pki(KeyAlg::EcP256);
  auto ctx = open("pk");
  auto& s = *ctx.session;
  auto k = generate_key(s, Algorithm::EcP256, KeyPolicy{"alice", {}, false, 0});
  auto pub = public_key(s, k);
  auto leaf = issue_cert("/CN=alice", pub.get(), pki.intermediate.get(), pki.intermediate_key.get());
  auto bundle = [&] {
    std::vector<ossl::X509Ptr> v;
    v.push_back(ossl::dup(pki.root.get())); // any order: the chain is ordered from the leaf
    v.push_back(ossl::dup(leaf.get()));
    v.push_back(ossl::dup(pki.intermediate.get()));
    return v;
  };
  auto r = pickup_certificates(s, bundle(), {}, "bundle");
  CHECK(r.written == 3);
  CHECK(r.chain.size() == 2);
  CHECK(r.key.id == k.id);
  auto again = pickup_certificates(s, bundle(), {}, "bundle");
  CHECK(again.written == 0);
  CHECK(again.present == 3);
  CHECK(object_count("pk") == 5);
  // A certificate whose key is on no token: nothing written.
  auto stranger = make_key(KeyAlg::EcP256);
  std::vector<ossl::X509Ptr> other;
  other.push_back(issue_cert("/CN=bob", stranger.get(), pki.intermediate.get(), pki.intermediate_key.get()));
  try {
    pickup_certificates(s, std::move(other), {}, "bob.pem");
    FAIL("a certificate for no key was picked up");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::BadInput);
  }
  CHECK(object_count("pk") == 5);
}

TEST_CASE("provision takes a blank token to key, request, certificate and backup, and fleet does it for many",
          "[softhsm][flows]") {
  SoftHsm hsm;
  TempDir dir;
  auto pki = make_pki(KeyAlg::EcP256);
  Secret backup_pw{std::string("backup password 1")};
  ProvisionSecrets secrets;
  secrets.user_pin = &user_pin();
  secrets.so_pin = &so_pin();
  secrets.backup_password = &backup_pw;
  ProvisionRequest req;
  req.profile = demo_profile();
  req.module_path = kSoftHsmModule;
  req.token = "blank";
  req.subject = "/CN=Alice/O=Example";
  req.csr_dir = dir.path() + "/csr";
  req.cert_dir = dir.path() + "/certs";
  req.backup_dir = dir.path() + "/backups";
  fs::create_directories(req.csr_dir);
  fs::create_directories(req.cert_dir);
  fs::create_directories(req.backup_dir);

  // First run: a blank token initialized, its key made, the request written.
  auto first = provision(req, secrets);
  CHECK(first.initialized_now);
  REQUIRE(first.keys.size() == 1);
  CHECK(first.keys[0].key_state == KeyState::Generated);
  CHECK(first.keys[0].cert_state == CertState::AwaitingCertificate);
  CHECK(!first.complete);
  const std::string label = first.token.label;
  CHECK(label == "demo-alice");

  // The CA answers; the rerun on the same token picks up, backs up and checks.
  issue_all(pki, req.csr_dir, req.cert_dir);
  req.token = label;
  req.check_signature = true;
  auto second = provision(req, secrets);
  CHECK(!second.initialized_now);
  CHECK(second.keys[0].key_state == KeyState::Present);
  CHECK(second.keys[0].cert_state == CertState::PickedUp);
  CHECK(second.keys[0].backup_state == BackupState::Written);
  CHECK(second.keys[0].signature_check == SignatureCheck::Ok);
  CHECK(second.complete);
  const std::string p12 = second.keys[0].backup_file;
  CHECK(fs::status(p12).permissions() == (fs::perms::owner_read | fs::perms::owner_write));

  // A third run changes nothing.
  auto third = provision(req, secrets);
  CHECK(third.keys[0].cert_state == CertState::Present);
  CHECK(third.keys[0].backup_state == BackupState::Present);

  // The backup restores onto another token, where the key signs for the certificate's public key.
  hsm.create_token("spare");
  auto spare = open("spare");
  RestoreRequest rr;
  rr.in = p12;
  auto restored = restore_backup(*spare.session, rr, backup_pw);
  auto copy = find_key(*spare.session, "id:" + to_hex(restored.key.id));
  auto home = open(label);
  auto original = find_key(*home.session, "id:" + second.keys[0].id_hex);
  CHECK(ossl::spki_der(public_key(*spare.session, copy).get()) ==
        ossl::spki_der(public_key(*home.session, original).get()));

  // Fleet: two blank tokens from a manifest, requests written, one line per row.
  auto manifest = hsm.write_file("m.csv", "token,subject,user\nblank,/CN=Bob/O=Example,bob\nblank,/CN=Carol/O=Example,carol\n");
  FleetRequest fr;
  fr.manifest = manifest;
  fr.jobs = 2;
  fr.state_file = dir.path() + "/state.json";
  fr.base = req;
  fr.base.token.clear();
  fr.base.cert_dir.clear();
  fr.base.backup_dir.clear();
  fr.base.check_signature = false;
  fr.base.csr_dir = dir.path() + "/fleet-csr";
  fs::create_directories(fr.base.csr_dir);
  fr.secrets = secrets;
  std::vector<nlohmann::json> lines;
  std::mutex m;
  fr.on_row = [&](const nlohmann::json& j) {
    std::lock_guard<std::mutex> g(m);
    lines.push_back(j);
  };
  auto sum = run_fleet(fr, read_manifest(manifest));
  CHECK(sum.total == 2);
  CHECK(sum.ok == 2);
  CHECK(sum.failed == 0);
  REQUIRE(lines.size() == 2);
  for (auto& j : lines)
    CHECK(j["ok"] == true);
  CHECK(object_count("demo-bob") == 2);
  CHECK(object_count("demo-carol") == 2);
}

TEST_CASE("fleet: a result callback that throws fails its row only, and the state file holds every row",
          "[softhsm][flows][fleet]") {
  SoftHsm hsm;
  TempDir dir;
  ProvisionSecrets secrets;
  secrets.user_pin = &user_pin();
  secrets.so_pin = &so_pin();
  auto manifest = hsm.write_file("m.csv", "token,subject,user\n"
                                          "blank,/CN=Dan/O=Example,dan\n"
                                          "blank,/CN=Eve/O=Example,eve\n"
                                          "blank,/CN=Fay/O=Example,fay\n"
                                          "blank,/CN=Gil/O=Example,gil\n");
  FleetRequest fr;
  fr.manifest = manifest;
  fr.jobs = 2;
  fr.state_file = dir.path() + "/state.json";
  fr.base.profile = demo_profile();
  fr.base.module_path = kSoftHsmModule;
  fr.base.csr_dir = dir.path() + "/csr";
  fs::create_directories(fr.base.csr_dir);
  fr.secrets = secrets;
  std::map<std::size_t, std::vector<nlohmann::json>> lines; // row -> the lines reported for it
  std::mutex m;
  fr.on_row = [&](const nlohmann::json& j) {
    std::size_t row = j["row"].get<std::size_t>();
    {
      std::lock_guard<std::mutex> g(m);
      lines[row].push_back(j);
    }
    // The report of a good row goes wrong: row 2 with a library error, row 3 with anything else.
    if (j["ok"] == true && row == 2) fail(ExitCode::BadInput, "the report of row 2 broke");
    if (j["ok"] == true && row == 3) throw std::runtime_error("the report of row 3 broke");
  };
  auto rows = read_manifest(manifest);
  FleetSummary sum;
  REQUIRE_NOTHROW(sum = run_fleet(fr, rows));
  CHECK(sum.total == 4);
  CHECK(sum.ok == 2);
  CHECK(sum.failed == 2);
  CHECK(sum.ok + sum.failed == sum.total);
  REQUIRE(lines.size() == 4);
  CHECK(lines[1].back()["ok"] == true);
  CHECK(lines[4].back()["ok"] == true);
  // The rows whose report threw are reported again, failed: an Error keeps its code, anything else is 1.
  REQUIRE(lines[2].back()["ok"] == false);
  CHECK(lines[2].back()["error"]["code"] == static_cast<int>(ExitCode::BadInput));
  CHECK(lines[2].back()["error"]["message"].get<std::string>().find("row 2 broke") != std::string::npos);
  REQUIRE(lines[3].back()["ok"] == false);
  CHECK(lines[3].back()["error"]["code"] == 1);
  CHECK(lines[3].back()["error"]["message"].get<std::string>().find("row 3 broke") != std::string::npos);
  // Every row's token was provisioned, and the state file says so for each of them.
  for (const char* label : {"demo-dan", "demo-eve", "demo-fay", "demo-gil"})
    CHECK(object_count(label) == 2);
  std::set<std::string> recorded;
  std::istringstream state(read_text(fr.state_file));
  for (std::string line; std::getline(state, line);) {
    auto j = nlohmann::json::parse(line);
    if (!j.contains("claim") && j.value("ok", false)) recorded.insert(j["row_key"].get<std::string>());
  }
  CHECK(recorded.size() == 4);
  for (auto& r : rows)
    CHECK(recorded.count(manifest_row_key(r)) == 1);
}
