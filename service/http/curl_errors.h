// Internal to service/http: what a failed libcurl transfer means for the caller.
//
// A finished transfer's CURLcode plus a few facts read from the easy handle decide the
// HttpResult's transport status and `request_may_have_been_sent`. The decision is a pure
// function so it can be tested table-driven, without a network.
//
// Two rules matter most:
//   * `request_may_have_been_sent` is false only when the failure happened before the request
//     could leave (name resolution, TCP connect, TLS handshake, a malformed URL) AND libcurl
//     reports that not one byte of it was written to a socket. libcurl counts the written bytes
//     across its own internal retries, so a request that went out on a dead keep-alive
//     connection and then failed to reconnect still counts as possibly sent.
//   * Messages name the method and the origin (scheme://host:port) only: never the path, query,
//     body or any request header, because the Authorization header holds the API key.
//
// Thread-safety: pure functions over values.
#ifndef USERPILOT_GATEWAY_SERVICE_HTTP_CURL_ERRORS_H_
#define USERPILOT_GATEWAY_SERVICE_HTTP_CURL_ERRORS_H_

#include <curl/curl.h>

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "service/http/http_client.h"

namespace userpilot::gateway::http_internal {

// What is known about a transfer that ended with `code` != CURLE_OK.
struct CurlFailure {
  CURLcode code = CURLE_OK;
  // CURLINFO_REQUEST_SIZE and CURLINFO_SIZE_UPLOAD_T were both 0: libcurl never wrote a byte
  // of this request (over all of its attempts) to a socket.
  bool nothing_written = false;
  // The transfer got as far as a usable connection: new (TCP, and TLS for https) or reused.
  // From CURLINFO_PRETRANSFER_TIME_T > 0; CONNECT_TIME stays 0 on a reused connection.
  bool connected = false;
  // The caller's deadline had passed when the failure was read.
  bool deadline_passed = false;
  // The connect timeout was shorter than the time left to the deadline, so a timeout while
  // connecting was the connect timeout, not the caller's deadline.
  bool connect_timeout_binding = false;
  // Our own size cap stopped the transfer (the write or header callback refused more data).
  bool response_too_large = false;
  size_t max_response_bytes = 0;
  absl::string_view method;
  absl::string_view origin;  // From OriginOf(url).
  absl::string_view detail;  // libcurl's error buffer; may be empty.
};

struct TransportFailure {
  absl::Status status;
  bool request_may_have_been_sent = true;
  // See HttpResult::reply_not_http.
  bool reply_not_http = false;
};

// Maps a failed transfer onto the caller-facing status (google.rpc.Code semantics: what should
// the caller do next). The message is not yet redacted; see RedactHeaderValues().
//   URL malformed, scheme refused (before connecting)       INVALID_ARGUMENT, not sent
//   a reply that is not HTTP (garbage status line, no       UNAVAILABLE, sent, reply_not_http
//     status line, undecodable content encoding)
//   libcurl's total timeout                                  DEADLINE_EXCEEDED
//   connect timeout with time left before the deadline      UNAVAILABLE, not sent
//   libcurl misuse, out of memory, our own callbacks        INTERNAL
//   the response over max_response_bytes                    UNAVAILABLE, sent
//   anything else (resolve, connect, TLS, dropped, reset)   UNAVAILABLE
TransportFailure MapCurlFailure(const CurlFailure& failure);

// "scheme://host[:port]" of an absolute URL, with any userinfo removed; "<invalid url>" when
// `url` has no scheme.
std::string OriginOf(absl::string_view url);

// Defence in depth: replaces in `message` every request header value (and every
// whitespace-separated token of one, e.g. the key in "Bearer <key>") of 8 characters or more
// with "[redacted]". The messages built here never include headers; this guards against a
// libcurl message that might echo one.
std::string RedactHeaderValues(absl::string_view message, const HttpHeaders& headers);

}  // namespace userpilot::gateway::http_internal

#endif  // USERPILOT_GATEWAY_SERVICE_HTTP_CURL_ERRORS_H_
