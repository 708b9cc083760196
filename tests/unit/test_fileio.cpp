// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/fileio.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sys/resource.h>
#include <sys/stat.h>
#include <csignal>

using namespace tokenprov;
namespace fs = std::filesystem;

namespace {
struct TmpDir {
  std::string path;
  TmpDir() {
    std::string t = (fs::temp_directory_path() / "tp-fileio-XXXXXX").string();
    path = ::mkdtemp(t.data());
  }
  ~TmpDir() { fs::remove_all(path); }
  std::size_t entries() const { return static_cast<std::size_t>(std::distance(fs::directory_iterator(path), fs::directory_iterator())); }
};
std::string slurp(const std::string& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
} // namespace

TEST_CASE("atomic writes set the mode and never replace a file without force", "[unit]") {
  TmpDir d;
  std::string p = d.path + "/backup.p12";
  write_file_atomic(p, std::string("first"), 0600, false);
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  try {
    write_file_atomic(p, std::string("second"), 0600, false);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::Exists);
    CHECK(std::string(e.what()).find(p) != std::string::npos);
  }
  CHECK(slurp(p) == "first");
  CHECK(d.entries() == 1); // no temporary file left behind
  write_file_atomic(p, std::string("second"), 0600, true);
  CHECK(slurp(p) == "second");
  CHECK(d.entries() == 1);
}

TEST_CASE("a missing folder is bad input naming the folder, and leaves nothing", "[unit]") {
  TmpDir d;
  std::string p = d.path + "/no/such/dir/file.pem";
  try {
    write_file_atomic(p, std::string("x"), 0644, false);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::BadInput);
    CHECK(std::string(e.what()).find(d.path + "/no/such/dir") != std::string::npos);
  }
  CHECK(d.entries() == 0);
}

TEST_CASE("a full disk (RLIMIT_FSIZE) is bad input and leaves no partial file", "[unit]") {
  TmpDir d;
  struct rlimit old {};
  ::getrlimit(RLIMIT_FSIZE, &old);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = 1024;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  std::string big(64 * 1024, 'k');
  std::string p = d.path + "/big.p12";
  bool threw = false;
  try {
    write_file_atomic(p, big, 0600, false);
  } catch (const Error& e) {
    threw = true;
    CHECK(e.code() == ExitCode::BadInput);
    CHECK(std::string(e.what()).find(p) != std::string::npos);
  }
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  CHECK(threw);
  CHECK(d.entries() == 0);
}
