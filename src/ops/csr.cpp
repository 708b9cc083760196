// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/csr.hpp"

#include "tokenprov/utf8.hpp"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <memory>

namespace tokenprov {

namespace {

ossl::GeneralNamePtr make_general_name(const std::string& san) {
  auto colon = san.find(':');
  if (colon == std::string::npos || colon + 1 == san.size())
    fail(ExitCode::Usage, "The SAN '" + san + "' is not TYPE:VALUE.", "Use email:, dns:, uri: or upn:.");
  std::string type = san.substr(0, colon), value = san.substr(colon + 1);
  // dns:, email: and uri: are IA5Strings: ASCII only. No IDNA library is linked, so an
  // internationalized name is refused with the form to use instead, never written as raw bytes.
  bool ascii = std::all_of(value.begin(), value.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (!ascii && (type == "dns" || type == "email" || type == "uri")) {
    std::string shown = escape_invalid_utf8(san);
    if (type == "dns")
      fail(ExitCode::BadInput, "The SAN '" + shown + "' is not ASCII: a DNS name in a certificate is an IA5String.",
           "Give the name in its A-label (punycode) form, e.g. dns:xn--bcher-kva.example for bücher.example "
           "(the idn2 tool converts it).");
    if (type == "email")
      fail(ExitCode::BadInput, "The SAN '" + shown + "' is not ASCII: an e-mail address in a certificate is an IA5String.",
           "Give the domain in its A-label (punycode) form, e.g. email:anna@xn--bcher-kva.example; a non-ASCII "
           "local part cannot be written as an rfc822Name.");
    fail(ExitCode::BadInput, "The SAN '" + shown + "' is not ASCII: a URI in a certificate is an IA5String.",
         "Percent-encode the non-ASCII characters (and give the host in its A-label form).");
  }
  if (type == "upn") require_utf8(value, "UPN SAN");
  ossl::GeneralNamePtr gn(GENERAL_NAME_new());
  auto ia5 = [&](int gtype) {
    ASN1_IA5STRING* s = ASN1_IA5STRING_new();
    ASN1_STRING_set(s, value.data(), static_cast<int>(value.size()));
    GENERAL_NAME_set0_value(gn.get(), gtype, s); // GN takes S
  };
  if (type == "email") {
    if (value.find('@') == std::string::npos) fail(ExitCode::Usage, "The e-mail SAN '" + value + "' has no '@'.");
    ia5(GEN_EMAIL);
  } else if (type == "dns") {
    ia5(GEN_DNS);
  } else if (type == "uri") {
    if (value.find(':') == std::string::npos) fail(ExitCode::Usage, "The URI SAN '" + value + "' has no scheme.");
    ia5(GEN_URI);
  } else if (type == "upn") {
    // Microsoft's UPN: otherName 1.3.6.1.4.1.311.20.2.3 with a UTF8String.
    ASN1_OBJECT* oid = OBJ_txt2obj("1.3.6.1.4.1.311.20.2.3", 1);
    ASN1_TYPE* val = ASN1_TYPE_new();
    ASN1_UTF8STRING* u = ASN1_UTF8STRING_new();
    ASN1_STRING_set(u, value.data(), static_cast<int>(value.size()));
    ASN1_TYPE_set(val, V_ASN1_UTF8STRING, u);
    GENERAL_NAME_set0_othername(gn.get(), oid, val); // GN takes OID and VAL
  } else {
    fail(ExitCode::Usage, "'" + type + "' is not a SAN type tokenprov knows (in '" + san + "').",
         "Use email:, dns:, uri: or upn:.");
  }
  return gn;
}

// The request's extensionRequest, added once: the subjectAltName (the renewed
// certificate's, or SANS), then R.extensions of other types.
void add_extensions(X509_REQ* req, const CsrRequest& r) {
  ossl::ExtensionStackPtr exts(sk_X509_EXTENSION_new_null());
  if (r.like) {
    int at = X509_get_ext_by_NID(r.like, NID_subject_alt_name, -1);
    if (at >= 0) sk_X509_EXTENSION_push(exts.get(), X509_EXTENSION_dup(X509_get_ext(r.like, at)));
  } else if (!r.sans.empty()) {
    ossl::GeneralNamesPtr gens(sk_GENERAL_NAME_new_null());
    for (auto& san : r.sans) {
      auto gn = make_general_name(san);
      if (sk_GENERAL_NAME_push(gens.get(), gn.get()) > 0) gn.release(); // GENS took it
    }
    sk_X509_EXTENSION_push(exts.get(), X509V3_EXT_i2d(NID_subject_alt_name, 0, gens.get()));
  }
  for (auto& der : r.extensions) {
    const unsigned char* p = der.data();
    ossl::X509ExtensionPtr e(d2i_X509_EXTENSION(nullptr, &p, static_cast<long>(der.size())));
    if (!e) ossl::fail_ssl(ExitCode::Internal, "Cannot read an extension for the request");
    bool dup = false;
    for (int i = 0; i < sk_X509_EXTENSION_num(exts.get()); ++i)
      dup = dup || OBJ_cmp(X509_EXTENSION_get_object(sk_X509_EXTENSION_value(exts.get(), i)), X509_EXTENSION_get_object(e.get())) == 0;
    if (!dup && sk_X509_EXTENSION_push(exts.get(), e.get()) > 0) e.release(); // EXTS took it
  }
  if (sk_X509_EXTENSION_num(exts.get()) > 0 && !X509_REQ_add_extensions(req, exts.get()))
    ossl::fail_ssl(ExitCode::Internal, "Cannot add the extensions to the request");
}

} // namespace

void check_san(const std::string& san) {
  make_general_name(san); // checked, then freed
}

ossl::X509ReqPtr make_csr(const p11::Session& s, const KeyRef& k, const CsrRequest& r) {
  auto pub = public_key(s, k);
  ossl::X509ReqPtr req(X509_REQ_new());
  X509_REQ_set_version(req.get(), 0);
  if (r.like) {
    X509_REQ_set_subject_name(req.get(), X509_get_subject_name(r.like));
  } else {
    auto name = ossl::parse_dn(r.subject);
    X509_REQ_set_subject_name(req.get(), name.get());
  }
  bool direct = r.write_only && ossl::set_pubkey_direct(X509_REQ_get_X509_PUBKEY(req.get()), pub.get());
  if (!direct && !X509_REQ_set_pubkey(req.get(), pub.get()))
    ossl::fail_ssl(ExitCode::Internal, "Cannot set the request's key");

  add_extensions(req.get(), r);
  if (r.challenge) {
    if (!X509_REQ_add1_attr_by_NID(req.get(), NID_pkcs9_challengePassword, MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(r.challenge->str().data()),
                                   static_cast<int>(r.challenge->size())))
      ossl::fail_ssl(ExitCode::Internal, "Cannot add the challenge to the request");
  }

  ossl::X509AlgorPtr alg(X509_ALGOR_new());
  set_signature_algorithm(alg.get(), k, pub.get(), r.scheme);
  X509_REQ_set1_signature_algo(req.get(), alg.get());
  alg.reset();

  unsigned char* raw_tbs = nullptr;
  int tbs_len = i2d_re_X509_REQ_tbs(req.get(), &raw_tbs);
  ossl::BufferPtr tbs(raw_tbs);
  if (tbs_len <= 0) ossl::fail_ssl(ExitCode::Internal, "Cannot encode the request body");
  Signature sig = sign_message(s, k, std::span<const std::uint8_t>(tbs.get(), static_cast<std::size_t>(tbs_len)), r.scheme);
  tbs.reset();
  ASN1_BIT_STRING* bits = ASN1_BIT_STRING_new();
  ASN1_BIT_STRING_set(bits, sig.value.data(), static_cast<int>(sig.value.size()));
  bits->flags &= ~(ASN1_STRING_FLAG_BITS_LEFT | 0x07);
  bits->flags |= ASN1_STRING_FLAG_BITS_LEFT;
  X509_REQ_set0_signature(req.get(), bits);

  if (X509_REQ_verify(req.get(), pub.get()) != 1)
    ossl::fail_ssl(ExitCode::Token, "The token's signature on the request for '" + k.label + "' does not verify");
  return req;
}

KeyCsr make_key_csr(const p11::Session& s, const std::string& selector, const CsrRequest& req) {
  KeyCsr out;
  out.key = find_key(s, selector);
  if (req.scheme == SigScheme::RsaPss && out.key.type != CKK_RSA)
    fail(ExitCode::Usage, "--pss needs an RSA key; '" + out.key.label + "' is not one.");
  out.csr = make_csr(s, out.key, req);
  return out;
}

} // namespace tokenprov
