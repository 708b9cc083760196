// SPDX-License-Identifier: Apache-2.0
// One HTTP POST over libcurl (loaded on first use, src/curl_lazy.cpp) for
// protocols that exchange binary messages by POST (CMP). Knows no message
// format. Private to the library.
#pragma once

#include "tokenprov/ossl.hpp"

#include <string>

namespace tokenprov {

// POSTs BODY to URL as CONTENT_TYPE and returns the answer's body and HTTP
// status. Unreachable servers, timeouts (TIMEOUT_SECONDS per exchange,
// connecting at most 15 s of it) and answers over 4 MiB are Error(Ca) naming
// WHAT ("the CMP server") and URL.
struct HttpAnswer {
  long status = 0;
  std::string content_type;
  ossl::Bytes body;
};
HttpAnswer http_post(const std::string& url, const std::string& content_type, const ossl::Bytes& body,
                     int timeout_seconds, const std::string& what);

} // namespace tokenprov
