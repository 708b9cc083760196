// SPDX-License-Identifier: Apache-2.0
// SCEP client, RFC 8894: GetCACaps, GetCACert, PKCSReq, CertPoll.
#include "tokenprov/scep.hpp"

#include "scep_http.hpp"
#include "tokenprov/certs.hpp"
#include "tokenprov/interrupt.hpp"
#include "tokenprov/token_pkey.hpp"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

namespace tokenprov::scep {

using ossl::BioPtr;
using ossl::Bytes;
using ossl::Pkcs7Ptr;
using ossl::X509Ptr;

namespace {

// An OpenSSL operation with the token key failed: when the token is why (a
// device error, a pulled-out token), report its error with its exit code;
// otherwise OpenSSL's with CODE.
[[noreturn]] void key_op_failed(ExitCode code, const std::string& what) {
  if (auto e = take_token_error()) {
    ERR_clear_error();
    try {
      std::rethrow_exception(e);
    } catch (const Error& err) {
      throw Error(err.code(), what + ": " + err.what() + ".", err.hint());
    }
  }
  ossl::fail_ssl(code, what);
}

// ---- SCEP attribute OIDs -----------------------------------------------------

struct Nids {
  int message_type = NID_undef;
  int pki_status = NID_undef;
  int fail_info = NID_undef;
  int sender_nonce = NID_undef;
  int recipient_nonce = NID_undef;
  int transaction_id = NID_undef;
  int fail_info_text = NID_undef;
};

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

// A stack that does not own its certificates.
struct X509StackFree {
  void operator()(STACK_OF(X509) * s) const noexcept { sk_X509_free(s); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackFree>;

constexpr const char* kPkcsReq = "19";
constexpr const char* kRenewalReq = "17";
constexpr const char* kCertPoll = "20";
constexpr const char* kCertRep = "3";

void say(const Options& o, const std::string& msg) {
  if (o.progress) o.progress(msg);
}

std::string lower(std::string s) {
  for (auto& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string base64(const Bytes& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), in.data(), static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

// ---- certificates ----------------------------------------------------------------

bool same_cert(X509* a, X509* b) {
  return X509_cmp(a, b) == 0;
}

// GetCACert answers: one DER certificate (x-x509-ca-cert), a degenerate
// PKCS#7 (x-x509-ca-ra-cert), or - leniently - the same in PEM: what the one
// certificate-bundle reader (certs.hpp) reads.
std::vector<X509Ptr> parse_ca_answer(const Options& opts, const Bytes& body) {
  try {
    return load_certificates(body, "the GetCACert answer");
  } catch (const Error&) {
    ERR_clear_error();
    fail(ExitCode::Ca,
         "The SCEP server at " + opts.url +
             " answered GetCACert with data that is neither a certificate nor a PKCS#7 certificate bundle.",
         "Check that the URL points at a SCEP endpoint.");
  }
}

bool is_ca_cert(X509* c) {
  return X509_check_ca(c) > 0;
}

void classify(CaInfo& info) {
  if (info.certs.size() == 1) {
    info.ca = ossl::dup(info.certs[0].get());
    info.ra_encrypt = ossl::dup(info.certs[0].get());
    return;
  }
  std::vector<X509*> ras, cas;
  for (auto& c : info.certs)
    (is_ca_cert(c.get()) ? cas : ras).push_back(c.get());
  // The issuing CA: the one that issued the RA certificate, else a CA that
  // issued no other CA in the list (the bottom of the chain), else the first.
  X509* ca = nullptr;
  for (X509* r : ras)
    for (X509* c : cas)
      if (!ca && X509_check_issued(c, r) == X509_V_OK) ca = c;
  if (!ca) {
    for (X509* c : cas) {
      bool issued_other = false;
      for (X509* o : cas)
        if (o != c && X509_check_issued(c, o) == X509_V_OK && !same_cert(c, o)) issued_other = true;
      if (!issued_other) {
        ca = c;
        break;
      }
    }
  }
  if (!ca) ca = cas.empty() ? info.certs[0].get() : cas[0];
  // The encryption certificate: an RA certificate allowing key encipherment,
  // else any RA certificate, else the CA.
  X509* enc = nullptr;
  for (X509* r : ras) {
    std::uint32_t ku = X509_get_key_usage(r);
    if (!enc && (ku == UINT32_MAX || (ku & KU_KEY_ENCIPHERMENT))) enc = r;
  }
  if (!enc && !ras.empty()) enc = ras[0];
  if (!enc) enc = ca;
  info.ca = ossl::dup(ca);
  info.ra_encrypt = ossl::dup(enc);
}

std::string subject_of(X509* c) {
  return ossl::name_oneline(X509_get_subject_name(c));
}

// ---- PKCS#7 message building ---------------------------------------------------

Bytes der_of(PKCS7* p7) {
  int n = i2d_PKCS7(p7, nullptr);
  if (n <= 0) ossl::fail_ssl(ExitCode::Internal, "Cannot encode a PKCS#7 message");
  Bytes out(static_cast<std::size_t>(n));
  unsigned char* p = out.data();
  i2d_PKCS7(p7, &p);
  return out;
}

Bytes random_bytes(std::size_t n) {
  Bytes out(n);
  if (RAND_bytes(out.data(), static_cast<int>(n)) != 1) ossl::fail_ssl(ExitCode::Internal, "No random bytes");
  return out;
}

// The transient self-signed certificate that signs our messages and that the
// CA encrypts its answer to: the CSR's subject and public key, signed by KEY.
X509Ptr make_signer_cert(X509_REQ* csr, EVP_PKEY* key) {
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
    key_op_failed(ExitCode::Token, "The enrollment key could not sign the transient SCEP signer certificate");
  return c;
}

void add_string_attr(PKCS7_SIGNER_INFO* si, int nid, int type, const std::string& value) {
  ASN1_STRING* s = ASN1_STRING_type_new(type);
  if (!s || !ASN1_STRING_set(s, value.data(), static_cast<int>(value.size())) ||
      !PKCS7_add_signed_attribute(si, nid, type, s)) {
    ASN1_STRING_free(s);
    ossl::fail_ssl(ExitCode::Internal, "Cannot add a SCEP attribute");
  }
}

struct Request {
  std::string transaction_id;
  X509* signer = nullptr;
  EVP_PKEY* key = nullptr;
  X509* recipient = nullptr;
  const EVP_CIPHER* cipher = nullptr;
  const EVP_MD* md = nullptr;
};

// pkiMessage: SignedData(data = EnvelopedData(inner)) with the SCEP attributes.
Bytes build_message(const Request& rq, const char* message_type, const Bytes& nonce, const Bytes& inner) {
  X509StackPtr recips(sk_X509_new_null());
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
    key_op_failed(ExitCode::Token, "The enrollment key could not sign the SCEP request");
  return der_of(sd.get());
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

// ---- CertRep parsing -------------------------------------------------------------

std::optional<std::string> attr_string(PKCS7_SIGNER_INFO* si, int nid) {
  ASN1_TYPE* t = PKCS7_get_signed_attribute(si, nid);
  if (!t) return std::nullopt;
  switch (t->type) {
  case V_ASN1_PRINTABLESTRING:
  case V_ASN1_UTF8STRING:
  case V_ASN1_IA5STRING:
  case V_ASN1_T61STRING:
  case V_ASN1_OCTET_STRING:
  case V_ASN1_VISIBLESTRING: {
    const ASN1_STRING* s = t->value.asn1_string;
    return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<std::size_t>(ASN1_STRING_length(s)));
  }
  default:
    return std::nullopt;
  }
}

struct CertRep {
  std::string status;
  std::string fail_info;
  std::string fail_text;
  Bytes envelope;             // SUCCESS: the EnvelopedData DER
  std::vector<X509Ptr> certs; // certificates carried in the SignedData
};

[[noreturn]] void protocol_error(const Options& opts, const std::string& what) {
  fail(ExitCode::Ca, "The SCEP server at " + opts.url + " sent an answer that breaks the protocol: " + what + ".",
       "Check that the URL points at the SCEP service and the CA is configured correctly.");
}

CertRep parse_cert_rep(const Options& opts, const CaInfo& ca, const Bytes& der, const std::string& tid,
                       const Bytes& nonce) {
  const unsigned char* p = der.data();
  Pkcs7Ptr p7(d2i_PKCS7(nullptr, &p, static_cast<long>(der.size())));
  if (!p7) {
    ERR_clear_error();
    protocol_error(opts, "the answer is not a PKCS#7 message");
  }
  if (!PKCS7_type_is_signed(p7.get())) protocol_error(opts, "the answer is not a signed PKCS#7 message");

  // The signature must come from a certificate GetCACert gave us (the
  // fingerprint-checked set): the message's own certificates are not trusted.
  X509StackPtr trusted(sk_X509_new_null());
  for (auto& c : ca.certs)
    sk_X509_push(trusted.get(), c.get());
  BioPtr out(BIO_new(BIO_s_mem()));
  BioPtr empty;
  if (PKCS7_get_detached(p7.get())) empty.reset(BIO_new_mem_buf("", 0));
  if (PKCS7_verify(p7.get(), trusted.get(), nullptr, empty.get(), out.get(),
                   PKCS7_NOVERIFY | PKCS7_NOINTERN | PKCS7_BINARY) != 1) {
    std::string why = ossl::last_error();
    fail(ExitCode::Ca,
         "The answer from the SCEP server at " + opts.url +
             " is not validly signed by the CA or RA certificate it published (" + why + ").",
         "Someone may be tampering with the connection, or the CA is misconfigured; ask its operator.");
  }
  STACK_OF(PKCS7_SIGNER_INFO)* sis = PKCS7_get_signer_info(p7.get());
  if (sk_PKCS7_SIGNER_INFO_num(sis) < 1) protocol_error(opts, "the answer has no signer");
  PKCS7_SIGNER_INFO* si = sk_PKCS7_SIGNER_INFO_value(sis, 0);
  const Nids& n = nids();

  auto mt = attr_string(si, n.message_type);
  if (!mt) protocol_error(opts, "the answer has no messageType");
  if (*mt != kCertRep) protocol_error(opts, "the answer's messageType is " + *mt + ", not CertRep (3)");
  auto t = attr_string(si, n.transaction_id);
  if (!t || *t != tid) protocol_error(opts, "the answer's transactionID does not match the request's");
  auto rn = attr_string(si, n.recipient_nonce);
  if (!rn || rn->size() != nonce.size() || std::memcmp(rn->data(), nonce.data(), nonce.size()) != 0)
    protocol_error(opts, "the answer's recipientNonce does not match the request's senderNonce");
  auto st = attr_string(si, n.pki_status);
  if (!st) protocol_error(opts, "the answer has no pkiStatus");

  CertRep r;
  r.status = *st;
  if (auto fi = attr_string(si, n.fail_info)) r.fail_info = *fi;
  if (auto ft = attr_string(si, n.fail_info_text)) r.fail_text = *ft;
  char* data = nullptr;
  long len = BIO_get_mem_data(out.get(), &data);
  if (len > 0) r.envelope.assign(reinterpret_cast<std::uint8_t*>(data), reinterpret_cast<std::uint8_t*>(data) + len);
  r.certs = certs_of_pkcs7(p7.get());
  return r;
}

std::string fail_sentence(const std::string& fail_info) {
  if (fail_info == "0") return "the CA does not support the algorithm the request used (badAlg)";
  if (fail_info == "1") return "the request failed the CA's integrity or signature check (badMessageCheck)";
  if (fail_info == "2")
    return "the CA refused the request as not permitted (badRequest), for example because of a wrong or "
           "expired challenge password, or because the request was rejected by the CA's policy or operator";
  if (fail_info == "3") return "the request's signing time is too far from the CA's clock (badTime)";
  if (fail_info == "4") return "the CA could not identify the certificate the request refers to (badCertId)";
  if (fail_info.empty()) return "the CA gave no reason";
  return "the CA gave an unknown failure reason (failInfo " + fail_info + ")";
}

std::string fail_hint(const std::string& fail_info) {
  if (fail_info == "2")
    return "Check the challenge password (it may be wrong, used up or expired) and ask the CA operator whether the "
           "request needs approval; then run the command again.";
  if (fail_info == "3") return "Check this computer's clock, then run the command again.";
  if (fail_info == "0")
    return "The CA may need another key type or digest; ask its operator which algorithms it accepts.";
  return "Ask the CA operator to check the CA's logs for this request.";
}

// ---- decrypting the CertRep envelope ----------------------------------------------
//
// Done by hand rather than with PKCS7_decrypt for two reasons: the key is only
// ever asked for an EVP decrypt of the wrapped content key (so a token-backed
// key works), and the content cipher may be one OpenSSL 3 keeps in its legacy
// provider (micromdm/scep encrypts its answers with single DES-CBC), which we
// fetch from a private library context so the process-wide one is untouched.

using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, ossl::Deleter<EVP_CIPHER_CTX_free>>;
using CipherPtr = std::unique_ptr<EVP_CIPHER, ossl::Deleter<EVP_CIPHER_free>>;

OSSL_LIB_CTX* legacy_ctx() {
  static OSSL_LIB_CTX* ctx = nullptr; // lives as long as the process
  static std::once_flag once;
  std::call_once(once, [] {
    OSSL_LIB_CTX* c = OSSL_LIB_CTX_new();
    if (c && OSSL_PROVIDER_load(c, "legacy") && OSSL_PROVIDER_load(c, "default")) {
      ctx = c;
    } else if (c) {
      OSSL_LIB_CTX_free(c);
    }
    ERR_clear_error();
  });
  return ctx;
}

CipherPtr fetch_cipher(const ASN1_OBJECT* oid) {
  char name[128];
  OBJ_obj2txt(name, sizeof name, oid, 0);
  CipherPtr c(EVP_CIPHER_fetch(nullptr, name, nullptr));
  if (!c && legacy_ctx()) c.reset(EVP_CIPHER_fetch(legacy_ctx(), name, nullptr));
  ERR_clear_error();
  return c;
}

struct Wiped : Bytes {
  using Bytes::Bytes;
  ~Wiped() { OPENSSL_cleanse(data(), size()); }
};

Bytes decrypt_envelope(const Options& opts, PKCS7* env, EVP_PKEY* key, X509* signer) {
  const std::string what = "Cannot decrypt the certificate the SCEP server at " + opts.url + " sent";
  PKCS7_ENVELOPE* ed = env->d.enveloped;
  if (!ed || !ed->enc_data || !ed->enc_data->algorithm) protocol_error(opts, "the encrypted envelope is incomplete");

  // Our RecipientInfo: issuer and serial of the transient signer certificate.
  PKCS7_RECIP_INFO* mine = nullptr;
  for (int i = 0; i < sk_PKCS7_RECIP_INFO_num(ed->recipientinfo); ++i) {
    PKCS7_RECIP_INFO* ri = sk_PKCS7_RECIP_INFO_value(ed->recipientinfo, i);
    if (ri && ri->issuer_and_serial &&
        X509_NAME_cmp(ri->issuer_and_serial->issuer, X509_get_issuer_name(signer)) == 0 &&
        ASN1_INTEGER_cmp(ri->issuer_and_serial->serial, X509_get0_serialNumber(signer)) == 0)
      mine = ri;
  }
  if (!mine || !mine->enc_key) protocol_error(opts, "the answer is not encrypted to this request's certificate");

  // The content-encryption key, unwrapped with the enrollment key (RSA PKCS#1 v1.5).
  ossl::EvpPkeyCtxPtr pctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  std::size_t klen = 0;
  if (!pctx || EVP_PKEY_decrypt_init(pctx.get()) <= 0 ||
      EVP_PKEY_CTX_set_rsa_padding(pctx.get(), RSA_PKCS1_PADDING) <= 0)
    ossl::fail_ssl(ExitCode::Token, what + ": the enrollment key cannot decrypt");
  if (EVP_PKEY_decrypt(pctx.get(), nullptr, &klen, ASN1_STRING_get0_data(mine->enc_key),
                       static_cast<std::size_t>(ASN1_STRING_length(mine->enc_key))) <= 0)
    key_op_failed(ExitCode::Ca, what + ": its wrapped content key is unusable");
  Wiped cek(klen);
  if (EVP_PKEY_decrypt(pctx.get(), cek.data(), &klen, ASN1_STRING_get0_data(mine->enc_key),
                       static_cast<std::size_t>(ASN1_STRING_length(mine->enc_key))) <= 0)
    key_op_failed(ExitCode::Ca, what + ": unwrapping its content key with the enrollment key failed");
  cek.resize(klen);

  X509_ALGOR* alg = ed->enc_data->algorithm;
  CipherPtr cipher = fetch_cipher(alg->algorithm);
  if (cipher) say(opts, std::string("The answer is encrypted with ") + EVP_CIPHER_get0_name(cipher.get()));
  if (!cipher) {
    char name[128];
    OBJ_obj2txt(name, sizeof name, alg->algorithm, 0);
    fail(ExitCode::Ca, what + ": it is encrypted with " + name + ", which this OpenSSL cannot decrypt.",
         "Ask the CA operator to use AES or triple DES.");
  }
  CipherCtxPtr cctx(EVP_CIPHER_CTX_new());
  if (!cctx || EVP_DecryptInit_ex2(cctx.get(), cipher.get(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_asn1_to_param(cctx.get(), alg->parameter) <= 0)
    ossl::fail_ssl(ExitCode::Ca, what + ": bad cipher parameters");
  if (static_cast<int>(cek.size()) != EVP_CIPHER_CTX_get_key_length(cctx.get()) &&
      EVP_CIPHER_CTX_set_key_length(cctx.get(), static_cast<int>(cek.size())) != 1)
    fail(ExitCode::Ca, what + ": its content key has the wrong length for the cipher.");
  if (EVP_DecryptInit_ex2(cctx.get(), nullptr, cek.data(), nullptr, nullptr) != 1)
    ossl::fail_ssl(ExitCode::Ca, what + ": cannot start the cipher");

  ASN1_OCTET_STRING* body = ed->enc_data->enc_data;
  if (!body) protocol_error(opts, "the encrypted envelope holds no data");
  const int inlen = ASN1_STRING_length(body);
  Wiped plain(static_cast<std::size_t>(inlen) + static_cast<std::size_t>(EVP_CIPHER_CTX_get_block_size(cctx.get())) +
              1);
  int n1 = 0, n2 = 0;
  if (EVP_DecryptUpdate(cctx.get(), plain.data(), &n1, ASN1_STRING_get0_data(body), inlen) != 1 ||
      EVP_DecryptFinal_ex(cctx.get(), plain.data() + n1, &n2) != 1)
    ossl::fail_ssl(ExitCode::Ca, what + ": the decryption failed (wrong key or corrupt data)");
  return Bytes(plain.begin(), plain.begin() + n1 + n2);
}

// The issued certificate: the one in the degenerate PKCS#7 whose public key is the CSR's.
Issued open_success(const Options& opts, const CaInfo& ca, CertRep& rep, X509_REQ* csr, EVP_PKEY* key, X509* signer) {
  if (rep.envelope.empty()) protocol_error(opts, "the SUCCESS answer carries no certificate");
  const unsigned char* p = rep.envelope.data();
  Pkcs7Ptr env(d2i_PKCS7(nullptr, &p, static_cast<long>(rep.envelope.size())));
  if (!env || !PKCS7_type_is_enveloped(env.get())) {
    ERR_clear_error();
    protocol_error(opts, "the SUCCESS answer's content is not an encrypted PKCS#7 envelope");
  }
  Bytes plain = decrypt_envelope(opts, env.get(), key, signer);
  const unsigned char* q = plain.data();
  Pkcs7Ptr deg(plain.empty() ? nullptr : d2i_PKCS7(nullptr, &q, static_cast<long>(plain.size())));
  std::vector<X509Ptr> certs = certs_of_pkcs7(deg.get());
  ERR_clear_error();
  if (certs.empty()) protocol_error(opts, "the SUCCESS answer's envelope holds no certificates");

  Bytes want = ossl::spki_der(X509_REQ_get0_pubkey(csr));
  Issued out;
  for (auto& c : certs)
    if (!out.cert && ossl::spki_der(c.get()) == want) out.cert = ossl::dup(c.get());
  if (!out.cert)
    fail(ExitCode::Ca,
         "The SCEP server at " + opts.url + " issued a certificate, but none of the " + std::to_string(certs.size()) +
             " certificate(s) it sent carries the requested public key.",
         "Ask the CA operator to check the CA's logs for this request.");

  // Chain: every CA certificate we have seen, once, without the leaf or our signer.
  auto add = [&](X509* c) {
    if (!is_ca_cert(c) || same_cert(c, out.cert.get()) || same_cert(c, signer)) return;
    for (auto& have : out.chain)
      if (same_cert(have.get(), c)) return;
    out.chain.push_back(ossl::dup(c));
  };
  for (auto& c : ca.certs)
    add(c.get());
  for (auto& c : certs)
    add(c.get());
  for (auto& c : rep.certs)
    add(c.get());
  return out;
}

const EVP_CIPHER* pick_cipher(const std::vector<std::string>& caps) {
  if (has_cap(caps, "AES") || has_cap(caps, "SCEPStandard")) return EVP_aes_128_cbc();
  return EVP_des_ede3_cbc();
}

const EVP_MD* pick_md(const std::vector<std::string>& caps) {
  if (has_cap(caps, "SHA-256") || has_cap(caps, "SCEPStandard")) return EVP_sha256();
  if (has_cap(caps, "SHA-512")) return EVP_sha512();
  if (has_cap(caps, "SHA-1")) return EVP_sha1();
  return EVP_sha256();
}

void check_url(const Options& opts) {
  std::string u = lower(opts.url.substr(0, 8));
  if (u.rfind("http://", 0) != 0 && u.rfind("https://", 0) != 0)
    fail(ExitCode::Usage, "The SCEP URL '" + opts.url + "' is not an http:// or https:// URL.",
         "Pass the server's SCEP endpoint, for example http://ca.example.com/scep.");
}

} // namespace

// ---- public API ------------------------------------------------------------------

bool has_cap(const std::vector<std::string>& caps, const std::string& cap) {
  std::string want = lower(cap);
  return std::any_of(caps.begin(), caps.end(), [&](const std::string& c) { return lower(c) == want; });
}

std::string normalize_fingerprint(const std::string& fingerprint) {
  std::string out;
  for (char ch : fingerprint) {
    auto c = static_cast<unsigned char>(ch);
    if (c == ':' || std::isspace(c)) continue;
    if (!std::isxdigit(c))
      fail(ExitCode::Usage, "The CA fingerprint '" + fingerprint + "' is not a SHA-256 fingerprint in hex.",
           "Pass the 64 hex digits of the CA certificate's SHA-256 fingerprint, with or without colons.");
    out.push_back(static_cast<char>(std::tolower(c)));
  }
  if (!out.empty() && out.size() != 64)
    fail(ExitCode::Usage,
         "The CA fingerprint '" + fingerprint + "' has " + std::to_string(out.size()) +
             " hex digits; a SHA-256 fingerprint has 64.",
         "Pass the 64 hex digits of the CA certificate's SHA-256 fingerprint, with or without colons.");
  return out;
}

CaInfo get_ca(const Options& opts) {
  check_url(opts);
  std::string pinned = normalize_fingerprint(opts.ca_fingerprint);
  CaInfo info;

  say(opts, "Asking " + opts.url + " for its capabilities (GetCACaps)");
  Bytes caps = http(opts, op_url(opts.url, "GetCACaps"), "GetCACaps", nullptr);
  {
    std::string text(caps.begin(), caps.end());
    std::size_t pos = 0;
    while (pos <= text.size()) {
      std::size_t nl = text.find('\n', pos);
      std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
      while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back())))
        line.pop_back();
      std::size_t b = 0;
      while (b < line.size() && std::isspace(static_cast<unsigned char>(line[b])))
        ++b;
      if (b < line.size()) info.caps.push_back(line.substr(b));
      if (nl == std::string::npos) break;
      pos = nl + 1;
    }
  }

  say(opts, "Fetching the CA certificate (GetCACert)");
  Bytes cacert = http(opts, op_url(opts.url, "GetCACert"), "GetCACert", nullptr);
  info.certs = parse_ca_answer(opts, cacert);
  classify(info);

  std::string ca_fp = ossl::cert_fingerprint_sha256(info.ca.get());
  std::string ca_subject = subject_of(info.ca.get());
  if (!pinned.empty()) {
    bool match = std::any_of(info.certs.begin(), info.certs.end(),
                             [&](const X509Ptr& c) { return ossl::cert_fingerprint_sha256(c.get()) == pinned; });
    if (!match)
      fail(ExitCode::Ca,
           "The CA certificate from " + opts.url + " (" + ca_subject + ", SHA-256 fingerprint " + ca_fp +
               ") does not match the pinned fingerprint " + pinned + ".",
           "Nothing was sent to the CA. Check the fingerprint with the CA operator; if the CA was replaced, pass "
           "the new one with --ca-fingerprint.");
    say(opts, "CA certificate " + ca_subject + " matches the pinned fingerprint");
  } else if (opts.interactive && opts.confirm_ca) {
    if (!opts.confirm_ca(ca_fp, ca_subject))
      fail(ExitCode::Ca,
           "The CA certificate from " + opts.url + " (" + ca_subject + ", SHA-256 fingerprint " + ca_fp +
               ") was not accepted.",
           "Check the fingerprint with the CA operator and pass it with --ca-fingerprint " + ca_fp + ".");
  } else {
    fail(ExitCode::Ca,
         "The CA certificate from " + opts.url + " is not pinned: its SHA-256 fingerprint is " + ca_fp + " (subject " +
             ca_subject + "), and without a terminal it cannot be confirmed.",
         "Check that fingerprint with the CA operator, then pass it with --ca-fingerprint " + ca_fp + ".");
  }
  return info;
}

namespace {
// Checks the request and its key before anything is sent; returns the CSR's public key.
EVP_PKEY* checked_request(const Options& opts, X509_REQ* csr, EVP_PKEY* key, bool renewal = false) {
  if (!csr || !key) fail(ExitCode::Internal, "scep::enroll needs a CSR and a key.");
  EVP_PKEY* csr_pub = X509_REQ_get0_pubkey(csr);
  if (!csr_pub) ossl::fail_ssl(ExitCode::BadInput, "The certificate request has no readable public key");
  if (EVP_PKEY_get_base_id(csr_pub) != EVP_PKEY_RSA)
    fail(ExitCode::Usage, "SCEP enrollment needs an RSA key; this request's key is not RSA.",
         "Generate the key with --algorithm rsa2048 (or rsa3072/rsa4096) for SCEP.");
  if (renewal) return csr_pub; // RenewalReq: signed by the current key, which a rekey's request does not carry
  if (ossl::spki_der(csr_pub) != ossl::spki_der(key))
    fail(ExitCode::Internal, "The certificate request's public key is not the enrollment key's.");
  if (X509_REQ_get_attr_by_NID(csr, NID_pkcs9_challengePassword, -1) < 0)
    say(opts, "Note: the certificate request carries no challenge password");
  return csr_pub;
}

Issued enroll_with(const Options& opts, const CaInfo& ca, X509_REQ* csr, EVP_PKEY* key, EVP_PKEY* csr_pub,
                   X509* current = nullptr) {
  Request rq;
  // PKCSReq: a transient self-signed signer; RenewalReq: the current certificate (RFC 8894 section 3.3.1.2).
  X509Ptr signer = current ? ossl::dup(current) : make_signer_cert(csr, key);
  rq.signer = signer.get();
  const char* req_type = current ? kRenewalReq : kPkcsReq;
  const std::string req_name = current ? "RenewalReq" : "PKCSReq";
  rq.key = key;
  rq.recipient = ca.ra_encrypt.get();
  rq.cipher = pick_cipher(ca.caps);
  rq.md = pick_md(ca.caps);
  rq.transaction_id = ossl::sha256_hex(ossl::spki_der(csr_pub));
  const bool post = !opts.use_get && (has_cap(ca.caps, "POSTPKIOperation") || has_cap(ca.caps, "SCEPStandard"));

  auto send = [&](const char* type, const Bytes& inner, const std::string& name) {
    Bytes nonce = random_bytes(16);
    Bytes msg = build_message(rq, type, nonce, inner);
    Bytes r;
    if (post) {
      r = http(opts, op_url(opts.url, "PKIOperation"), "PKIOperation (" + name + ")", &msg);
    } else {
      std::string u = op_url(opts.url, "PKIOperation") + "&message=" + url_escape(base64(msg));
      r = http(opts, u, "PKIOperation (" + name + ")", nullptr);
    }
    return parse_cert_rep(opts, ca, r, rq.transaction_id, nonce);
  };

  Bytes csr_der = ossl::to_der(csr);
  say(opts, "Sending the enrollment request (" + req_name + ", " + (post ? "POST" : "GET") + ", " +
                OBJ_nid2sn(EVP_CIPHER_get_nid(rq.cipher)) + ", transaction " + rq.transaction_id + ")");
  CertRep rep;
  try {
    rep = send(req_type, csr_der, req_name);
  } catch (...) {
    OPENSSL_cleanse(csr_der.data(), csr_der.size()); // it carries the challenge password
    throw;
  }
  OPENSSL_cleanse(csr_der.data(), csr_der.size());

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(std::max(0, opts.wait_seconds));
  while (rep.status == "3") {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline)
      fail(ExitCode::Ca,
           "The enrollment request (transaction " + rq.transaction_id + ") is still pending at the CA " + opts.url +
               (opts.wait_seconds > 0 ? " after waiting " + std::to_string(opts.wait_seconds) + " seconds." : "."),
           "Ask the CA operator to approve it, then run the same command again later with the same key.");
    auto step = std::chrono::seconds(std::max(1, opts.poll_interval_seconds));
    auto left = std::chrono::duration_cast<std::chrono::seconds>(deadline - now);
    if (left < step) step = std::max(left, std::chrono::seconds(1));
    say(opts, "The CA has not decided yet (PENDING); asking again in " + std::to_string(step.count()) + " s");
    interruptible_sleep(step, ExitCode::Ca, "while the enrollment request was pending at the CA " + opts.url);
    rep = send(kCertPoll, issuer_and_subject(ca.ca.get(), csr), "CertPoll");
  }

  if (rep.status == "2") {
    std::string sentence = fail_sentence(rep.fail_info);
    if (!rep.fail_text.empty())
      sentence += " (the CA says: " + body_snippet(Bytes(rep.fail_text.begin(), rep.fail_text.end())) + ")";
    fail(ExitCode::Ca, "The CA at " + opts.url + " rejected the enrollment request: " + sentence + ".",
         fail_hint(rep.fail_info));
  }
  if (rep.status != "0") protocol_error(opts, "the pkiStatus '" + rep.status + "' is not one SCEP defines");

  say(opts, "The CA issued the certificate; decrypting it");
  Issued out = open_success(opts, ca, rep, csr, key, signer.get());
  say(opts, "Issued: " + subject_of(out.cert.get()) + ", serial " + ossl::serial_hex(out.cert.get()));
  return out;
}
} // namespace

Issued enroll(const Options& opts, X509_REQ* csr, EVP_PKEY* key) {
  EVP_PKEY* csr_pub = checked_request(opts, csr, key);
  CaInfo ca = get_ca(opts);
  return enroll_with(opts, ca, csr, key, csr_pub);
}

Issued enroll(const Options& opts, const CaInfo& ca, X509_REQ* csr, EVP_PKEY* key) {
  EVP_PKEY* csr_pub = checked_request(opts, csr, key);
  if (!ca.ca || !ca.ra_encrypt) fail(ExitCode::Internal, "scep::enroll was given an empty CaInfo.");
  return enroll_with(opts, ca, csr, key, csr_pub);
}

Issued renew(const Options& opts, const CaInfo& ca, X509_REQ* csr, EVP_PKEY* key, X509* current) {
  if (!current) fail(ExitCode::Internal, "scep::renew needs the current certificate.");
  EVP_PKEY* csr_pub = checked_request(opts, csr, key, true);
  if (ossl::spki_der(current) != ossl::spki_der(key))
    fail(ExitCode::Internal, "The current certificate is not the signing key's.");
  if (!ca.ca || !ca.ra_encrypt) fail(ExitCode::Internal, "scep::renew was given an empty CaInfo.");
  return enroll_with(opts, ca, csr, key, csr_pub, current);
}

} // namespace tokenprov::scep
