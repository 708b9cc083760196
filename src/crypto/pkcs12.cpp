// SPDX-License-Identifier: Apache-2.0
#include "pkcs12_detail.hpp"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pkcs12.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>

#include <algorithm>
#include <memory>
#include <utility>

// Why these iteration counts (kModernIterations = 200000, kLegacyIterations = 2048):
//
// Every KDF in the file costs an attacker the same per password guess only if
// all of them use the same count: the MAC and the certificate safe are
// password oracles too (a guess that yields the right MAC, or a certificate
// safe that decrypts to valid DER, is the password). So the key bag, the
// certificate safe and the MAC all get one count, and an importer runs the
// KDF three times.
//
// Modern, 200,000 PBKDF2-HMAC-SHA256 rounds: about 100 times the 2,048 that
// `openssl pkcs12 -export` writes and 20 times Java's 10,000, while staying
// below what importers accept and what phones do quickly:
//  - .NET's PKCS#12 loader (X509CertificateLoader, .NET 9 defaults) refuses a
//    file with more than 300,000 iterations in any one KDF or in the MAC, or
//    more than 1,000,000 over all encrypted parts. The 600,000 OWASP suggests
//    for PBKDF2-HMAC-SHA256 (and that NSS's `pk12util -o` writes) would make
//    the file unreadable there.
//  - The JDK caps PKCS#12 counts at 5,000,000; NSS and OpenSSL have no cap.
//  - 200,000 rounds take ~0.08 s per KDF on one desktop core with OpenSSL.
//    An estimate for a low-end phone importing in Java is 10-20 times that,
//    so the three KDFs take one to five seconds there, once, at import;
//    600,000 would make it up to 15 s, which users take for a hang.
// The backup password has to carry the rest of the strength (the CLI should
// ask for a long one).
//
// Legacy, 2,048 rounds of the PKCS#12 KDF with SHA-1: exactly what
// `openssl pkcs12 -export -legacy` and OpenSSL 1.1 wrote for years and close
// to what Windows exports use (2,000), so every old importer has seen it. The
// profile is opt-in for devices that cannot read the modern one and is much
// weaker against password guessing; the CLI should say so.
namespace tokenprov::pkcs12 {

using namespace detail;

int detail::key_matches(EVP_PKEY* key, X509* cert) {
  EVP_PKEY* pub = X509_get0_pubkey(cert);
  if (!pub) {
    ERR_clear_error();
    return -1;
  }
  int r = EVP_PKEY_eq(key, pub);
  ERR_clear_error();
  if (r == 1) return 1;
  if (r == -2) return -1; // the operation is not supported for this key type
  return 0;               // 0: different, -1: different key types
}

namespace {

// ---- writing -----------------------------------------------------------

AlgorPtr make_pbe(Compat compat) {
  X509_ALGOR* a = nullptr;
  if (compat == Compat::Modern) {
    unsigned char salt[kModernSaltLen];
    if (RAND_bytes(salt, sizeof salt) != 1) ossl::fail_ssl(ExitCode::Internal, "Cannot draw a random salt");
    a = PKCS5_pbe2_set_iv_ex(EVP_aes_256_cbc(), kModernIterations, salt, sizeof salt, nullptr, NID_hmacWithSHA256,
                             nullptr);
  } else {
    a = PKCS5_pbe_set_ex(NID_pbe_WithSHA1And3_Key_TripleDES_CBC, kLegacyIterations, nullptr, 0, nullptr);
  }
  if (!a) ossl::fail_ssl(ExitCode::Internal, "Cannot set up the PKCS#12 password-based encryption");
  return AlgorPtr(a);
}

void add_attributes(PKCS12_SAFEBAG* bag, const std::string& name, const Bytes& id) {
  if (!name.empty() && !PKCS12_add_friendlyname_utf8(bag, name.c_str(), static_cast<int>(name.size())))
    ossl::fail_ssl(ExitCode::Internal, "Cannot set the PKCS#12 friendlyName '" + name + "'");
  if (!id.empty() && !PKCS12_add_localkeyid(bag, const_cast<unsigned char*>(id.data()), static_cast<int>(id.size())))
    ossl::fail_ssl(ExitCode::Internal, "Cannot set the PKCS#12 localKeyID");
}

SafeBagPtr cert_bag(X509* cert) {
  SafeBagPtr bag(PKCS12_SAFEBAG_create_cert(cert));
  if (!bag) ossl::fail_ssl(ExitCode::Internal, "Cannot put a certificate into a PKCS#12 bag");
  return bag;
}

void push_bag(STACK_OF(PKCS12_SAFEBAG) * bags, SafeBagPtr bag) {
  if (!sk_PKCS12_SAFEBAG_push(bags, bag.get())) ossl::fail_ssl(ExitCode::Internal, "Out of memory");
  bag.release();
}

// pkcs8ShroudedKeyBag: the PKCS#8 encoding lives only inside OpenSSL objects
// that wipe it when freed (PKCS8_PRIV_KEY_INFO_free cleanses the key octets;
// the encryption cleanses its plaintext buffer).
SafeBagPtr shrouded_key_bag(EVP_PKEY* key, Pw pw, Compat compat) {
  ossl::Pkcs8Ptr p8(EVP_PKEY2PKCS8(key));
  if (!p8) ossl::fail_ssl(ExitCode::Internal, "Cannot encode the private key as PKCS#8");
  AlgorPtr pbe = make_pbe(compat);
  X509SigPtr enc(PKCS8_set0_pbe_ex(pw.data, pw.len, p8.get(), pbe.get(), nullptr, nullptr));
  if (!enc) ossl::fail_ssl(ExitCode::Internal, "Cannot encrypt the private key");
  pbe.release(); // owned by enc now
  SafeBagPtr bag(PKCS12_SAFEBAG_create0_pkcs8(enc.get()));
  if (!bag) ossl::fail_ssl(ExitCode::Internal, "Cannot put the private key into a PKCS#12 bag");
  enc.release();
  return bag;
}

// An EncryptedData content info holding BAGS, encrypted like the key bag.
ossl::Pkcs7Ptr encrypted_safe(STACK_OF(PKCS12_SAFEBAG) * bags, Pw pw, Compat compat) {
  ossl::Pkcs7Ptr p7(PKCS7_new());
  if (!p7 || !PKCS7_set_type(p7.get(), NID_pkcs7_encrypted))
    ossl::fail_ssl(ExitCode::Internal, "Cannot create the PKCS#12 certificate safe");
  PKCS7_ENC_CONTENT* ec = p7->d.encrypted->enc_data;
  AlgorPtr pbe = make_pbe(compat);
  ASN1_OCTET_STRING* data = PKCS12_item_i2d_encrypt_ex(pbe.get(), ASN1_ITEM_rptr(PKCS12_SAFEBAGS), pw.data, pw.len,
                                                       bags, 1, nullptr, nullptr);
  if (!data) ossl::fail_ssl(ExitCode::Internal, "Cannot encrypt the PKCS#12 certificate safe");
  X509_ALGOR_free(ec->algorithm);
  ec->algorithm = pbe.release();
  ASN1_OCTET_STRING_free(ec->enc_data);
  ec->enc_data = data;
  return p7;
}

Bytes sha1_of(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!X509_digest(cert, EVP_sha1(), md, &n)) ossl::fail_ssl(ExitCode::Internal, "Cannot hash the certificate");
  return Bytes(md, md + n);
}

bool signs_for(EVP_PKEY* key, EVP_PKEY* pub) {
  static const unsigned char msg[] = "tokenprov PKCS#12 round-trip check";
  const EVP_MD* md = (EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448")) ? nullptr : EVP_sha256();
  ossl::EvpMdCtxPtr s(EVP_MD_CTX_new()), v(EVP_MD_CTX_new());
  std::size_t len = 0;
  bool ok = s && v && EVP_DigestSignInit(s.get(), nullptr, md, nullptr, key) == 1 &&
            EVP_DigestSign(s.get(), nullptr, &len, msg, sizeof msg) == 1;
  Bytes sig(len);
  ok = ok && EVP_DigestSign(s.get(), sig.data(), &len, msg, sizeof msg) == 1 &&
       EVP_DigestVerifyInit(v.get(), nullptr, md, nullptr, pub) == 1 &&
       EVP_DigestVerify(v.get(), sig.data(), len, msg, sizeof msg) == 1;
  ERR_clear_error();
  return ok;
}

bool same_cert(X509* a, X509* b) {
  return a && b && X509_cmp(a, b) == 0;
}

} // namespace

Compat parse_compat(const std::string& text) {
  if (text == "modern") return Compat::Modern;
  if (text == "legacy") return Compat::Legacy;
  fail(ExitCode::Usage, "Unknown PKCS#12 compatibility profile '" + text + "'.",
       "Use --compat modern (AES-256, PBKDF2-SHA256) or --compat legacy (3DES, SHA-1) for older devices.");
}

const char* compat_name(Compat c) noexcept {
  return c == Compat::Modern ? "modern" : "legacy";
}

std::vector<std::uint8_t> build(const Contents& contents, const Secret& password, Compat compat) {
  if (!contents.key && !contents.leaf && contents.chain.empty())
    fail(ExitCode::Internal, "Nothing to put into the PKCS#12 file: no key and no certificate.");
  if (contents.key && !contents.leaf)
    fail(ExitCode::Internal, "A PKCS#12 backup of a key needs the key's certificate.");
  if (contents.key && key_matches(contents.key.get(), contents.leaf.get()) == 0)
    fail(ExitCode::Internal, "The certificate for the PKCS#12 backup does not carry the key's public key.");
  for (const auto& c : contents.chain)
    if (!c) fail(ExitCode::Internal, "A null CA certificate was given for the PKCS#12 file.");

  const Pw pw = pw_of(password);
  Bytes id = contents.local_key_id;
  if (id.empty() && contents.key) id = sha1_of(contents.leaf.get());

  SafeBagsPtr cert_bags(sk_PKCS12_SAFEBAG_new_null());
  if (!cert_bags) ossl::fail_ssl(ExitCode::Internal, "Out of memory");
  if (contents.leaf) {
    SafeBagPtr bag = cert_bag(contents.leaf.get());
    add_attributes(bag.get(), contents.friendly_name, id);
    push_bag(cert_bags.get(), std::move(bag));
  }
  for (const auto& c : contents.chain)
    push_bag(cert_bags.get(), cert_bag(c.get()));

  Pkcs7sPtr safes(sk_PKCS7_new_null());
  if (!safes) ossl::fail_ssl(ExitCode::Internal, "Out of memory");
  {
    ossl::Pkcs7Ptr p7 = encrypted_safe(cert_bags.get(), pw, compat);
    if (!sk_PKCS7_push(safes.get(), p7.get())) ossl::fail_ssl(ExitCode::Internal, "Out of memory");
    p7.release();
  }
  if (contents.key) {
    SafeBagsPtr key_bags(sk_PKCS12_SAFEBAG_new_null());
    if (!key_bags) ossl::fail_ssl(ExitCode::Internal, "Out of memory");
    SafeBagPtr bag = shrouded_key_bag(contents.key.get(), pw, compat);
    add_attributes(bag.get(), contents.friendly_name, id);
    push_bag(key_bags.get(), std::move(bag));
    // The key bag is shrouded already; its safe is plain data, as every
    // exporter does it.
    ossl::Pkcs7Ptr p7(PKCS12_pack_p7data(key_bags.get()));
    if (!p7 || !sk_PKCS7_push(safes.get(), p7.get()))
      ossl::fail_ssl(ExitCode::Internal, "Cannot pack the PKCS#12 key safe");
    p7.release();
  }

  ossl::Pkcs12Ptr p12(PKCS12_init_ex(NID_pkcs7_data, nullptr, nullptr));
  if (!p12 || !PKCS12_pack_authsafes(p12.get(), safes.get()))
    ossl::fail_ssl(ExitCode::Internal, "Cannot assemble the PKCS#12 file");
  const bool modern = compat == Compat::Modern;
  if (!PKCS12_set_mac(p12.get(), pw.data, pw.len, nullptr, modern ? kModernSaltLen : 0,
                      modern ? kModernIterations : kLegacyIterations, modern ? EVP_sha256() : EVP_sha1()))
    ossl::fail_ssl(ExitCode::Internal, "Cannot compute the PKCS#12 MAC");

  int n = i2d_PKCS12(p12.get(), nullptr);
  if (n <= 0) ossl::fail_ssl(ExitCode::Internal, "Cannot encode the PKCS#12 file");
  Bytes out(static_cast<std::size_t>(n));
  unsigned char* p = out.data();
  if (i2d_PKCS12(p12.get(), &p) != n) ossl::fail_ssl(ExitCode::Internal, "Cannot encode the PKCS#12 file");
  return out;
}

void verify_roundtrip(std::span<const std::uint8_t> der, const Secret& password, const Contents& expected) {
  const std::string what = "The PKCS#12 file just written";
  Contents got;
  try {
    got = parse(der, password, "the PKCS#12 file just written", expected.key != nullptr);
  } catch (const Error& e) {
    throw Error(ExitCode::Internal, what + " does not read back: " + e.what());
  }
  auto bad = [&](const std::string& why) { throw Error(ExitCode::Internal, what + " " + why); };
  if (expected.key) {
    if (!got.key || EVP_PKEY_eq(got.key.get(), expected.key.get()) != 1) bad("holds a different key.");
    if (!got.leaf || !signs_for(got.key.get(), X509_get0_pubkey(got.leaf.get())))
      bad("holds a key that does not match its certificate.");
  } else if (got.key) {
    bad("holds a key although none was written.");
  }
  if (expected.leaf && !same_cert(expected.leaf.get(), got.leaf.get())) bad("holds a different certificate.");
  if (got.chain.size() != expected.chain.size()) bad("holds a different number of CA certificates.");
  for (std::size_t i = 0; i < got.chain.size(); ++i)
    if (!same_cert(got.chain[i].get(), expected.chain[i].get())) bad("holds a different certificate chain.");
  // Without a leaf there is no bag to carry the name.
  if (expected.leaf && got.friendly_name != expected.friendly_name) bad("holds a different friendly name.");
  if (!expected.local_key_id.empty() && got.local_key_id != expected.local_key_id) bad("holds a different localKeyID.");
  ERR_clear_error();
}

} // namespace tokenprov::pkcs12
