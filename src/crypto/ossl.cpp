// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/ossl.hpp"

#include "tokenprov/utf8.hpp"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <optional>

namespace tokenprov::ossl {

std::string last_error() {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no details from OpenSSL" : out;
}

void fail_ssl(ExitCode code, const std::string& what) {
  throw Error(code, what + " (" + last_error() + ")");
}

X509Ptr dup(X509* c) {
  X509_up_ref(c);
  return X509Ptr(c);
}

Bytes to_der(X509* c) {
  int n = i2d_X509(c, nullptr);
  if (n <= 0) fail_ssl(ExitCode::Internal, "Cannot encode a certificate");
  Bytes out(static_cast<std::size_t>(n));
  unsigned char* p = out.data();
  i2d_X509(c, &p);
  return out;
}

Bytes to_der(X509_REQ* r) {
  int n = i2d_X509_REQ(r, nullptr);
  if (n <= 0) fail_ssl(ExitCode::Internal, "Cannot encode a certificate request");
  Bytes out(static_cast<std::size_t>(n));
  unsigned char* p = out.data();
  i2d_X509_REQ(r, &p);
  return out;
}

namespace {
std::string bio_string(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return std::string(data, static_cast<std::size_t>(n));
}
} // namespace

std::string to_pem(X509* c) {
  BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(b.get(), c);
  return bio_string(b.get());
}

std::string to_pem(X509_REQ* r) {
  BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(b.get(), r);
  return bio_string(b.get());
}

X509Ptr cert_from_der(std::span<const std::uint8_t> der) {
  const unsigned char* p = der.data();
  X509Ptr c(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  return c;
}

bool set_pubkey_direct(X509_PUBKEY* xpk, EVP_PKEY* key) {
  if (!key || !xpk) return false;
  int nid = NID_undef, ptype = V_ASN1_UNDEF;
  void* pval = nullptr;
  BufferPtr penc; // OPENSSL_malloc'ed; XPK takes it once set
  int penclen = 0;
  switch (EVP_PKEY_get_base_id(key)) {
  case EVP_PKEY_RSA: {
    BIGNUM *raw_n = nullptr, *raw_e = nullptr;
    bool got = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &raw_n) == 1 &&
               EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &raw_e) == 1;
    BnPtr n(raw_n), e(raw_e);
    if (got) {
      // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
      Asn1IntegerPtr an(BN_to_ASN1_INTEGER(n.get(), nullptr));
      Asn1IntegerPtr ae(BN_to_ASN1_INTEGER(e.get(), nullptr));
      int ln = an ? i2d_ASN1_INTEGER(an.get(), nullptr) : -1, le = ae ? i2d_ASN1_INTEGER(ae.get(), nullptr) : -1;
      if (ln > 0 && le > 0) {
        int total = ASN1_object_size(1, ln + le, V_ASN1_SEQUENCE);
        penc.reset(static_cast<unsigned char*>(OPENSSL_malloc(static_cast<std::size_t>(total))));
        if (penc) {
          unsigned char* p = penc.get();
          ASN1_put_object(&p, 1, ln + le, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
          i2d_ASN1_INTEGER(an.get(), &p);
          i2d_ASN1_INTEGER(ae.get(), &p);
          penclen = total;
        }
      }
    }
    nid = NID_rsaEncryption;
    ptype = V_ASN1_NULL;
    break;
  }
  case EVP_PKEY_EC: {
    char group[80];
    std::size_t glen = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &glen) != 1) break;
    int curve = OBJ_txt2nid(group);
    if (curve == NID_undef) curve = EC_curve_nist2nid(group);
    if (curve == NID_undef) break;
    std::size_t len = 0;
    if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr, 0, &len) != 1 || !len) break;
    penc.reset(static_cast<unsigned char*>(OPENSSL_malloc(len)));
    if (penc && EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, penc.get(), len, &len) == 1)
      penclen = static_cast<int>(len);
    nid = NID_X9_62_id_ecPublicKey;
    ptype = V_ASN1_OBJECT;
    pval = OBJ_nid2obj(curve);
    break;
  }
  case EVP_PKEY_ED25519: {
    std::size_t len = 0;
    if (EVP_PKEY_get_raw_public_key(key, nullptr, &len) != 1 || !len) break;
    penc.reset(static_cast<unsigned char*>(OPENSSL_malloc(len)));
    if (penc && EVP_PKEY_get_raw_public_key(key, penc.get(), &len) == 1) penclen = static_cast<int>(len);
    nid = NID_ED25519;
    break;
  }
  default:
    break;
  }
  if (penclen <= 0 || X509_PUBKEY_set0_param(xpk, OBJ_nid2obj(nid), ptype, pval, penc.get(), penclen) != 1) {
    ERR_clear_error();
    return false;
  }
  penc.release(); // XPK took it
  return true;
}

namespace {
// The SubjectPublicKeyInfo of an RSA key, an EC key on a named curve or an
// Ed25519 key, built from the key's parameters with the ASN.1 code alone;
// std::nullopt for anything else. The bytes are those i2d_PUBKEY writes, but
// OpenSSL 3's i2d_PUBKEY goes through its encoder framework, whose first use
// in a process costs about 3.5 million instructions (a millisecond): a tenth
// of a short `provision --cert-dir` run on SoftHSM2 (docs/performance.md).
std::optional<Bytes> spki_der_direct(EVP_PKEY* key) {
  X509PubkeyPtr xpk(X509_PUBKEY_new());
  if (!set_pubkey_direct(xpk.get(), key)) return std::nullopt;
  unsigned char* raw_der = nullptr;
  int n = i2d_X509_PUBKEY(xpk.get(), &raw_der);
  BufferPtr der(raw_der);
  if (n <= 0 || !der) {
    ERR_clear_error();
    return std::nullopt;
  }
  return Bytes(der.get(), der.get() + n);
}
} // namespace

Bytes spki_der(EVP_PKEY* key) {
  if (auto direct = spki_der_direct(key)) return std::move(*direct);
  // One encoding pass: asking i2d_PUBKEY for the length first doubled its cost.
  unsigned char* raw_der = nullptr;
  int n = i2d_PUBKEY(key, &raw_der);
  BufferPtr der(raw_der);
  if (n <= 0 || !der) fail_ssl(ExitCode::Internal, "Cannot encode a public key");
  return Bytes(der.get(), der.get() + n);
}

Bytes spki_der(X509* cert) {
  X509_PUBKEY* pk = X509_get_X509_PUBKEY(cert);
  int n = i2d_X509_PUBKEY(pk, nullptr);
  if (n <= 0) fail_ssl(ExitCode::BadInput, "Cannot encode the certificate's public key");
  Bytes out(static_cast<std::size_t>(n));
  unsigned char* p = out.data();
  i2d_X509_PUBKEY(pk, &p);
  return out;
}

std::string name_oneline(const X509_NAME* n) {
  BioPtr b(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(b.get(), n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
  return bio_string(b.get());
}

X509NamePtr parse_dn(const std::string& dn) {
  if (dn.empty()) fail(ExitCode::Usage, "The subject DN is empty.", "Write it as /CN=Alice/O=Example.");
  require_utf8(dn, "subject DN");
  std::vector<std::pair<std::string, std::string>> parts;
  std::string cur;
  auto push = [&](const std::string& rdn) {
    auto eq = rdn.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == rdn.size())
      fail(ExitCode::Usage, "The subject DN '" + dn + "' has a part '" + rdn + "' that is not TYPE=value.",
           "Write it as /CN=Alice/O=Example.");
    parts.emplace_back(rdn.substr(0, eq), rdn.substr(eq + 1));
  };
  if (dn[0] == '/') {
    for (std::size_t i = 1; i < dn.size(); ++i) {
      if (dn[i] == '\\' && i + 1 < dn.size()) {
        cur.push_back(dn[++i]);
      } else if (dn[i] == '/') {
        push(cur);
        cur.clear();
      } else {
        cur.push_back(dn[i]);
      }
    }
    push(cur);
  } else {
    for (std::size_t i = 0; i < dn.size(); ++i) {
      if (dn[i] == '\\' && i + 1 < dn.size()) {
        cur.push_back(dn[++i]);
      } else if (dn[i] == ',') {
        push(cur);
        cur.clear();
        while (i + 1 < dn.size() && dn[i + 1] == ' ')
          ++i;
      } else {
        cur.push_back(dn[i]);
      }
    }
    push(cur);
    std::reverse(parts.begin(), parts.end()); // RFC 2253 lists the most specific first
  }
  X509NamePtr name(X509_NAME_new());
  for (auto& [type, value] : parts) {
    if (OBJ_txt2nid(type.c_str()) == NID_undef)
      fail(ExitCode::Usage, "The subject DN '" + dn + "' names an unknown attribute type '" + type + "'.",
           "Use types such as CN, O, OU, C, L, ST, emailAddress, serialNumber, UID, DC.");
    if (!X509_NAME_add_entry_by_txt(name.get(), type.c_str(), MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1, 0)) {
      ERR_clear_error();
      fail(ExitCode::Usage, "The subject DN '" + dn + "' has an invalid value for " + type + ": '" + value + "'.");
    }
  }
  return name;
}

std::string name_entry(const X509_NAME* n, int nid) {
  int idx = X509_NAME_get_index_by_NID(n, nid, -1);
  if (idx < 0) return {};
  ASN1_STRING* s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, idx));
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, s);
  std::string out = len > 0 ? std::string(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(len)) : "";
  OPENSSL_free(utf8);
  return out;
}

std::string dn_common_name(const std::string& dn) {
  return name_entry(parse_dn(dn).get(), NID_commonName);
}

std::string serial_hex(X509* cert) {
  const ASN1_INTEGER* s = X509_get0_serialNumber(cert);
  BnPtr bn(ASN1_INTEGER_to_BN(s, nullptr));
  char* hex = BN_bn2hex(bn.get());
  std::string out(hex ? hex : "");
  OPENSSL_free(hex);
  for (auto& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string asn1_time_rfc3339(const ASN1_TIME* t) {
  struct tm tm {};
  if (!ASN1_TIME_to_tm(t, &tm)) return {};
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string sha256_hex(std::span<const std::uint8_t> data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(data.data(), data.size(), md);
  static const char* hexd = "0123456789abcdef";
  std::string out;
  for (unsigned char c : md) {
    out.push_back(hexd[c >> 4]);
    out.push_back(hexd[c & 15]);
  }
  return out;
}

std::string cert_fingerprint_sha256(X509* cert) {
  return sha256_hex(to_der(cert));
}

EcdsaSigPtr ecdsa_sig_from_raw(std::span<const std::uint8_t> rs) {
  if (rs.size() % 2 != 0 || rs.empty()) fail(ExitCode::Token, "The token returned a malformed ECDSA signature.");
  std::size_t half = rs.size() / 2;
  EcdsaSigPtr sig(ECDSA_SIG_new());
  BnPtr r(BN_bin2bn(rs.data(), static_cast<int>(half), nullptr));
  BnPtr s(BN_bin2bn(rs.data() + half, static_cast<int>(half), nullptr));
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1)
    fail_ssl(ExitCode::Internal, "Cannot encode the ECDSA signature");
  r.release(); // ECDSA_SIG_set0 took R and S
  s.release();
  return sig;
}

Bytes ecdsa_sig_der(const ECDSA_SIG* sig) {
  int n = i2d_ECDSA_SIG(sig, nullptr);
  if (n <= 0) fail_ssl(ExitCode::Internal, "Cannot encode the ECDSA signature");
  Bytes out(static_cast<std::size_t>(n));
  unsigned char* p = out.data();
  i2d_ECDSA_SIG(sig, &p);
  return out;
}

} // namespace tokenprov::ossl
