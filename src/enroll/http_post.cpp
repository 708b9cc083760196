// SPDX-License-Identifier: Apache-2.0
#include "http_post.hpp"

#include "curl_common.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <memory>
#include <mutex>

#ifndef TOKENPROV_VERSION
#define TOKENPROV_VERSION "dev"
#endif

namespace tokenprov {

namespace {
using curl::CurlPtr;
using curl::kMaxBody;
using curl::Sink;
using curl::SlistPtr;
} // namespace

HttpAnswer http_post(const std::string& url, const std::string& content_type, const ossl::Bytes& body,
                     int timeout_seconds, const std::string& what) {
  curl::init_once();
  CurlPtr c(curl_easy_init());
  if (!c) fail(ExitCode::Internal, "Cannot start an HTTP client (curl_easy_init failed).");
  Sink sink;
  char errbuf[CURL_ERROR_SIZE] = {0};
  long timeout = timeout_seconds > 0 ? timeout_seconds : 60;
  std::string ct = "Content-Type: " + content_type;
  curl_slist* h = curl_slist_append(nullptr, ct.c_str());
  curl_slist* h2 = h ? curl_slist_append(h, "Expect:") : nullptr;
  SlistPtr headers(h2 ? h2 : h);
  curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c.get(), CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c.get(), CURLOPT_CONNECTTIMEOUT, std::min(timeout, 15L));
  curl_easy_setopt(c.get(), CURLOPT_TIMEOUT, timeout);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(c.get(), CURLOPT_PROTOCOLS_STR, "http,https");
#endif
  curl_easy_setopt(c.get(), CURLOPT_USERAGENT, "tokenprov/" TOKENPROV_VERSION);
  curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, curl::sink_write);
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, headers.get());
  // One exchange per connection, in HTTP/1.0 as OpenSSL's own CMP client
  // sends it: `openssl cmp -port` (OpenSSL 3.0) otherwise waits for the next
  // message of a transaction on the kept-alive connection and refuses a
  // pollReq that arrives on a new one ("unexpected pkibody").
  curl_easy_setopt(c.get(), CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_0));
  curl_easy_setopt(c.get(), CURLOPT_POST, 1L);
  curl_easy_setopt(c.get(), CURLOPT_POSTFIELDS, reinterpret_cast<const char*>(body.data()));
  curl_easy_setopt(c.get(), CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  CURLcode rc = curl_easy_perform(c.get());
  if (rc != CURLE_OK) {
    if (sink.too_big)
      fail(ExitCode::Ca, what + " at " + url + " sent an answer larger than " + std::to_string(kMaxBody >> 20) + " MiB.",
           "Check that the URL points at the right endpoint.");
    std::string why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (rc == CURLE_OPERATION_TIMEDOUT)
      fail(ExitCode::Ca, what + " at " + url + " did not answer in time (" + why + ").",
           "Check that the server is running and reachable, then run the command again.");
    fail(ExitCode::Ca, "Cannot reach " + what + " at " + url + ": " + why + ".",
         "Check the URL and that the server is running and reachable from here.");
  }
  HttpAnswer a;
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &a.status);
  char* type = nullptr;
  if (curl_easy_getinfo(c.get(), CURLINFO_CONTENT_TYPE, &type) == CURLE_OK && type) a.content_type = type;
  a.body = std::move(sink.body);
  return a;
}

} // namespace tokenprov
