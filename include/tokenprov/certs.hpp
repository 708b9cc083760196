// SPDX-License-Identifier: Apache-2.0
// Certificates as they arrive from CAs and files: the one reader of
// certificate bundles (PEM, DER, PKCS#7) and the one chain orderer, shared by
// pickup, backup, restore's PKCS#12 reader and the enrollment protocols.
#pragma once

#include "tokenprov/fileio.hpp"
#include "tokenprov/ossl.hpp"

#include <openssl/pkcs7.h>

#include <span>
#include <string>
#include <vector>

namespace tokenprov {

// Every certificate in DATA: PEM (any number of CERTIFICATE / PKCS7 blocks),
// DER certificate, or PKCS#7 (PEM or DER). Nothing readable: Error(BadInput)
// naming SOURCE.
std::vector<ossl::X509Ptr> load_certificates(std::span<const std::uint8_t> data, const std::string& source);
std::vector<ossl::X509Ptr> load_certificate_file(const std::string& path, const InputKind& kind = input::certificate);

// The certificates a PKCS#7 signed-data (or signed-and-enveloped) carries; none for other types.
std::vector<ossl::X509Ptr> certs_of_pkcs7(PKCS7* p7);

// Moves the certificates of POOL that form the chain up from START (issuer
// first, at most 16) into the result; what is not on the chain stays in POOL.
// Where several certificates of POOL name the issuer (a re-keyed CA, a cross
// certificate), the one whose key verifies the signature is taken. Stops at a
// self-issued certificate other than START.
std::vector<ossl::X509Ptr> order_chain(X509* start, std::vector<ossl::X509Ptr>& pool);

} // namespace tokenprov
