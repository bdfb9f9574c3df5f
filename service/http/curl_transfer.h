// Internal to service/http: one request's life inside CurlHttpClient, and how it is set up on
// and read back from a libcurl easy handle.
//
// A Transfer is created by Send(), owned by the event thread from then on, and destroyed after
// its callback ran. The functions here only touch the Transfer and the easy handle given; the
// event loop (curl_http_client.cc) owns queueing, the multi handle and the handle pool.
//
// Thread-safety: a Transfer is used by one thread at a time (handed over under the client's
// mutex). The functions are safe to call concurrently on different transfers and handles.
#ifndef USERPILOT_GATEWAY_SERVICE_HTTP_CURL_TRANSFER_H_
#define USERPILOT_GATEWAY_SERVICE_HTTP_CURL_TRANSFER_H_

#include <curl/curl.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/http/curl_http_client.h"
#include "service/http/http_client.h"

namespace userpilot::gateway::http_internal {

struct Transfer {
  Transfer() = default;
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;
  ~Transfer();

  HttpRequest request;
  HttpClient::Callback done;
  absl::Time send_time;
  uint64_t seq = 0;  // Arrival order in the queue.
  // Set by Send() when the outcome is known without the network; such a transfer only needs its
  // callback run. OK means "not decided".
  absl::Status decided;
  HttpResult result;  // Filled in when the transfer ends; response filled while it runs.

  // While handed to libcurl:
  absl::Time started;  // When it was handed over.
  curl_slist* header_list = nullptr;
  size_t max_response_bytes = 0;
  size_t received_bytes = 0;  // Headers and body so far, against max_response_bytes.
  bool response_too_large = false;
  bool connect_timeout_binding = false;
  char error[CURL_ERROR_SIZE] = {};
  // For a request.body_source: where libcurl reads next (it seeks back to 0 to resend), and why
  // reading failed, if it did.
  int64_t body_offset = 0;
  absl::Status body_read_error;
};

// What libcurl cannot check for us: the method and header names are HTTP tokens; the URL and
// header values hold no CR, LF or NUL (no header injection); at most one of body and
// body_source is set. INVALID_ARGUMENT naming the offending header by position and name, never
// by value.
absl::Status ValidateRequest(const HttpRequest& request);

// Sets every option of `easy` (fresh or curl_easy_reset) to run `t` with `options`; the total
// timeout is what is left of the deadline at `now`. `t` must outlive the transfer: libcurl keeps
// pointers to its URL, body, header list and buffers.
absl::Status ConfigureEasy(CURL* easy, Transfer& t, const CurlHttpClientOptions& options,
                           absl::Time now);

// Fills t.result from a transfer libcurl finished with `code`.
void FinishFromCurl(CURL* easy, Transfer& t, CURLcode code);

// Fills t.result for a transfer ended by the client while libcurl still ran it (deadline
// backstop, shutdown). `code` is DEADLINE_EXCEEDED or CANCELLED.
void FinishAbandoned(CURL* easy, Transfer& t, absl::StatusCode code, absl::string_view why);

// Fills t.result for a transfer that never reached libcurl (not attempted, not sent).
void FinishUnsent(Transfer& t, absl::Status status);

}  // namespace userpilot::gateway::http_internal

#endif  // USERPILOT_GATEWAY_SERVICE_HTTP_CURL_TRANSFER_H_
