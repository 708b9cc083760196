// SPDX-License-Identifier: Apache-2.0
// What the parts of the SCEP client share (private to src/enroll/scep*.cpp):
// scep_ca.cpp (CA discovery and pinning), scep_request.cpp (the PKCSReq,
// RenewalReq and CertPoll messages), scep_certrep.cpp (the CertRep answer:
// checked, decrypted, the issued certificate found) and scep.cpp (the client
// with its polling).
#pragma once

#include "tokenprov/error.hpp"
#include "tokenprov/scep.hpp"

#include <openssl/objects.h>

#include <memory>
#include <string>
#include <vector>

namespace tokenprov::scep::detail {

// ---- SCEP attribute OIDs (scep_request.cpp) -------------------------------------

struct Nids {
  int message_type = NID_undef;
  int pki_status = NID_undef;
  int fail_info = NID_undef;
  int sender_nonce = NID_undef;
  int recipient_nonce = NID_undef;
  int transaction_id = NID_undef;
  int fail_info_text = NID_undef;
};

// Registered once per process (or found, when another part registered them).
const Nids& nids();

// messageType values
constexpr const char* kPkcsReq = "19";
constexpr const char* kRenewalReq = "17";
constexpr const char* kCertPoll = "20";
constexpr const char* kCertRep = "3";

// An OpenSSL operation with the key failed: when the key's own error is known
// (opts.key_error: a device error, a pulled-out token), report it with its
// exit code; otherwise OpenSSL's with CODE.
[[noreturn]] void key_op_failed(const Options& opts, ExitCode code, const std::string& what);

ossl::Bytes random_bytes(std::size_t n);

// ---- small helpers and certificates (scep_ca.cpp) ---------------------------------

void say(const Options& o, const std::string& msg);
std::string lower(std::string s);
bool same_cert(X509* a, X509* b);
bool is_ca_cert(X509* c);
std::string subject_of(X509* c);

// ---- the requests (scep_request.cpp) -----------------------------------------------

// The transient self-signed certificate that signs our messages and that the
// CA encrypts its answer to: the CSR's subject and public key, signed by KEY.
ossl::X509Ptr make_signer_cert(const Options& opts, X509_REQ* csr, EVP_PKEY* key);

struct Request {
  std::string transaction_id;
  X509* signer = nullptr;
  EVP_PKEY* key = nullptr;
  X509* recipient = nullptr;
  const EVP_CIPHER* cipher = nullptr;
  const EVP_MD* md = nullptr;
};

// pkiMessage: SignedData(data = EnvelopedData(inner)) with the SCEP attributes.
ossl::Bytes build_message(const Options& opts, const Request& rq, const char* message_type, const ossl::Bytes& nonce,
                          const ossl::Bytes& inner);

// IssuerAndSubject ::= SEQUENCE { issuer Name, subject Name }  (CertPoll content)
ossl::Bytes issuer_and_subject(X509* ca, X509_REQ* csr);

// ---- the answer (scep_certrep.cpp) ------------------------------------------------

struct CertRep {
  std::string status;
  std::string fail_info;
  std::string fail_text;
  ossl::Bytes envelope;             // SUCCESS: the EnvelopedData DER
  std::vector<ossl::X509Ptr> certs; // certificates carried in the SignedData
};

[[noreturn]] void protocol_error(const Options& opts, const std::string& what);

// The answer DER checked: signed by a certificate of CA, a CertRep for
// transaction TID answering NONCE.
CertRep parse_cert_rep(const Options& opts, const CaInfo& ca, const ossl::Bytes& der, const std::string& tid,
                       const ossl::Bytes& nonce);

// The sentence and hint for a FAILURE's failInfo.
std::string fail_sentence(const std::string& fail_info);
std::string fail_hint(const std::string& fail_info);

// The issued certificate: the one in the degenerate PKCS#7 whose public key is the CSR's.
Issued open_success(const Options& opts, const CaInfo& ca, CertRep& rep, X509_REQ* csr, EVP_PKEY* key, X509* signer);

} // namespace tokenprov::scep::detail
