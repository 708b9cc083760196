// SPDX-License-Identifier: Apache-2.0
// SCEP client, RFC 8894: the CA's capabilities (GetCACaps) and certificates
// (GetCACert), which of them is the CA and which the RA, and the pinning.
#include "scep_detail.hpp"
#include "scep_http.hpp"
#include "tokenprov/certs.hpp"

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>

namespace tokenprov::scep {

using ossl::Bytes;
using ossl::X509Ptr;

namespace detail {

void say(const Options& o, const std::string& msg) {
  if (o.progress) o.progress(msg);
}

std::string lower(std::string s) {
  for (auto& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool same_cert(X509* a, X509* b) {
  return X509_cmp(a, b) == 0;
}

bool is_ca_cert(X509* c) {
  return X509_check_ca(c) > 0;
}

std::string subject_of(X509* c) {
  return ossl::name_oneline(X509_get_subject_name(c));
}

} // namespace detail

using namespace detail;

namespace {

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

void check_url(const Options& opts) {
  std::string u = lower(opts.url.substr(0, 8));
  if (u.rfind("http://", 0) != 0 && u.rfind("https://", 0) != 0)
    fail(ExitCode::Usage, "The SCEP URL '" + opts.url + "' is not an http:// or https:// URL.",
         "Pass the server's SCEP endpoint, for example http://ca.example.com/scep.");
}

} // namespace

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

} // namespace tokenprov::scep
