// SPDX-License-Identifier: Apache-2.0
#include "scep_http.hpp"

#include "curl_common.hpp"

#include "tokenprov/interrupt.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <memory>
#include <mutex>

#ifndef TOKENPROV_VERSION
#define TOKENPROV_VERSION "dev"
#endif

namespace tokenprov::scep {

using ossl::Bytes;

namespace {

using curl::CurlPtr;
using curl::kMaxBody;
using curl::Sink;
using curl::SlistPtr;

// Called by libcurl at least once a second during a transfer: a SIGINT,
// SIGTERM or SIGHUP ends the transfer (CURLE_ABORTED_BY_CALLBACK).
int scep_curl_progress(void*, curl_off_t, curl_off_t, curl_off_t, curl_off_t) { return interrupted() ? 1 : 0; }

} // namespace

std::string body_snippet(const Bytes& b) {
  std::string s;
  for (std::size_t i = 0; i < b.size() && s.size() < 160; ++i) {
    unsigned char c = b[i];
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    if (c < 0x20 || c > 0x7e) return {}; // binary: say nothing
    s.push_back(static_cast<char>(c));
  }
  while (!s.empty() && s.back() == ' ')
    s.pop_back();
  return s;
}

std::string op_url(const std::string& base, const std::string& op) {
  return base + (base.find('?') == std::string::npos ? "?" : "&") + "operation=" + op;
}

Bytes http(const Options& opts, const std::string& url, const std::string& op, const Bytes* post_body) {
  curl::init_once();
  CurlPtr c(curl_easy_init());
  if (!c) fail(ExitCode::Internal, "Cannot start an HTTP client (curl_easy_init failed).");
  Sink sink;
  char errbuf[CURL_ERROR_SIZE] = {0};
  SlistPtr headers;
  long timeout = opts.http_timeout_seconds > 0 ? opts.http_timeout_seconds : 60;
  curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c.get(), CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c.get(), CURLOPT_CONNECTTIMEOUT, std::min(timeout, 15L));
  curl_easy_setopt(c.get(), CURLOPT_TIMEOUT, timeout);
  curl_easy_setopt(c.get(), CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c.get(), CURLOPT_MAXREDIRS, 5L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(c.get(), CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c.get(), CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
  curl_easy_setopt(c.get(), CURLOPT_USERAGENT, "tokenprov/" TOKENPROV_VERSION);
  curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, curl::sink_write);
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(c.get(), CURLOPT_XFERINFOFUNCTION, scep_curl_progress);
  curl_easy_setopt(c.get(), CURLOPT_NOPROGRESS, 0L);
  if (post_body) {
    curl_slist* h = curl_slist_append(nullptr, "Content-Type: application/x-pki-message");
    curl_slist* h2 = h ? curl_slist_append(h, "Expect:") : nullptr; // no 100-continue round trip
    headers.reset(h2 ? h2 : h);
    curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(c.get(), CURLOPT_POST, 1L);
    curl_easy_setopt(c.get(), CURLOPT_POSTFIELDS, reinterpret_cast<const char*>(post_body->data()));
    curl_easy_setopt(c.get(), CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(post_body->size()));
  }
  const std::string where = "while waiting for the SCEP server at " + opts.url + " (" + op + ")";
  check_interrupt(ExitCode::Ca, where);
  CURLcode rc = curl_easy_perform(c.get());
  check_interrupt(ExitCode::Ca, where);
  if (rc != CURLE_OK) {
    if (sink.too_big)
      fail(ExitCode::Ca,
           "The SCEP server at " + opts.url + " sent an answer to " + op + " larger than " +
               std::to_string(kMaxBody >> 20) + " MiB; that is not a SCEP answer.",
           "Check that the URL points at the SCEP endpoint.");
    std::string why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (rc == CURLE_OPERATION_TIMEDOUT)
      fail(ExitCode::Ca, "The SCEP server at " + opts.url + " did not answer " + op + " in time (" + why + ").",
           "Check that the server is running and reachable, then run the command again.");
    fail(ExitCode::Ca, "Cannot reach the SCEP server at " + opts.url + " (" + op + "): " + why + ".",
         "Check the URL and that the SCEP server is running and reachable from here.");
  }
  long status = 0;
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) {
    std::string snip = body_snippet(sink.body);
    fail(ExitCode::Ca,
         "The SCEP server at " + opts.url + " answered " + op + " with HTTP status " + std::to_string(status) +
             (snip.empty() ? std::string(".") : ": " + snip + "."),
         status == 404 ? "Check the SCEP URL (the path is often /scep or /cgi-bin/pkiclient.exe)."
                       : "The CA refused or failed to process the request; check its logs or ask its operator.");
  }
  return std::move(sink.body);
}

std::string url_escape(const std::string& s) {
  curl::init_once();
  CurlPtr c(curl_easy_init());
  if (!c) fail(ExitCode::Internal, "Cannot start an HTTP client (curl_easy_init failed).");
  char* e = curl_easy_escape(c.get(), s.c_str(), static_cast<int>(s.size()));
  if (!e) fail(ExitCode::Internal, "Cannot URL-encode the SCEP message.");
  std::string out(e);
  curl_free(e);
  return out;
}

} // namespace tokenprov::scep
