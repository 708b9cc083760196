// SPDX-License-Identifier: Apache-2.0
// SCEP client, RFC 8894: the messages it sends (PKCSReq, RenewalReq, CertPoll),
// a PKCS#7 SignedData around an EnvelopedData, and the transient signer certificate.
#include "scep_detail.hpp"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/rand.h>

#include <mutex>

namespace tokenprov::scep {

using ossl::BioPtr;
using ossl::Bytes;
using ossl::Pkcs7Ptr;
using ossl::X509Ptr;

namespace {

int nid_for(const char* oid, const char* sn, const char* ln) {
  // Another part of the program may have registered the OID already.
  int nid = OBJ_txt2nid(oid);
  if (nid != NID_undef) return nid;
  nid = OBJ_create(oid, sn, ln);
  if (nid == NID_undef) nid = OBJ_create(oid, nullptr, nullptr); // names taken: register the number only
  if (nid == NID_undef) ossl::fail_ssl(ExitCode::Internal, std::string("Cannot register the SCEP OID ") + oid);
  ERR_clear_error();
  return nid;
}

Bytes der_of(PKCS7* p7) {
  int n = i2d_PKCS7(p7, nullptr);
  if (n <= 0) ossl::fail_ssl(ExitCode::Internal, "Cannot encode a PKCS#7 message");
  Bytes out(static_cast<std::size_t>(n));
  unsigned char* p = out.data();
  i2d_PKCS7(p7, &p);
  return out;
}

void add_string_attr(PKCS7_SIGNER_INFO* si, int nid, int type, const std::string& value) {
  ASN1_STRING* s = ASN1_STRING_type_new(type);
  if (!s || !ASN1_STRING_set(s, value.data(), static_cast<int>(value.size())) ||
      !PKCS7_add_signed_attribute(si, nid, type, s)) {
    ASN1_STRING_free(s);
    ossl::fail_ssl(ExitCode::Internal, "Cannot add a SCEP attribute");
  }
}

// DER length + SEQUENCE wrapper, for IssuerAndSubject.
void der_put_len(Bytes& out, std::size_t len) {
  if (len < 0x80) {
    out.push_back(static_cast<std::uint8_t>(len));
    return;
  }
  Bytes tmp;
  while (len) {
    tmp.insert(tmp.begin(), static_cast<std::uint8_t>(len & 0xff));
    len >>= 8;
  }
  out.push_back(static_cast<std::uint8_t>(0x80 | tmp.size()));
  out.insert(out.end(), tmp.begin(), tmp.end());
}

Bytes name_der(const X509_NAME* n) {
  int len = i2d_X509_NAME(n, nullptr);
  if (len <= 0) ossl::fail_ssl(ExitCode::Internal, "Cannot encode a name");
  Bytes out(static_cast<std::size_t>(len));
  unsigned char* p = out.data();
  i2d_X509_NAME(n, &p);
  return out;
}

} // namespace

namespace detail {

// When the key's own error is known (opts.key_error), it is the one reported.
[[noreturn]] void key_op_failed(const Options& opts, ExitCode code, const std::string& what) {
  if (auto e = opts.key_error ? opts.key_error() : nullptr) {
    ERR_clear_error();
    try {
      std::rethrow_exception(e);
    } catch (const Error& err) {
      throw Error(err.code(), what + ": " + err.what() + ".", err.hint());
    }
  }
  ossl::fail_ssl(code, what);
}

const Nids& nids() {
  static Nids n;
  static std::once_flag once;
  std::call_once(once, [] {
    n.message_type = nid_for("2.16.840.1.113733.1.9.2", "scepMessageType", "SCEP messageType");
    n.pki_status = nid_for("2.16.840.1.113733.1.9.3", "scepPkiStatus", "SCEP pkiStatus");
    n.fail_info = nid_for("2.16.840.1.113733.1.9.4", "scepFailInfo", "SCEP failInfo");
    n.sender_nonce = nid_for("2.16.840.1.113733.1.9.5", "scepSenderNonce", "SCEP senderNonce");
    n.recipient_nonce = nid_for("2.16.840.1.113733.1.9.6", "scepRecipientNonce", "SCEP recipientNonce");
    n.transaction_id = nid_for("2.16.840.1.113733.1.9.7", "scepTransactionID", "SCEP transactionID");
    n.fail_info_text = nid_for("1.3.6.1.5.5.7.24.1", "scepFailInfoText", "SCEP failInfoText");
  });
  return n;
}

Bytes random_bytes(std::size_t n) {
  Bytes out(n);
  if (RAND_bytes(out.data(), static_cast<int>(n)) != 1) ossl::fail_ssl(ExitCode::Internal, "No random bytes");
  return out;
}

// The transient self-signed certificate that signs our messages and that the
// CA encrypts its answer to: the CSR's subject and public key, signed by KEY.
X509Ptr make_signer_cert(const Options& opts, X509_REQ* csr, EVP_PKEY* key) {
  X509Ptr c(X509_new());
  if (!c) ossl::fail_ssl(ExitCode::Internal, "Cannot allocate a certificate");
  X509_set_version(c.get(), X509_VERSION_3);
  Bytes serial = random_bytes(16);
  serial[0] &= 0x7f;
  serial[0] |= 0x01; // positive, 16 bytes
  std::unique_ptr<BIGNUM, ossl::Deleter<BN_free>> bn(
      BN_bin2bn(serial.data(), static_cast<int>(serial.size()), nullptr));
  if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(c.get())))
    ossl::fail_ssl(ExitCode::Internal, "Cannot set a certificate serial number");
  X509_NAME* subj = X509_REQ_get_subject_name(csr);
  ossl::X509NamePtr fallback;
  if (!subj || X509_NAME_entry_count(subj) == 0) {
    fallback.reset(X509_NAME_new());
    X509_NAME_add_entry_by_txt(fallback.get(), "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>("tokenprov SCEP requester"), -1, -1, 0);
    subj = fallback.get();
  }
  EVP_PKEY* pub = X509_REQ_get0_pubkey(csr);
  if (!X509_set_subject_name(c.get(), subj) || !X509_set_issuer_name(c.get(), subj) || !pub ||
      !X509_set_pubkey(c.get(), pub) || !X509_gmtime_adj(X509_getm_notBefore(c.get()), -3600) ||
      !X509_gmtime_adj(X509_getm_notAfter(c.get()), 7L * 24 * 3600))
    ossl::fail_ssl(ExitCode::Internal, "Cannot fill in the SCEP signer certificate");
  if (X509_sign(c.get(), key, EVP_sha256()) <= 0)
    key_op_failed(opts, ExitCode::Token, "The enrollment key could not sign the transient SCEP signer certificate");
  return c;
}

// pkiMessage: SignedData(data = EnvelopedData(inner)) with the SCEP attributes.
Bytes build_message(const Options& opts, const Request& rq, const char* message_type, const Bytes& nonce,
                    const Bytes& inner) {
  ossl::X509RefStackPtr recips(sk_X509_new_null());
  if (!recips || !sk_X509_push(recips.get(), rq.recipient)) ossl::fail_ssl(ExitCode::Internal, "Out of memory");
  BioPtr in(BIO_new_mem_buf(inner.data(), static_cast<int>(inner.size())));
  Pkcs7Ptr env(PKCS7_encrypt(recips.get(), in.get(), rq.cipher, PKCS7_BINARY));
  if (!env) ossl::fail_ssl(ExitCode::Ca, "Cannot encrypt the request to the CA's certificate");
  Bytes env_der = der_of(env.get());

  Pkcs7Ptr sd(PKCS7_sign(nullptr, nullptr, nullptr, nullptr, PKCS7_PARTIAL | PKCS7_BINARY));
  if (!sd) ossl::fail_ssl(ExitCode::Internal, "Cannot start a PKCS#7 SignedData");
  PKCS7_SIGNER_INFO* si = PKCS7_sign_add_signer(sd.get(), rq.signer, rq.key, rq.md, PKCS7_BINARY | PKCS7_NOSMIMECAP);
  if (!si) ossl::fail_ssl(ExitCode::Token, "Cannot prepare the signature of the SCEP request with the key");
  const Nids& n = nids();
  add_string_attr(si, n.transaction_id, V_ASN1_PRINTABLESTRING, rq.transaction_id);
  add_string_attr(si, n.message_type, V_ASN1_PRINTABLESTRING, message_type);
  add_string_attr(si, n.sender_nonce, V_ASN1_OCTET_STRING, std::string(nonce.begin(), nonce.end()));
  BioPtr data(BIO_new_mem_buf(env_der.data(), static_cast<int>(env_der.size())));
  if (PKCS7_final(sd.get(), data.get(), PKCS7_BINARY) != 1)
    key_op_failed(opts, ExitCode::Token, "The enrollment key could not sign the SCEP request");
  return der_of(sd.get());
}

// IssuerAndSubject ::= SEQUENCE { issuer Name, subject Name }  (CertPoll content)
Bytes issuer_and_subject(X509* ca, X509_REQ* csr) {
  Bytes a = name_der(X509_get_subject_name(ca));
  Bytes b = name_der(X509_REQ_get_subject_name(csr));
  Bytes out{0x30};
  der_put_len(out, a.size() + b.size());
  out.insert(out.end(), a.begin(), a.end());
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

} // namespace detail

} // namespace tokenprov::scep
