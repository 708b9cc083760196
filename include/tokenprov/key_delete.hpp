// SPDX-License-Identifier: Apache-2.0
// Removing a key pair on purpose (`tokenprov delete`): the private key, its
// public key and, when asked, the certificates under its CKA_ID. The only
// command that erases keys; it refuses without force, and refuses a key that
// has a certificate unless the certificate is to go too.
#pragma once

#include "tokenprov/keys.hpp"

#include <string>
#include <vector>

namespace tokenprov {

struct DeleteRequest {
  std::string key; // selector: URI, id:HEX or label
  bool force = false;
  bool with_certificate = false;
};

struct DeleteResult {
  std::string label;
  p11::Bytes id;
  bool public_key = false;               // a public half was there and was removed
  std::vector<std::string> certificates; // subjects of the certificates removed
};

// Throws Error(Exists) without force, or when the key has a certificate and
// with_certificate is not set; nothing is removed then. Removes the
// certificates first and the private key last: a run cut short leaves a key
// that the same command removes when run again.
DeleteResult delete_key(p11::Session& s, const DeleteRequest& req);

} // namespace tokenprov
