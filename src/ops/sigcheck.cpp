// SPDX-License-Identifier: Apache-2.0
#include "tokenprov/sigcheck.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/rand.h>

namespace tokenprov {

void check_signature(const p11::Session& s, const KeyRef& k, X509* cert) {
  ossl::Bytes msg(32);
  if (RAND_bytes(msg.data(), static_cast<int>(msg.size())) != 1)
    ossl::fail_ssl(ExitCode::Internal, "Cannot make random bytes for the signature check");
  Signature sig = sign_message(s, k, msg);

  int md_nid = NID_undef, pk_nid = NID_undef;
  if (!OBJ_find_sigid_algs(sig.sig_nid, &md_nid, &pk_nid))
    fail(ExitCode::Internal, "Unknown signature algorithm in the signature check.");
  const EVP_MD* md = md_nid == NID_undef ? nullptr : EVP_get_digestbynid(md_nid);
  EVP_PKEY* pub = X509_get0_pubkey(cert);
  if (!pub) ossl::fail_ssl(ExitCode::BadInput, "The certificate's public key cannot be read");
  ossl::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  int ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, pub) == 1 &&
           EVP_DigestVerify(ctx.get(), sig.value.data(), sig.value.size(), msg.data(), msg.size()) == 1;
  ERR_clear_error();
  if (!ok)
    fail(ExitCode::Token,
         "The signature the token made with the key '" + k.label + "' does not verify with its certificate (" +
             ossl::name_oneline(X509_get_subject_name(cert)) + ").",
         "The certificate on the token is not this key's, or the token signs wrongly; check with 'tokenprov list'.");
}

} // namespace tokenprov
