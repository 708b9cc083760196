// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/secret.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <unistd.h>

using namespace tokenprov;

TEST_CASE("secrets come from env, file and fd", "[unit]") {
  SecretRequest req{"user PIN", ExitCode::Pin, false, 0, 0};
  ::setenv("TP_TEST_SECRET", "s3cret", 1);
  CHECK(read_secret("env:TP_TEST_SECRET", req).str() == "s3cret");
  ::unsetenv("TP_TEST_SECRET");

  char path[] = "/tmp/tp-secret-XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  const char text[] = "filepin\nsecond line\n";
  REQUIRE(::write(fd, text, sizeof text - 1) == static_cast<ssize_t>(sizeof text - 1));
  ::close(fd);
  CHECK(read_secret(std::string("file:") + path, req).str() == "filepin");

  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  REQUIRE(::write(fds[1], "pipepin\r\n", 9) == 9);
  ::close(fds[1]);
  CHECK(read_secret("fd:" + std::to_string(fds[0]), req).str() == "pipepin");
  ::close(fds[0]);
  ::unlink(path);
}

TEST_CASE("missing secret sources name what is missing", "[unit]") {
  SecretRequest req{"user PIN", ExitCode::Pin, false, 0, 0};
  ::unsetenv("TP_TEST_UNSET");
  try {
    read_secret("env:TP_TEST_UNSET", req);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::Pin);
    CHECK(std::string(e.what()).find("TP_TEST_UNSET") != std::string::npos);
  }
  try {
    read_secret("file:/nonexistent/pin", req);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::Pin);
    CHECK(std::string(e.what()).find("/nonexistent/pin") != std::string::npos);
  }
  CHECK_THROWS_AS(read_secret("1234", req), Error); // a PIN given as a value is refused
  try {
    read_secret("1234", req);
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::Usage);
    CHECK(std::string(e.what()).find("1234") == std::string::npos); // never repeated: it may be the PIN
  }
}

TEST_CASE("a secret shorter than the minimum is refused", "[unit]") {
  ::setenv("TP_TEST_SHORT", "12", 1);
  SecretRequest req{"user PIN", ExitCode::Pin, false, 4, 0};
  try {
    read_secret("env:TP_TEST_SHORT", req);
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::Pin);
    CHECK(std::string(e.what()).find("too short") != std::string::npos);
  }
  ::unsetenv("TP_TEST_SHORT");
}

TEST_CASE("Secret wipes its value when moved and destroyed", "[unit]") {
  Secret a(std::string("topsecret"));
  Secret b(std::move(a));
  CHECK(a.empty()); // NOLINT(bugprone-use-after-move): the moved-from secret is wiped
  CHECK(b.str() == "topsecret");
  b.wipe();
  CHECK(b.empty());
}
