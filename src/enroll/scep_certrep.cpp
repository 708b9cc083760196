// SPDX-License-Identifier: Apache-2.0
// SCEP client, RFC 8894: the CertRep answer, its signature and attributes
// checked, its envelope decrypted with the enrollment key, the issued
// certificate and its chain taken out.
#include "scep_detail.hpp"
#include "tokenprov/certs.hpp"

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>

#include <cstring>
#include <mutex>
#include <optional>

namespace tokenprov::scep {

using ossl::BioPtr;
using ossl::Bytes;
using ossl::Pkcs7Ptr;
using ossl::X509Ptr;

using namespace detail;

namespace {

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
    key_op_failed(opts, ExitCode::Ca, what + ": its wrapped content key is unusable");
  Wiped cek(klen);
  if (EVP_PKEY_decrypt(pctx.get(), cek.data(), &klen, ASN1_STRING_get0_data(mine->enc_key),
                       static_cast<std::size_t>(ASN1_STRING_length(mine->enc_key))) <= 0)
    key_op_failed(opts, ExitCode::Ca, what + ": unwrapping its content key with the enrollment key failed");
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

} // namespace

namespace detail {

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
  ossl::X509RefStackPtr trusted(sk_X509_new_null());
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

} // namespace detail

} // namespace tokenprov::scep
