// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/p11/error.hpp"

#include <catch2/catch.hpp>

using namespace tokenprov;
using namespace tokenprov::p11;

TEST_CASE("every module answer maps to a contract exit code, never 1", "[unit]") {
  // PIN problems: 3.
  for (CK_RV rv : {CKR_PIN_INCORRECT, CKR_PIN_LOCKED, CKR_PIN_LEN_RANGE, CKR_USER_PIN_NOT_INITIALIZED})
    CHECK(rv_exit_code(rv) == ExitCode::Pin);
  // A key the module will not let out or use: 4.
  CHECK(rv_exit_code(CKR_KEY_UNEXTRACTABLE) == ExitCode::Policy);
  CHECK(rv_exit_code(CKR_KEY_FUNCTION_NOT_PERMITTED) == ExitCode::Policy);
  // Whatever else a module answers is the token's or module's word: 6. tpm2-pkcs11 answers
  // CKR_ARGUMENTS_BAD to re-initializing a token; these used to be exit 1.
  for (CK_RV rv : {CKR_ARGUMENTS_BAD, CKR_OPERATION_ACTIVE, CKR_BUFFER_TOO_SMALL, CKR_CRYPTOKI_NOT_INITIALIZED,
                   CKR_GENERAL_ERROR, CKR_ATTRIBUTE_TYPE_INVALID, CKR_RANDOM_NO_RNG, CKR_KEY_SIZE_RANGE,
                   static_cast<CK_RV>(0x8000abcdUL)})
    CHECK(rv_exit_code(rv) == ExitCode::Token);
}

TEST_CASE("a module's refusal carries a hint that names the limit", "[unit]") {
  try {
    check(CKR_ARGUMENTS_BAD, "C_InitToken", "initializing the token 'x'");
    FAIL("no error");
  } catch (const P11Error& e) {
    CHECK(e.code() == ExitCode::Token);
    CHECK(std::string(e.what()).find("C_InitToken failed with CKR_ARGUMENTS_BAD") != std::string::npos);
    CHECK(std::string(e.hint()).find("re-initializing") != std::string::npos);
  }
}
