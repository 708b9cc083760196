// SPDX-License-Identifier: Apache-2.0
// RFC 7512 PKCS#11 URIs: parsing, canonical formatting, matching, hex.
#include "tokenprov/error.hpp"
#include "tokenprov/uri.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using tokenprov::Error;
using tokenprov::ExitCode;
using tokenprov::Pkcs11Uri;

namespace {

// Parses TEXT expecting Error(Usage) whose message contains NEEDLE.
void require_usage_error(const std::string& text, const std::string& needle) {
  INFO("URI: " << text);
  try {
    (void)Pkcs11Uri::parse(text);
    FAIL("parse accepted a malformed URI");
  } catch (const Error& e) {
    CHECK(e.code() == ExitCode::Usage);
    INFO("message: " << e.what());
    CHECK(std::string(e.what()).find(needle) != std::string::npos);
  }
}

// The first query attribute NAME of U (the test fails when there is none).
std::string qv(const Pkcs11Uri& u, const char* name) {
  auto it = u.query.find(name);
  REQUIRE(it != u.query.end());
  return it->second;
}

tokenprov::p11::TokenInfo alice_token() {
  tokenprov::p11::TokenInfo t;
  t.slot_id = 7;
  t.label = "alice";
  t.manufacturer = "SoftHSM project";
  t.model = "SoftHSM v2";
  t.serial = "32d214d141f35605";
  return t;
}

} // namespace

TEST_CASE("RFC 7512 section 3.3 examples parse", "[unit][uri]") {
  SECTION("empty path: matches everything") {
    auto u = Pkcs11Uri::parse("pkcs11:");
    CHECK(u.path.empty());
    CHECK(u.query.empty());
    CHECK(u.format() == "pkcs11:");
  }
  SECTION("object and type") {
    auto u = Pkcs11Uri::parse("pkcs11:object=my-pubkey;type=public");
    CHECK(u.path.at("object") == "my-pubkey");
    CHECK(u.path.at("type") == "public");
  }
  SECTION("pin-source in the query") {
    auto u = Pkcs11Uri::parse("pkcs11:object=my-key;type=private?pin-source=file:/etc/token");
    CHECK(u.path.at("object") == "my-key");
    CHECK(u.path.at("type") == "private");
    CHECK(qv(u, "pin-source") == "file:/etc/token");
  }
  SECTION("token, manufacturer, model, binary id and empty serial") {
    auto u = Pkcs11Uri::parse("pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;"
                              "manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;"
                              "id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin");
    CHECK(u.path.at("token") == "The Software PKCS#11 Softtoken");
    CHECK(u.path.at("manufacturer") == "Snake Oil, Inc.");
    CHECK(u.path.at("model") == "1.0");
    CHECK(u.path.at("object") == "my-certificate");
    CHECK(u.path.at("type") == "cert");
    CHECK(u.path.at("id") == std::string("\x69\x95\x3e\x5c\xf4\xbd\xec\x91"));
    CHECK(tokenprov::to_hex(u.path.at("id")) == "69953e5cf4bdec91");
    CHECK(u.path.at("serial").empty());
    CHECK(qv(u, "pin-source") == "file:/etc/token_pin");
  }
  SECTION("module-name") {
    auto u = Pkcs11Uri::parse("pkcs11:object=my-sign-key;type=private?module-name=mypkcs11");
    CHECK(qv(u, "module-name") == "mypkcs11");
  }
  SECTION("module-path") {
    auto u = Pkcs11Uri::parse("pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1");
    CHECK(qv(u, "module-path") == "/mnt/libmypkcs11.so.1");
  }
  SECTION("pin-value") {
    auto u = Pkcs11Uri::parse("pkcs11:token=Software%20PKCS%2311%20softtoken;"
                              "manufacturer=Snake%20Oil,%20Inc.?pin-value=the-pin");
    CHECK(u.path.at("token") == "Software PKCS#11 softtoken");
    CHECK(qv(u, "pin-value") == "the-pin");
  }
  SECTION("slot-description") {
    auto u = Pkcs11Uri::parse("pkcs11:slot-description=Sun%20Metaslot");
    CHECK(u.path.at("slot-description") == "Sun Metaslot");
  }
  SECTION("library attributes") {
    auto u = Pkcs11Uri::parse("pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;"
                              "library-description=Soft%20Token%20Library;library-version=1.23");
    CHECK(u.path.at("library-manufacturer") == "Snake Oil, Inc.");
    CHECK(u.path.at("library-description") == "Soft Token Library");
    CHECK(u.path.at("library-version") == "1.23");
  }
  SECTION("literal percent and mixed-case escapes in id") {
    auto u = Pkcs11Uri::parse("pkcs11:token=My%20token%25%20created%20by%20Joe;library-version=3;"
                              "id=%01%02%03%Ba%dd%Ca%fe%04%05%06");
    CHECK(u.path.at("token") == "My token% created by Joe");
    CHECK(u.path.at("library-version") == "3");
    CHECK(tokenprov::to_hex(u.path.at("id")) == "010203baddcafe040506");
  }
  SECTION("escaped ';' inside a value") {
    auto u = Pkcs11Uri::parse("pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert");
    CHECK(u.path.at("token") == "A name with a substring %;");
  }
  SECTION("UTF-8 value") {
    auto u = Pkcs11Uri::parse("pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;"
                              "object=my-certificate;type=cert");
    CHECK(u.path.at("token") == "Name with a small A with acute: \xc3\xa1");
  }
  SECTION("vendor attributes in path and query, as the RFC's own example has them") {
    // RFC 7512 section 2.3: pk11-v-pattr and pk11-v-qattr are any
    // pk11-v-attr-nm (letters, digits, '-', '_'); no prefix is required.
    auto u = Pkcs11Uri::parse("pkcs11:token=my-token;object=my-certificate;type=cert;vendor-aaa=value-a"
                              "?pin-source=file:/etc/token_pin&vendor-bbb=value-b");
    CHECK(u.path.at("vendor-aaa") == "value-a");
    CHECK(qv(u, "vendor-bbb") == "value-b");
    CHECK(qv(u, "pin-source") == "file:/etc/token_pin");
    CHECK(u.vendor_path_attributes() == std::vector<std::string>{"vendor-aaa"});
    CHECK(u.format() == "pkcs11:token=my-token;object=my-certificate;type=cert;vendor-aaa=value-a"
                        "?pin-source=file:/etc/token_pin&vendor-bbb=value-b");
  }
}

TEST_CASE("vendor query attributes may repeat but standard ones may not (RFC 7512 section 2.3)", "[unit][uri]") {
  auto u = Pkcs11Uri::parse("pkcs11:?v-x=1&module-name=m&v-x=2");
  CHECK(u.query.count("v-x") == 2);
  CHECK(u.get("v-x") == std::optional<std::string>("1"));
  CHECK(u.format() == "pkcs11:?module-name=m&v-x=1&v-x=2");
  CHECK(Pkcs11Uri::parse(u.format()).query == u.query);
  require_usage_error("pkcs11:?module-name=a&module-name=b", "'module-name' more than once");
  require_usage_error("pkcs11:vendor-aaa=1;vendor-aaa=2", "'vendor-aaa' more than once");
}

TEST_CASE("selecting refuses what tokenprov cannot evaluate, by name", "[unit][uri]") {
  auto refused = [](const std::string& text, const std::string& needle) {
    INFO("URI: " << text);
    auto u = Pkcs11Uri::parse(text);
    try {
      u.require_evaluable("--token");
      FAIL("require_evaluable accepted it");
    } catch (const Error& e) {
      CHECK(e.code() == ExitCode::Usage);
      INFO("message: " << e.what());
      CHECK(std::string(e.what()).find(needle) != std::string::npos);
      CHECK(std::string(e.what()).find("the-pin") == std::string::npos);
    }
  };
  refused("pkcs11:token=my-token;vendor-aaa=value-a", "'vendor-aaa'");
  refused("pkcs11:tokn=alice", "'tokn'"); // a misspelt attribute is caught here, not silently ignored
  refused("pkcs11:x-any=1", "'x-any'");
  refused("pkcs11:token=a?pin-value=the-pin", "pin-value");
  // Vendor query attributes select nothing: they are ignored (RFC 7512
  // section 2.5 leaves them to the consumer), as p11-kit does.
  Pkcs11Uri::parse("pkcs11:token=a?vendor-bbb=value-b").require_evaluable("--token");
  Pkcs11Uri::parse("pkcs11:token=a;slot-id=1;library-version=2?module-name=x&pin-source=/p").require_evaluable("--key");
}

TEST_CASE("library and slot attributes match C_GetInfo and C_GetSlotInfo", "[unit][uri]") {
  tokenprov::p11::LibraryInfo lib;
  lib.manufacturer = "SoftHSM";
  lib.description = "Implementation of PKCS11";
  lib.version_major = 2;
  lib.version_minor = 6;
  CHECK(Pkcs11Uri::parse("pkcs11:").matches_library(lib));
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:").names_library());
  CHECK(Pkcs11Uri::parse("pkcs11:library-manufacturer=SoftHSM").matches_library(lib));
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:library-manufacturer=Snake%20Oil,%20Inc.").matches_library(lib));
  CHECK(Pkcs11Uri::parse("pkcs11:library-description=Implementation%20of%20PKCS11").matches_library(lib));
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:library-description=Soft%20Token%20Library").matches_library(lib));
  CHECK(Pkcs11Uri::parse("pkcs11:library-version=2.6").matches_library(lib));
  CHECK(Pkcs11Uri::parse("pkcs11:library-version=2.06").matches_library(lib));
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:library-version=2").matches_library(lib)); // "M" is M.0
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:library-version=9.9").matches_library(lib));
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:library-version=2.7").matches_library(lib));
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:library-version=258.6").matches_library(lib)); // not 2 mod 256
  lib.version_minor = 0;
  CHECK(Pkcs11Uri::parse("pkcs11:library-version=2").matches_library(lib));
  CHECK(Pkcs11Uri::parse("pkcs11:library-version=2.0").matches_library(lib));
  CHECK(Pkcs11Uri::parse("pkcs11:library-version=2").names_library());
  // Library attributes do not restrict the token or slot match on their own.
  CHECK(Pkcs11Uri::parse("pkcs11:library-version=9.9").matches_token(alice_token()));

  tokenprov::p11::SlotInfo slot;
  slot.slot_id = 7;
  slot.description = "SoftHSM slot ID 0x7";
  slot.manufacturer = "SoftHSM project";
  CHECK(Pkcs11Uri::parse("pkcs11:").matches_slot(slot));
  CHECK(Pkcs11Uri::parse("pkcs11:slot-manufacturer=SoftHSM%20project").matches_slot(slot));
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:slot-manufacturer=Nobody").matches_slot(slot));
  CHECK(Pkcs11Uri::parse("pkcs11:slot-description=SoftHSM%20slot%20ID%200x7").matches_slot(slot));
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:slot-description=Sun%20Metaslot").matches_slot(slot));
  CHECK(Pkcs11Uri::parse("pkcs11:slot-id=7").matches_slot(slot));
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:slot-id=8").matches_slot(slot));
  CHECK(Pkcs11Uri::parse("pkcs11:slot-id=7").names_slot());
  // Trailing spaces are the fields' padding (p11-kit pads the URI value the same way).
  CHECK(Pkcs11Uri::parse("pkcs11:slot-manufacturer=SoftHSM%20project%20%20").matches_slot(slot));
  CHECK(Pkcs11Uri::parse("pkcs11:token=alice%20").matches_token(alice_token()));
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:token=%20alice").matches_token(alice_token()));
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:object=auth%20").matches_object("private", "auth", ""));
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:token=alice").names_slot());
}

TEST_CASE("PKCS#11 URI reserved characters allowed unencoded", "[unit][uri]") {
  // pk11-res-avail and '&' may appear as is in path values.
  auto u = Pkcs11Uri::parse("pkcs11:object=a:b[c]@d!e$f'g(h)i*j+k,l=m&n~o.p_q-r");
  CHECK(u.path.at("object") == "a:b[c]@d!e$f'g(h)i*j+k,l=m&n~o.p_q-r");
  // '/', '?' and '|' may appear as is in query values.
  auto q = Pkcs11Uri::parse("pkcs11:?pin-source=|/usr/bin/get-pin?x=1");
  CHECK(qv(q, "pin-source") == "|/usr/bin/get-pin?x=1");
  CHECK(Pkcs11Uri::parse("pkcs11:?").query.empty());
  // The scheme is case-insensitive (RFC 3986).
  CHECK(Pkcs11Uri::parse("PKCS11:token=alice").path.at("token") == "alice");
}

TEST_CASE("malformed PKCS#11 URIs are usage errors naming the problem", "[unit][uri]") {
  require_usage_error("", "empty");
  require_usage_error("token=alice", "does not start with 'pkcs11:'");
  require_usage_error("pkcs11", "does not start with 'pkcs11:'");
  require_usage_error("pkcs:token=alice", "does not start with 'pkcs11:'");
  require_usage_error("pkcs11:token", "'token' has no '='");
  require_usage_error("pkcs11:token=alice;serial", "'serial' has no '='");
  require_usage_error("pkcs11:token=a%2", "bad percent escape '%2'");
  require_usage_error("pkcs11:token=a%zz", "bad percent escape '%zz'");
  require_usage_error("pkcs11:id=%0g", "bad percent escape");
  require_usage_error("pkcs11:token=a%", "bad percent escape");
  require_usage_error("pkcs11:token=alice;token=bob", "'token' more than once");
  require_usage_error("pkcs11:?pin-source=a&pin-source=b", "'pin-source' more than once");
  require_usage_error("pkcs11:token=my token", "a space");
  require_usage_error("pkcs11:token=a/b", "'/'");
  require_usage_error("pkcs11:token=a\"b", "'\"'");
  require_usage_error("pkcs11:?pin-source=a;b", "';'");
  require_usage_error("pkcs11:token=alice#frag", "fragment");
  require_usage_error("pkcs11:token=alice;", "empty attribute");
  require_usage_error("pkcs11:;token=alice", "empty attribute");
  require_usage_error("pkcs11:token=alice?pin-source=x&", "empty attribute");
  require_usage_error("pkcs11:=alice", "name '' is not valid");
  require_usage_error("pkcs11:to.ken=alice", "name 'to.ken' is not valid");
  require_usage_error("pkcs11:pin-source=file:/x", "belongs in the query part");
  require_usage_error("pkcs11:?token=alice", "belongs in the path part");
  require_usage_error("pkcs11:type=key", "'type' is 'key'");
  require_usage_error("pkcs11:slot-id=0x1", "not a decimal number");
  require_usage_error("pkcs11:slot-id=", "not a decimal number");
  require_usage_error("pkcs11:library-version=1.x", "MAJOR.MINOR");
}

TEST_CASE("a pin-value never appears in an error message", "[unit][uri]") {
  try {
    (void)Pkcs11Uri::parse("pkcs11:token=a;;b?pin-value=123456");
    FAIL("parse accepted a malformed URI");
  } catch (const Error& e) {
    CHECK(std::string(e.what()).find("123456") == std::string::npos);
  }
}

TEST_CASE("format() writes the canonical form", "[unit][uri]") {
  SECTION("attributes in RFC order, id fully encoded in lower-case hex") {
    Pkcs11Uri u;
    u.path["id"] = std::string("\x01\xab", 2);
    u.path["type"] = "private";
    u.path["object"] = "auth key";
    u.path["serial"] = "0123";
    u.path["token"] = "alice";
    CHECK(u.format() == "pkcs11:token=alice;serial=0123;object=auth%20key;type=private;id=%01%ab");
  }
  SECTION("id is encoded even where the bytes are printable") {
    Pkcs11Uri u;
    u.path["id"] = "AZ";
    CHECK(u.format() == "pkcs11:id=%41%5a");
  }
  SECTION("other values keep pchar and encode the rest") {
    Pkcs11Uri u;
    u.path["token"] = "Snake Oil, Inc.;100%/x\xc3\xa1";
    CHECK(u.format() == "pkcs11:token=Snake%20Oil,%20Inc.%3b100%25%2fx%c3%a1");
    // '&' is pk11-pchar, but libp11's engine splits paths at it: written encoded.
    u.path["token"] = "A&B";
    CHECK(u.format() == "pkcs11:token=A%26B");
  }
  SECTION("query: standard attributes first, '&' encoded, '/' '?' '|' kept") {
    Pkcs11Uri u;
    u.query.emplace("x-vendor", "a&b");
    u.query.emplace("module-path", "/usr/lib/softhsm/libsofthsm2.so");
    u.query.emplace("pin-source", "|/bin/cat?");
    CHECK(u.format() == "pkcs11:?pin-source=|/bin/cat?&module-path=/usr/lib/softhsm/libsofthsm2.so&x-vendor=a%26b");
  }
  SECTION("vendor path attributes come after the standard ones") {
    auto u = Pkcs11Uri::parse("pkcs11:x-b=2;x-a=1;object=k;token=t");
    CHECK(u.format() == "pkcs11:token=t;object=k;x-a=1;x-b=2");
  }
  SECTION("RFC example in canonical form") {
    auto u = Pkcs11Uri::parse("pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;"
                              "manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;"
                              "id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin");
    CHECK(u.format() == "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;"
                        "serial=;model=1.0;object=my-certificate;type=cert;id=%69%95%3e%5c%f4%bd%ec%91"
                        "?pin-source=file:/etc/token_pin");
  }
}

TEST_CASE("parse(format(x)) round-trips", "[unit][uri]") {
  SECTION("RFC examples") {
    const std::vector<std::string> examples = {
        "pkcs11:",
        "pkcs11:object=my-pubkey;type=public",
        "pkcs11:object=my-key;type=private?pin-source=file:/etc/token",
        "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;"
        "object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin",
        "pkcs11:object=my-sign-key;type=private?module-name=mypkcs11",
        "pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1",
        "pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.?pin-value=the-pin",
        "pkcs11:slot-description=Sun%20Metaslot",
        "pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20Library;"
        "library-version=1.23",
        "pkcs11:token=My%20token%25%20created%20by%20Joe;library-version=3;id=%01%02%03%Ba%dd%Ca%fe%04%05%06",
        "pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert",
        "pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;object=my-certificate;type=cert",
    };
    for (const auto& text : examples) {
      INFO(text);
      auto once = Pkcs11Uri::parse(text);
      auto canonical = once.format();
      auto twice = Pkcs11Uri::parse(canonical);
      CHECK(twice.path == once.path);
      CHECK(twice.query == once.query);
      CHECK(twice.format() == canonical);
    }
  }
  SECTION("every byte value in every kind of attribute") {
    std::string all;
    for (int c = 0; c < 256; ++c)
      all += static_cast<char>(c);
    Pkcs11Uri u;
    u.path["token"] = all;
    u.path["object"] = all;
    u.path["id"] = all;
    u.path["x-any"] = all;
    u.query.emplace("pin-source", all);
    u.query.emplace("vendor_q", all);
    u.path["slot-id"] = "18446744073709551615";
    auto back = Pkcs11Uri::parse(u.format());
    CHECK(back.path == u.path);
    CHECK(back.query == u.query);
  }
  SECTION("token_uri and object_uri") {
    auto t = alice_token();
    t.label = "Alice; 100% (test)";
    auto tu = Pkcs11Uri::parse(tokenprov::token_uri(t));
    CHECK(tu.path.at("token") == t.label);
    CHECK(tu.matches_token(t));
    auto ou = Pkcs11Uri::parse(tokenprov::object_uri(t, "private", "auth-alice", std::string("\x00\x01", 2)));
    CHECK(ou.matches_token(t));
    CHECK(ou.matches_object("private", "auth-alice", std::string("\x00\x01", 2)));
    CHECK(ou.format().find("id=%00%01") != std::string::npos);
  }
}

TEST_CASE("get() reads path, then query attributes", "[unit][uri]") {
  auto u = Pkcs11Uri::parse("pkcs11:token=alice?module-path=/m.so");
  CHECK(u.get("token") == std::optional<std::string>("alice"));
  CHECK(u.get("module-path") == std::optional<std::string>("/m.so"));
  CHECK_FALSE(u.get("serial").has_value());
  CHECK(Pkcs11Uri::looks_like_uri("pkcs11:token=alice"));
  CHECK_FALSE(Pkcs11Uri::looks_like_uri("alice"));
}

TEST_CASE("matches_token compares label, manufacturer, serial, model and slot-id", "[unit][uri]") {
  auto t = alice_token();
  CHECK(Pkcs11Uri::parse("pkcs11:").matches_token(t));
  CHECK(Pkcs11Uri::parse("pkcs11:token=alice").matches_token(t));
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:token=Alice").matches_token(t));
  CHECK(Pkcs11Uri::parse("pkcs11:manufacturer=SoftHSM%20project;model=SoftHSM%20v2").matches_token(t));
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:model=SoftHSM").matches_token(t));
  CHECK(Pkcs11Uri::parse("pkcs11:serial=32d214d141f35605").matches_token(t));
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:serial=32d214d141f35606").matches_token(t));
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:serial=").matches_token(t));
  CHECK(Pkcs11Uri::parse("pkcs11:slot-id=7").matches_token(t));
  CHECK(Pkcs11Uri::parse("pkcs11:slot-id=007").matches_token(t));
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:slot-id=8").matches_token(t));
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:token=alice;slot-id=8").matches_token(t));
  // Object attributes do not restrict the token match.
  CHECK(Pkcs11Uri::parse("pkcs11:token=alice;object=x;type=cert").matches_token(t));
}

TEST_CASE("matches_object compares label, id bytes and type", "[unit][uri]") {
  const std::string id("\x00\x01", 2);
  CHECK(Pkcs11Uri::parse("pkcs11:").matches_object("private", "auth", id));
  CHECK(Pkcs11Uri::parse("pkcs11:object=auth").matches_object("private", "auth", id));
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:object=auth").matches_object("private", "Auth", id));
  CHECK(Pkcs11Uri::parse("pkcs11:id=%00%01").matches_object("cert", "x", id));
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:id=%00").matches_object("cert", "x", id));
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:id=%00%01%02").matches_object("cert", "x", id));
  CHECK(Pkcs11Uri::parse("pkcs11:type=cert").matches_object("cert", "x", id));
  CHECK_FALSE(Pkcs11Uri::parse("pkcs11:type=cert").matches_object("private", "x", id));
  CHECK(Pkcs11Uri::parse("pkcs11:token=bob;object=auth;type=private;id=%00%01").matches_object("private", "auth", id));
}

TEST_CASE("to_hex and from_hex", "[unit][uri]") {
  CHECK(tokenprov::to_hex("") == "");
  CHECK(tokenprov::to_hex(std::string("\x00\x7f\x80\xff", 4)) == "007f80ff");
  CHECK(tokenprov::from_hex("") == "");
  CHECK(tokenprov::from_hex("007f80ff") == std::string("\x00\x7f\x80\xff", 4));
  CHECK(tokenprov::from_hex("ABcd") == "\xab\xcd");
  std::string all;
  for (int c = 0; c < 256; ++c)
    all += static_cast<char>(c);
  CHECK(tokenprov::from_hex(tokenprov::to_hex(all)) == all);
  for (const char* bad : {"0", "abc", "0g", "zz", "01 02", "0x01"}) {
    INFO(bad);
    try {
      (void)tokenprov::from_hex(bad);
      FAIL("from_hex accepted bad hex");
    } catch (const Error& e) {
      CHECK(e.code() == ExitCode::Usage);
    }
  }
}
