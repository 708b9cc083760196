// SPDX-License-Identifier: Apache-2.0
// What a PKCS#11 URI names beyond its attributes: PIN source, module, and
// the token selector a key URI makes (src/p11/uri_resolve.cpp). No token needed.
#include "tokenprov/error.hpp"
#include "tokenprov/uri.hpp"
#include "tokenprov/uri_resolve.hpp"

#include <catch2/catch.hpp>

#include <string>

using tokenprov::Error;
using tokenprov::ExitCode;
using tokenprov::Pkcs11Uri;

namespace {
template <typename F> void require_error(F&& f, ExitCode code, const std::string& needle) {
  try {
    f();
    FAIL("accepted");
  } catch (const Error& e) {
    CHECK(e.code() == code);
    INFO("message: " << e.what());
    CHECK(std::string(e.what()).find(needle) != std::string::npos);
  }
}
} // namespace

TEST_CASE("pin-source maps onto tokenprov's secret sources", "[unit][uri]") {
  using tokenprov::secret_source_from_pin_source;
  CHECK(secret_source_from_pin_source("file:/etc/token") == "file:/etc/token");
  CHECK(secret_source_from_pin_source("file:///etc/token") == "file:/etc/token");
  CHECK(secret_source_from_pin_source("file://localhost/etc/token") == "file:/etc/token");
  CHECK(secret_source_from_pin_source("/etc/token_pin") == "file:/etc/token_pin");
  CHECK(secret_source_from_pin_source("pin.txt") == "file:pin.txt");
  CHECK(secret_source_from_pin_source("file:pin.txt") == "file:pin.txt");
  CHECK(secret_source_from_pin_source("env:PIN") == "env:PIN");
  CHECK(secret_source_from_pin_source("fd:3") == "fd:3");
  CHECK(secret_source_from_pin_source("prompt") == "prompt");
  require_error([] { secret_source_from_pin_source("|/usr/bin/get-pin"); }, ExitCode::Usage, "runs no program");
  require_error([] { secret_source_from_pin_source("file://server/etc/pin"); }, ExitCode::Usage, "another host");
  require_error([] { secret_source_from_pin_source("file://"); }, ExitCode::Usage, "another host");
  require_error([] { secret_source_from_pin_source("https://example.org/pin"); }, ExitCode::Usage, "https:");
  require_error([] { secret_source_from_pin_source("pkcs11:object=pin"); }, ExitCode::Usage, "pkcs11:");
  require_error([] { secret_source_from_pin_source(""); }, ExitCode::Usage, "empty");
}

TEST_CASE("pin_source_for: --pin-source, else the URI's, never two different ones", "[unit][uri]") {
  using tokenprov::pin_source_for;
  CHECK(pin_source_for("", "alice") == "");
  CHECK(pin_source_for("env:P", "alice") == "env:P");
  CHECK(pin_source_for("", "pkcs11:token=a?pin-source=file:/etc/pin") == "file:/etc/pin");
  CHECK(pin_source_for("file:/etc/pin", "pkcs11:token=a?pin-source=/etc/pin") == "file:/etc/pin");
  require_error([] { pin_source_for("env:P", "pkcs11:token=a?pin-source=/etc/pin"); }, ExitCode::Usage,
                "different PIN sources");
}

TEST_CASE("uri_module: module-path must be absolute, module-name a name", "[unit][uri]") {
  using tokenprov::uri_module;
  CHECK_FALSE(uri_module(Pkcs11Uri::parse("pkcs11:token=a")).has_value());
  CHECK(uri_module(Pkcs11Uri::parse("pkcs11:?module-path=/nonexistent.so")) == std::optional<std::string>("/nonexistent.so"));
  require_error([] { (void)uri_module(Pkcs11Uri::parse("pkcs11:?module-path=lib.so")); }, ExitCode::Usage, "not an absolute path");
  require_error([] { (void)uri_module(Pkcs11Uri::parse("pkcs11:?module-path=/usr/lib")); }, ExitCode::Usage, "directory");
  require_error([] { (void)uri_module(Pkcs11Uri::parse("pkcs11:?module-name=/usr/lib/x.so")); }, ExitCode::Usage,
                "not a module name");
  require_error([] { (void)uri_module(Pkcs11Uri::parse("pkcs11:?module-name=no-such-module-registered")); },
                ExitCode::Token, "No PKCS#11 module named 'no-such-module-registered'");
}

TEST_CASE("resolve_module_for: the URI's module, a conflicting --module refused", "[unit][uri]") {
  using tokenprov::resolve_module_for;
  CHECK(resolve_module_for("", "/p.so", "pkcs11:token=a?module-path=/m.so") == "/m.so");
  CHECK(resolve_module_for("/m.so", "", "pkcs11:token=a?module-path=/m.so") == "/m.so");
  CHECK(resolve_module_for("/c.so", "/p.so", "pkcs11:token=a") == "/c.so");
  CHECK(resolve_module_for("", "/p.so", "alice") == "/p.so");
  require_error([] { (void)resolve_module_for("/c.so", "", "pkcs11:token=a?module-path=/m.so"); }, ExitCode::Usage,
                "--module names '/c.so'");
}

TEST_CASE("token_selector_with_key: a key URI names its token, module and PIN source", "[unit][uri]") {
  using tokenprov::token_selector_with_key;
  CHECK(token_selector_with_key("alice", "mykey") == "alice");
  CHECK(token_selector_with_key("alice", "pkcs11:object=k;id=%01") == "alice");
  CHECK(token_selector_with_key("", "pkcs11:token=bob;object=k?module-name=softhsm2") ==
        "pkcs11:token=bob?module-name=softhsm2");
  CHECK(token_selector_with_key("alice", "pkcs11:serial=01;object=k") == "pkcs11:token=alice;serial=01");
  CHECK(token_selector_with_key("serial:01", "pkcs11:token=bob;type=private") == "pkcs11:token=bob;serial=01");
  CHECK(token_selector_with_key("pkcs11:token=bob", "pkcs11:token=bob;slot-id=3?pin-source=/p") ==
        "pkcs11:token=bob;slot-id=3?pin-source=/p");
  require_error([] { (void)token_selector_with_key("alice", "pkcs11:token=bob;object=k"); }, ExitCode::Token,
                "No token matches both");
  require_error([] { (void)token_selector_with_key("pkcs11:?pin-source=/a", "pkcs11:token=b?pin-source=/b"); },
                ExitCode::Usage, "different pin-source");
}
