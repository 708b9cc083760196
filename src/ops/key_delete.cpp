// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/key_delete.hpp"

#include "tokenprov/interrupt.hpp"
#include "tokenprov/ossl.hpp"
#include "tokenprov/uri.hpp"

#include <openssl/x509.h>

namespace tokenprov {

DeleteResult delete_key(p11::Session& s, const DeleteRequest& req) {
  KeyRef k = find_key(s, req.key);
  DeleteResult r;
  r.label = k.label;
  r.id = k.id;
  const std::string name = "The key '" + k.label + "' (id " + to_hex(k.id) + ")";

  std::vector<CK_OBJECT_HANDLE> certs;
  if (!k.id.empty()) {
    p11::Attributes t;
    t.add_class(CKO_CERTIFICATE).add_bytes(CKA_ID, k.id);
    certs = s.find(t);
  }
  std::vector<std::string> subjects;
  for (auto h : certs) {
    auto der = s.attr_bytes(h, CKA_VALUE).value_or(p11::Bytes{});
    const unsigned char* p = der.data();
    ossl::X509Ptr x(der.empty() ? nullptr : d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    subjects.push_back(x ? ossl::name_oneline(X509_get_subject_name(x.get())) : s.attr_string(h, CKA_LABEL));
  }
  if (!certs.empty() && !req.with_certificate)
    fail(ExitCode::Exists,
         name + " has " + std::to_string(certs.size()) + " certificate(s) (" + subjects.front() +
             "); nothing was removed.",
         "Add --with-certificate to remove the certificate with the key (back it up first if it may be needed).");
  if (!req.force)
    fail(ExitCode::Exists,
         name + (certs.empty() ? "" : " and its certificate") + " would be erased for good; nothing was removed.",
         "Add --force if that is what you want.");
  check_interrupt(ExitCode::Token, "before anything was removed");
  // Certificates first, the private key last: a run cut short leaves the key,
  // which the same command finds and removes when run again.
  for (auto h : certs)
    s.destroy(h);
  r.certificates = subjects;
  if (k.pub != CK_INVALID_HANDLE) {
    s.destroy(k.pub);
    r.public_key = true;
  }
  s.destroy(k.priv);
  return r;
}

} // namespace tokenprov
