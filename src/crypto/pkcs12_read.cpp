// SPDX-License-Identifier: Apache-2.0
#include "pkcs12_detail.hpp"
#include "tokenprov/certs.hpp"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pkcs12.h>
#include <openssl/pkcs7.h>
#include <openssl/provider.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <memory>
#include <string_view>
#include <utility>

namespace tokenprov::pkcs12 {

using namespace detail;

namespace {

// ---- reading -----------------------------------------------------------

// A library context with the default and the legacy provider, for files
// whose encryption only the legacy provider has (RC2-40 certificate safes
// from `openssl pkcs12 -export -legacy`, OpenSSL 1.x and older Windows; DES,
// RC4). Private, so loading the legacy provider changes nothing for the rest
// of the process. Made once, kept for the life of the process. Null when the
// legacy provider is not installed.
OSSL_LIB_CTX* legacy_ctx() {
  static OSSL_LIB_CTX* ctx = [] {
    OSSL_LIB_CTX* c = OSSL_LIB_CTX_new();
    if (c && OSSL_PROVIDER_load(c, "default") && OSSL_PROVIDER_load(c, "legacy")) return c;
    ERR_clear_error();
    OSSL_LIB_CTX_free(c); // also unloads what it loaded
    return static_cast<OSSL_LIB_CTX*>(nullptr);
  }();
  return ctx;
}

// Did the queued errors come from an algorithm the default provider lacks
// (rather than from a wrong password or bad data)? Empties the queue.
bool algorithm_unavailable() {
  bool found = false;
  while (unsigned long e = ERR_get_error()) {
    const int reason = ERR_GET_REASON(e);
    if (reason == ERR_R_UNSUPPORTED ||
        (ERR_GET_LIB(e) == ERR_LIB_EVP && (reason == EVP_R_UNSUPPORTED_CIPHER || reason == EVP_R_UNKNOWN_CIPHER ||
                                           reason == EVP_R_UNSUPPORTED_ALGORITHM)))
      found = true;
  }
  return found;
}

// Calls F(libctx) with the default context, then, when that failed for want
// of an algorithm, with the legacy one.
template <class F> auto with_legacy_fallback(F f) {
  auto r = f(static_cast<OSSL_LIB_CTX*>(nullptr));
  if (!r && algorithm_unavailable()) {
    if (OSSL_LIB_CTX* lc = legacy_ctx()) r = f(lc);
  }
  return r;
}

SafeBagsPtr decrypt_safe(PKCS7* p7, Pw pw) {
  PKCS7_ENC_CONTENT* ec = p7->d.encrypted ? p7->d.encrypted->enc_data : nullptr;
  if (!ec || !ec->algorithm || !ec->enc_data) return nullptr;
  return SafeBagsPtr(with_legacy_fallback([&](OSSL_LIB_CTX* lc) {
    return static_cast<STACK_OF(PKCS12_SAFEBAG)*>(PKCS12_item_decrypt_d2i_ex(
        ec->algorithm, ASN1_ITEM_rptr(PKCS12_SAFEBAGS), pw.data, pw.len, ec->enc_data, 1, lc, nullptr));
  }));
}

ossl::Pkcs8Ptr decrypt_key(const PKCS12_SAFEBAG* bag, Pw pw) {
  return ossl::Pkcs8Ptr(with_legacy_fallback(
      [&](OSSL_LIB_CTX* lc) { return PKCS12_decrypt_skey_ex(bag, pw.data, pw.len, lc, nullptr); }));
}

// The most KDF iterations parse() runs for one MAC, safe or key bag: the
// JDK's cap (see the top of this file; NSS writes 600,000, build() 200,000).
// A file claiming more is refused before any KDF runs: 2^31 iterations would
// keep `restore` busy for hours (a fuzz regression, tests/fuzz/).
constexpr std::int64_t kMaxIterations = 5000000;

// An iteration count as written; INT64_MAX when it does not fit.
std::int64_t iterations_of(const ASN1_INTEGER* n) {
  if (!n) return 1; // the MAC's DEFAULT
  std::int64_t v = 0;
  if (ASN1_INTEGER_get_int64(&v, n) != 1) {
    ERR_clear_error();
    return INT64_MAX;
  }
  return v;
}

// The iteration count of a PKCS#12 PBE / PBES1 or a PBES2-with-PBKDF2
// algorithm; 0 for other algorithms and unreadable parameters (decryption
// then fails on its own).
std::int64_t kdf_iterations(const X509_ALGOR* alg) {
  if (!alg || !alg->algorithm) return 0;
  if (OBJ_obj2nid(alg->algorithm) == NID_pbes2) {
    std::unique_ptr<PBE2PARAM, Deleter<PBE2PARAM_free>> p2(
        static_cast<PBE2PARAM*>(ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBE2PARAM), alg->parameter)));
    if (!p2 || !p2->keyfunc || OBJ_obj2nid(p2->keyfunc->algorithm) != NID_id_pbkdf2) {
      ERR_clear_error();
      return 0;
    }
    std::unique_ptr<PBKDF2PARAM, Deleter<PBKDF2PARAM_free>> kdf(
        static_cast<PBKDF2PARAM*>(ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBKDF2PARAM), p2->keyfunc->parameter)));
    ERR_clear_error();
    return kdf && kdf->iter ? iterations_of(kdf->iter) : 0;
  }
  std::unique_ptr<PBEPARAM, Deleter<PBEPARAM_free>> pbe(
      static_cast<PBEPARAM*>(ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(PBEPARAM), alg->parameter)));
  ERR_clear_error();
  return pbe && pbe->iter ? iterations_of(pbe->iter) : 0;
}

// The encryption algorithm of an encrypted safe / a shrouded key bag.
const X509_ALGOR* safe_algorithm(PKCS7* p7) {
  return p7->d.encrypted && p7->d.encrypted->enc_data ? p7->d.encrypted->enc_data->algorithm : nullptr;
}
const X509_ALGOR* key_algorithm(const PKCS12_SAFEBAG* bag) {
  const X509_ALGOR* alg = nullptr;
  if (const X509_SIG* sig = PKCS12_SAFEBAG_get0_pkcs8(bag)) X509_SIG_get0(sig, &alg, nullptr);
  return alg;
}

struct KeyItem {
  EvpPkeyPtr key;
  std::string name;
  Bytes id;
};
struct CertItem {
  X509Ptr cert;
  std::string name;
  Bytes id;
};
struct Found {
  std::vector<KeyItem> keys;
  std::vector<CertItem> certs;
};

Bytes local_key_id_of(const PKCS12_SAFEBAG* bag) {
  const ASN1_TYPE* t = PKCS12_get_attr_gen(PKCS12_SAFEBAG_get0_attrs(bag), NID_localKeyID);
  if (!t || t->type != V_ASN1_OCTET_STRING || !t->value.octet_string) return {};
  const unsigned char* p = ASN1_STRING_get0_data(t->value.octet_string);
  return Bytes(p, p + ASN1_STRING_length(t->value.octet_string));
}

void put_utf8(std::string& out, std::uint32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xc0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xe0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
  } else {
    out.push_back(static_cast<char>(0xf0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3f)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3f)));
  }
}

// The friendlyName as UTF-8. Decoded here rather than with
// PKCS12_get_friendlyname: OpenSSL 3.0's BMPString-to-UTF-8 conversion fails
// (returns NULL) when the last character needs three UTF-8 bytes (U+0800 and
// up: "Ключ №1", CJK names, "✓").
std::string friendly_name_of(const PKCS12_SAFEBAG* bag) {
  const ASN1_TYPE* t = PKCS12_get_attr_gen(PKCS12_SAFEBAG_get0_attrs(bag), NID_friendlyName);
  // Only the string types carry an ASN1_STRING: for a BOOLEAN (or an OBJECT,
  // NULL, ...) the union holds something else (a fuzz regression).
  if (!t || (t->type != V_ASN1_UTF8STRING && t->type != V_ASN1_BMPSTRING) || !t->value.asn1_string) return {};
  const unsigned char* d = ASN1_STRING_get0_data(t->value.asn1_string);
  const int n = ASN1_STRING_length(t->value.asn1_string);
  std::string out;
  if (t->type == V_ASN1_UTF8STRING) { // not what RFC 7292 says, but seen
    out.assign(reinterpret_cast<const char*>(d), static_cast<std::size_t>(n));
  } else if (t->type == V_ASN1_BMPSTRING) { // UTF-16BE
    for (int i = 0; i + 1 < n; i += 2) {
      std::uint32_t c = (std::uint32_t{d[i]} << 8) | d[i + 1];
      if (c >= 0xd800 && c < 0xdc00 && i + 3 < n) {
        std::uint32_t lo = (std::uint32_t{d[i + 2]} << 8) | d[i + 3];
        if (lo >= 0xdc00 && lo < 0xe000) {
          c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
          i += 2;
        } else {
          c = 0xfffd;
        }
      } else if (c >= 0xd800 && c < 0xe000) {
        c = 0xfffd;
      }
      put_utf8(out, c);
    }
  }
  while (!out.empty() && out.back() == '\0')
    out.pop_back(); // some writers add a terminator
  return out;
}

class Reader {
public:
  Reader(std::string name, Pw pw) : name_(std::move(name)), pw_(pw) {}

  [[noreturn]] void bad(const std::string& what, const std::string& hint = {}) const {
    ERR_clear_error();
    throw Error(ExitCode::BadInput, "'" + name_ + "' " + what, hint);
  }

  [[noreturn]] void wrong_password() const {
    ERR_clear_error();
    throw Error(ExitCode::BadInput, "The password for '" + name_ + "' is wrong.",
                "Check the password source; PKCS#12 passwords are case-sensitive.");
  }

  void collect(STACK_OF(PKCS12_SAFEBAG) * bags, Found& out, int depth = 0) {
    if (depth > 4) bad("nests its safe contents too deeply to be a genuine PKCS#12 file.");
    for (int i = 0; i < sk_PKCS12_SAFEBAG_num(bags); ++i) {
      const PKCS12_SAFEBAG* bag = sk_PKCS12_SAFEBAG_value(bags, i);
      switch (PKCS12_SAFEBAG_get_nid(bag)) {
      case NID_keyBag:
        add_key(bag, PKCS12_SAFEBAG_get0_p8inf(bag), out);
        break;
      case NID_pkcs8ShroudedKeyBag: {
        check_iterations(kdf_iterations(key_algorithm(bag)), "its private key");
        ossl::Pkcs8Ptr p8 = decrypt_key(bag, pw_);
        if (!p8) {
          if (!mac_checked_) wrong_password();
          bad("holds a private key that cannot be decrypted (" + ossl::last_error() + ").",
              "The file may use an encryption tokenprov does not know; re-export it with AES-256 or 3DES.");
        }
        add_key(bag, p8.get(), out);
        break;
      }
      case NID_certBag: {
        if (PKCS12_SAFEBAG_get_bag_nid(bag) != NID_x509Certificate) break; // SDSI certificates: not ours
        X509Ptr c(PKCS12_SAFEBAG_get1_cert(bag));
        if (!c) bad("holds a certificate that cannot be read (" + ossl::last_error() + ").");
        out.certs.push_back(CertItem{std::move(c), friendly_name_of(bag), local_key_id_of(bag)});
        break;
      }
      case NID_safeContentsBag:
        collect(const_cast<STACK_OF(PKCS12_SAFEBAG)*>(PKCS12_SAFEBAG_get0_safes(bag)), out, depth + 1);
        break;
      default: // CRL and secret bags: nothing tokenprov restores
        break;
      }
    }
  }

  void add_key(const PKCS12_SAFEBAG* bag, const PKCS8_PRIV_KEY_INFO* p8, Found& out) const {
    if (!p8) bad("holds a private key bag that cannot be read.");
    EvpPkeyPtr k(EVP_PKCS82PKEY(p8));
    if (!k) bad("holds a private key of a type tokenprov cannot read (" + ossl::last_error() + ").");
    out.keys.push_back(KeyItem{std::move(k), friendly_name_of(bag), local_key_id_of(bag)});
  }

  // Everything in the authenticated safe; the password has passed the MAC
  // (when there is one).
  Found read_all(PKCS12* p12) {
    Pkcs7sPtr safes(PKCS12_unpack_authsafes(p12));
    if (!safes)
      bad("is damaged or uses public-key integrity mode, which tokenprov does not read (" + ossl::last_error() + ").");
    Found out;
    for (int i = 0; i < sk_PKCS7_num(safes.get()); ++i) {
      PKCS7* p7 = sk_PKCS7_value(safes.get(), i);
      switch (OBJ_obj2nid(p7->type)) {
      case NID_pkcs7_data: {
        SafeBagsPtr bags(PKCS12_unpack_p7data(p7));
        if (!bags) bad("is damaged: a safe cannot be read (" + ossl::last_error() + ").");
        collect(bags.get(), out);
        break;
      }
      case NID_pkcs7_encrypted: {
        check_iterations(kdf_iterations(safe_algorithm(p7)), "an encrypted safe");
        SafeBagsPtr bags = decrypt_safe(p7, pw_);
        if (!bags) {
          if (!mac_checked_) wrong_password();
          bad("has an encrypted safe that cannot be decrypted (" + ossl::last_error() + ").",
              "The file may use an encryption tokenprov does not know; re-export it with AES-256 or 3DES.");
        }
        collect(bags.get(), out);
        break;
      }
      case NID_pkcs7_enveloped:
        bad("protects its contents with a public key (enveloped data); tokenprov reads password-protected "
            "PKCS#12 files only.");
      default:
        bad("holds a safe of an unknown type.");
      }
    }
    return out;
  }

  // After a MAC mismatch: does the password decrypt anything? Then the
  // password is right and the file was changed after it was made.
  bool password_opens_content(PKCS12* p12) const {
    Pkcs7sPtr safes(PKCS12_unpack_authsafes(p12));
    bool opened = false;
    for (int i = 0; safes && !opened && i < sk_PKCS7_num(safes.get()); ++i) {
      PKCS7* p7 = sk_PKCS7_value(safes.get(), i);
      int nid = OBJ_obj2nid(p7->type);
      if (nid == NID_pkcs7_encrypted) {
        check_iterations(kdf_iterations(safe_algorithm(p7)), "an encrypted safe");
        opened = decrypt_safe(p7, pw_) != nullptr;
      } else if (nid == NID_pkcs7_data) {
        SafeBagsPtr bags(PKCS12_unpack_p7data(p7));
        for (int j = 0; bags && !opened && j < sk_PKCS12_SAFEBAG_num(bags.get()); ++j) {
          PKCS12_SAFEBAG* bag = sk_PKCS12_SAFEBAG_value(bags.get(), j);
          if (PKCS12_SAFEBAG_get_nid(bag) != NID_pkcs8ShroudedKeyBag) continue;
          check_iterations(kdf_iterations(key_algorithm(bag)), "its private key");
          opened = decrypt_key(bag, pw_) != nullptr;
        }
      }
    }
    ERR_clear_error();
    return opened;
  }

  // Refuses a KDF of more than kMaxIterations before it runs.
  void check_iterations(std::int64_t n, const char* what) const {
    if (n > kMaxIterations)
      bad("claims " + (n == INT64_MAX ? std::string("an absurd number of") : std::to_string(n)) +
              " key-derivation iterations for " + what + "; tokenprov reads at most " + std::to_string(kMaxIterations) +
              ".",
          "Re-export the file with a usual iteration count (2,048 to 600,000).");
  }

  // Checks the MAC; afterwards pw_ is the password form that passed it.
  void check_mac(PKCS12* p12) {
    if (!PKCS12_mac_present(p12)) return; // no integrity check: decryption tells
    const ASN1_INTEGER* mac_iter = nullptr;
    PKCS12_get0_mac(nullptr, nullptr, nullptr, &mac_iter, p12);
    check_iterations(iterations_of(mac_iter), "its integrity check (MAC)");
    std::vector<Pw> tries{pw_};
    // An empty password may have been encoded as no password at all (as
    // OpenSSL's PKCS12_parse also tries).
    if (pw_.len == 0) tries.push_back(Pw{nullptr, 0});
    for (const Pw& p : tries) {
      ERR_clear_error();
      if (PKCS12_verify_mac(p12, p.data, p.len) == 1) {
        pw_ = p;
        mac_checked_ = true;
        return;
      }
      if (ERR_peek_error() != 0)
        bad("uses an integrity check (MAC) tokenprov cannot compute (" + ossl::last_error() + ").",
            "Re-export the file with an HMAC-SHA-1 or HMAC-SHA-256 MAC.");
    }
    if (password_opens_content(p12))
      bad("is damaged: its integrity check (MAC) fails although the password decrypts its contents.",
          "Use an undamaged copy of the file.");
    wrong_password();
  }

private:
  std::string name_;
  Pw pw_;
  bool mac_checked_ = false;
};

bool is_issuer(X509* issuer, X509* subject) {
  return X509_check_issued(issuer, subject) == X509_V_OK;
}


// The certificates of POOL ordered as a chain up from START (issuer first,
// tokenprov::order_chain's rule); what is not on that chain follows in its order.
std::vector<X509Ptr> chain_then_rest(X509* start, std::vector<X509Ptr> pool) {
  std::vector<X509Ptr> out = tokenprov::order_chain(start, pool);
  for (auto& c : pool)
    out.push_back(std::move(c));
  return out;
}

// The certificates with the same certificate twice made one (its name and
// id from whichever copy has them).
std::vector<CertItem> unique_certs(std::vector<CertItem> found) {
  std::vector<CertItem> certs;
  for (auto& c : found) {
    auto dup = std::find_if(certs.begin(), certs.end(),
                            [&](const CertItem& o) { return X509_cmp(o.cert.get(), c.cert.get()) == 0; });
    if (dup == certs.end()) {
      certs.push_back(std::move(c));
    } else {
      if (dup->name.empty()) dup->name = std::move(c.name);
      if (dup->id.empty()) dup->id = std::move(c.id);
    }
  }
  return certs;
}

// The leaf of a file without a key: the one certificate with a localKeyID,
// else the end of the chain (a certificate that issued none of the others
// and is no CA); certs.size() when there is none.
std::size_t certificate_only_leaf(const std::vector<CertItem>& certs) {
  std::size_t leaf = certs.size();
  std::vector<std::size_t> with_id;
  for (std::size_t i = 0; i < certs.size(); ++i)
    if (!certs[i].id.empty()) with_id.push_back(i);
  if (with_id.size() == 1) return with_id.front();
  for (std::size_t i = 0; i < certs.size() && leaf == certs.size(); ++i) {
    bool issues = false;
    for (std::size_t j = 0; j < certs.size() && !issues; ++j)
      issues = j != i && is_issuer(certs[i].cert.get(), certs[j].cert.get());
    if (!issues && X509_check_ca(certs[i].cert.get()) == 0) leaf = i;
  }
  ERR_clear_error();
  return leaf;
}

// Only CA certificates: the chain up from one that issued none of the
// others, then the rest; POOL as it is when every one issued another.
std::vector<X509Ptr> ca_only_chain(std::vector<X509Ptr> pool) {
  X509* start = nullptr;
  for (auto& c : pool) {
    bool issues = false;
    for (auto& o : pool)
      if (o != c && is_issuer(c.get(), o.get())) issues = true;
    if (!issues) {
      start = c.get();
      break;
    }
  }
  if (!start) return pool;
  auto it = std::find_if(pool.begin(), pool.end(), [&](const X509Ptr& c) { return c.get() == start; });
  X509Ptr first = std::move(*it);
  pool.erase(it);
  std::vector<X509Ptr> chain = chain_then_rest(first.get(), std::move(pool));
  chain.insert(chain.begin(), std::move(first));
  return chain;
}

} // namespace

Contents parse(std::span<const std::uint8_t> der, const Secret& password, const std::string& source_name,
               bool require_key) {
  Reader rd(source_name, pw_of(password));
  if (der.empty()) rd.bad("is empty.");
  static constexpr std::string_view pem = "-----BEGIN";
  if (der.size() >= pem.size() && std::equal(pem.begin(), pem.end(), der.begin()))
    rd.bad("is PEM text; a PKCS#12 file is binary (DER).", "Use the .p12/.pfx file itself.");
  if (der.size() > static_cast<std::size_t>(LONG_MAX)) rd.bad("is too large.");
  const unsigned char* p = der.data();
  ossl::Pkcs12Ptr p12(d2i_PKCS12(nullptr, &p, static_cast<long>(der.size())));
  if (!p12) rd.bad("is not a PKCS#12 file, or it is truncated or damaged.", "Check that the file was copied whole.");

  rd.check_mac(p12.get());
  Found found = rd.read_all(p12.get());

  std::vector<CertItem> certs = unique_certs(std::move(found.certs));

  if (found.keys.size() > 1)
    rd.bad("holds " + std::to_string(found.keys.size()) + " private keys; tokenprov reads files with one key.",
           "Split the file (e.g. with openssl pkcs12) into one file per key.");
  if (found.keys.empty() && require_key)
    rd.bad("holds no private key, only certificates.", "Use the backup made with the key, not a --cert-only one.");
  if (found.keys.empty() && certs.empty()) rd.bad("holds neither a private key nor a certificate.");

  Contents out;
  std::size_t leaf = certs.size();
  if (!found.keys.empty()) {
    KeyItem& k = found.keys.front();
    for (std::size_t i = 0; i < certs.size() && leaf == certs.size(); ++i)
      if (key_matches(k.key.get(), certs[i].cert.get()) == 1) leaf = i;
    // Public keys OpenSSL cannot compare: pair by localKeyID.
    for (std::size_t i = 0; i < certs.size() && leaf == certs.size(); ++i)
      if (!k.id.empty() && certs[i].id == k.id && key_matches(k.key.get(), certs[i].cert.get()) < 0) leaf = i;
    if (leaf == certs.size())
      rd.bad("holds a private key but no certificate for it.", "Export the key together with its certificate.");
    out.friendly_name = !k.name.empty() ? k.name : certs[leaf].name;
    out.local_key_id = !k.id.empty() ? k.id : certs[leaf].id;
    out.key = std::move(k.key);
  } else {
    leaf = certificate_only_leaf(certs);
    if (leaf != certs.size()) {
      out.friendly_name = certs[leaf].name;
      out.local_key_id = certs[leaf].id;
    }
  }

  std::vector<X509Ptr> pool;
  for (std::size_t i = 0; i < certs.size(); ++i)
    if (i != leaf) pool.push_back(std::move(certs[i].cert));
  if (leaf != certs.size()) {
    out.leaf = std::move(certs[leaf].cert);
    out.chain = chain_then_rest(out.leaf.get(), std::move(pool));
  } else {
    out.chain = ca_only_chain(std::move(pool));
  }
  ERR_clear_error();
  return out;
}

} // namespace tokenprov::pkcs12
