// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/certs.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <climits>

namespace tokenprov {

namespace {

void add_pkcs7_certs(PKCS7* p7, std::vector<ossl::X509Ptr>& out) {
  STACK_OF(X509)* certs = nullptr;
  int type = OBJ_obj2nid(p7->type);
  if (type == NID_pkcs7_signed && p7->d.sign)
    certs = p7->d.sign->cert;
  else if (type == NID_pkcs7_signedAndEnveloped && p7->d.signed_and_enveloped)
    certs = p7->d.signed_and_enveloped->cert;
  for (int i = 0; certs && i < sk_X509_num(certs); ++i)
    out.push_back(ossl::dup(sk_X509_value(certs, i)));
}

bool looks_like_pem(std::span<const std::uint8_t> d) {
  static const char tag[] = "-----BEGIN ";
  return std::search(d.begin(), d.end(), tag, tag + sizeof tag - 1) != d.end();
}

} // namespace

std::vector<ossl::X509Ptr> load_certificates(std::span<const std::uint8_t> data, const std::string& source) {
  std::vector<ossl::X509Ptr> out;
  if (data.empty())
    fail(ExitCode::BadInput, "The file '" + source + "' is empty.", "Pass the certificate file the CA handed out.");
  // OpenSSL's memory BIO takes an int length (a negative one means strlen).
  if (data.size() > static_cast<std::size_t>(INT_MAX))
    fail(ExitCode::BadInput, "The file '" + source + "' is too large to be a certificate file.");
  if (looks_like_pem(data)) {
    ossl::BioPtr bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
    for (;;) {
      char* name = nullptr;
      char* header = nullptr;
      unsigned char* der = nullptr;
      long len = 0;
      if (!PEM_read_bio(bio.get(), &name, &header, &der, &len)) {
        unsigned long e = ERR_peek_last_error();
        ERR_clear_error();
        if (ERR_GET_REASON(e) == PEM_R_NO_START_LINE) break;
        fail(ExitCode::BadInput,
             "The PEM file '" + source + "' is corrupt or truncated (block " + std::to_string(out.size() + 1) + ").",
             "Ask the CA for the file again, or check how it was saved.");
      }
      std::string n(name);
      const unsigned char* p = der;
      bool ok = true;
      if (n == "CERTIFICATE" || n == "X509 CERTIFICATE" || n == "TRUSTED CERTIFICATE") {
        X509* c = n == "TRUSTED CERTIFICATE" ? d2i_X509_AUX(nullptr, &p, len) : d2i_X509(nullptr, &p, len);
        if (c)
          out.emplace_back(c);
        else
          ok = false;
      } else if (n == "PKCS7" || n == "CERTIFICATE CHAIN") {
        ossl::Pkcs7Ptr p7(d2i_PKCS7(nullptr, &p, len));
        if (p7)
          add_pkcs7_certs(p7.get(), out);
        else
          ok = false;
      }
      OPENSSL_free(name);
      OPENSSL_free(header);
      OPENSSL_free(der);
      if (!ok) {
        ERR_clear_error();
        fail(ExitCode::BadInput, "The PEM file '" + source + "' holds a " + n + " block that is not valid DER.",
             "Ask the CA for the file again.");
      }
    }
  } else {
    const unsigned char* p = data.data();
    X509* c = d2i_X509(nullptr, &p, static_cast<long>(data.size()));
    if (c && p == data.data() + data.size()) {
      out.emplace_back(c);
    } else {
      X509_free(c);
      p = data.data();
      ossl::Pkcs7Ptr p7(d2i_PKCS7(nullptr, &p, static_cast<long>(data.size())));
      if (p7) add_pkcs7_certs(p7.get(), out);
    }
    ERR_clear_error();
  }
  if (out.empty())
    fail(ExitCode::BadInput, "No certificate could be read from '" + source + "'.",
         "tokenprov reads PEM, DER and PKCS#7 (.p7b/.p7c); check that this is the file the CA issued.");
  return out;
}

std::vector<ossl::X509Ptr> load_certificate_file(const std::string& path, const InputKind& kind) {
  auto data = read_input_file(path, kind);
  return load_certificates(data, path);
}

std::vector<ossl::X509Ptr> certs_of_pkcs7(PKCS7* p7) {
  std::vector<ossl::X509Ptr> out;
  if (p7) add_pkcs7_certs(p7, out);
  return out;
}

std::vector<ossl::X509Ptr> order_chain(X509* start, std::vector<ossl::X509Ptr>& pool) {
  std::vector<ossl::X509Ptr> chain;
  X509* cur = start;
  for (int depth = 0; cur && depth < 16; ++depth) {
    if (cur != start && X509_check_issued(cur, cur) == X509_V_OK) break; // self-signed root reached
    auto best = pool.end();
    for (auto it = pool.begin(); it != pool.end(); ++it) {
      if (it->get() == cur || X509_check_issued(it->get(), cur) != X509_V_OK) continue;
      EVP_PKEY* k = X509_get0_pubkey(it->get());
      if (k && X509_verify(cur, k) == 1) {
        best = it;
        break;
      }
      if (best == pool.end()) best = it;
    }
    if (best == pool.end()) break;
    chain.push_back(std::move(*best));
    pool.erase(best);
    cur = chain.back().get();
  }
  ERR_clear_error();
  return chain;
}

} // namespace tokenprov
