// SPDX-License-Identifier: Apache-2.0
// --cert-dir: the folder of answers a provision or fleet picks certificates up
// from (private to src/flows).
#pragma once

#include "tokenprov/ossl.hpp"

#include <string>
#include <vector>

namespace tokenprov::cert_dir {

// The folder's files (not those starting with '.'), sorted; exit 5 when it
// cannot be read.
std::vector<std::string> list(const std::string& dir);

// The files of DIR in the order to try them for the key WANT (DER
// SubjectPublicKeyInfo): those that visibly carry it first, then the rest (a
// certificate could encode the key differently). In a folder of many answers
// (a fleet's) only the right file gets parsed.
std::vector<std::string> files_for(const std::string& dir, const ossl::Bytes& want);

} // namespace tokenprov::cert_dir
