// SPDX-License-Identifier: Apache-2.0
// What the three libcurl clients (SCEP's scep_http.cpp, CMP's http_post.cpp,
// EST's est.cpp) share: owning pointers, the one-time global init, and the
// bounded sink their answers are written into.
#pragma once

#include "tokenprov/ossl.hpp"

#include <curl/curl.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>

namespace tokenprov::curl {

using CurlPtr = std::unique_ptr<CURL, ossl::Deleter<curl_easy_cleanup>>;
using SlistPtr = std::unique_ptr<curl_slist, ossl::Deleter<curl_slist_free_all>>;

// No answer of SCEP, CMP or EST is anywhere near this.
inline constexpr std::size_t kMaxBody = 4u << 20;

inline void init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// An answer's body, cut off (too_big) past kMaxBody.
struct Sink {
  ossl::Bytes body;
  bool too_big = false;
};

// CURLOPT_WRITEFUNCTION for a Sink (CURLOPT_WRITEDATA).
inline size_t sink_write(char* ptr, size_t size, size_t nmemb, void* user) {
  auto* sink = static_cast<Sink*>(user);
  std::size_t n = size * nmemb;
  if (sink->body.size() + n > kMaxBody) {
    sink->too_big = true;
    return 0;
  }
  sink->body.insert(sink->body.end(), reinterpret_cast<std::uint8_t*>(ptr), reinterpret_cast<std::uint8_t*>(ptr) + n);
  return n;
}

} // namespace tokenprov::curl
