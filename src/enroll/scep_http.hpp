// SPDX-License-Identifier: Apache-2.0
// SCEP's HTTP transport (RFC 8894, section 4): one GET or POST per operation
// over libcurl (opened on first use, src/enroll/curl_lazy.cpp). Private to scep.cpp,
// which builds and reads the messages; nothing here knows PKCS#7.
#pragma once

#include "tokenprov/scep.hpp"

#include <string>

namespace tokenprov::scep {

// BASE?operation=OP (or &operation=OP when BASE has a query already).
std::string op_url(const std::string& base, const std::string& op);

// One HTTP exchange, POST when POST_BODY is not null (as
// application/x-pki-message); returns the body of a 200 answer. Unreachable,
// timeouts, answers over 4 MiB and non-200 answers are Error(Ca) naming
// opts.url and the operation OP.
ossl::Bytes http(const Options& opts, const std::string& url, const std::string& op, const ossl::Bytes* post_body);

// The printable start of a (probably textual) answer, for error messages;
// empty when it is binary.
std::string body_snippet(const ossl::Bytes& b);

// S percent-encoded for a URL's query (GET PKIOperation's message=).
std::string url_escape(const std::string& s);

} // namespace tokenprov::scep
