// SPDX-License-Identifier: Apache-2.0
// What the two halves of the PKCS#12 code share: pkcs12.cpp writes files
// (build, and the read-back check), pkcs12_read.cpp reads them (parse).
// Private to those two files.
#pragma once

#include "tokenprov/pkcs12.hpp"

#include <openssl/pkcs12.h>
#include <openssl/pkcs7.h>

#include <climits>
#include <memory>

namespace tokenprov::pkcs12::detail {

using ossl::Bytes;
using ossl::Deleter;
using ossl::EvpPkeyPtr;
using ossl::X509Ptr;

struct SafeBagsFree {
  void operator()(STACK_OF(PKCS12_SAFEBAG) * s) const noexcept { sk_PKCS12_SAFEBAG_pop_free(s, PKCS12_SAFEBAG_free); }
};
struct Pkcs7sFree {
  void operator()(STACK_OF(PKCS7) * s) const noexcept { sk_PKCS7_pop_free(s, PKCS7_free); }
};
using SafeBagsPtr = std::unique_ptr<STACK_OF(PKCS12_SAFEBAG), SafeBagsFree>;
using Pkcs7sPtr = std::unique_ptr<STACK_OF(PKCS7), Pkcs7sFree>;
using SafeBagPtr = std::unique_ptr<PKCS12_SAFEBAG, Deleter<PKCS12_SAFEBAG_free>>;
using AlgorPtr = ossl::X509AlgorPtr;
using X509SigPtr = std::unique_ptr<X509_SIG, Deleter<X509_SIG_free>>;

constexpr int kModernSaltLen = 16; // NIST SP 800-132: at least 128 bits

// A password as OpenSSL's PKCS#12 functions take it. OpenSSL 3 turns it into
// the BMPString the PKCS#12 KDF needs by reading it as UTF-8 (NSS agrees;
// Java's keytool refuses non-ASCII passwords); PBKDF2 takes the UTF-8 bytes.
struct Pw {
  const char* data;
  int len;
};

inline Pw pw_of(const Secret& s) {
  if (s.size() > static_cast<std::size_t>(INT_MAX / 4)) fail(ExitCode::Usage, "The PKCS#12 password is too long.");
  return Pw{s.str().c_str(), static_cast<int>(s.size())};
}

// Does KEY's public half equal CERT's? 1 yes, 0 no, -1 cannot tell.
int key_matches(EVP_PKEY* key, X509* cert);

} // namespace tokenprov::pkcs12::detail
