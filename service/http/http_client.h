// An asynchronous HTTP/1.1 client: the only way the gateway talks to the network upstream.
//
// `HttpClient` is the seam between the Userpilot API mapping (upstream/) and the transport. The
// production implementation (curl_http_client.h) drives libcurl's multi interface on one event
// thread; tests substitute a fake. Nothing outside http/ includes curl.
//
// Thread-safety: Send() may be called from any thread, concurrently. The completion runs on a
// thread of the client's (never inside Send()), possibly concurrently with other completions;
// it must not block. Only a request marked `short_callback` may have its completion run on the
// thread that drives the network (the client decides; see HttpRequest::short_callback).
#ifndef USERPILOT_GATEWAY_SERVICE_HTTP_HTTP_CLIENT_H_
#define USERPILOT_GATEWAY_SERVICE_HTTP_HTTP_CLIENT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace userpilot::gateway {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// A request body that is read piece by piece while it is sent, for bodies too large to hold in
// memory (file uploads; see body_source.h for a file, a string and their concatenation).
//
// Reads are positional (pread-like), so one source may serve several attempts of a request, or
// several requests, at once: a retry, or libcurl's own resend on a fresh connection, simply
// reads again from offset 0.
//
// Thread-safety: implementations must allow ReadAt() from any thread, concurrently. ReadAt()
// runs on the HTTP client's event thread, so it must be quick: reading a local file is fine,
// anything that can wait on the network is not.
class HttpBodySource {
 public:
  virtual ~HttpBodySource() = default;

  // The exact number of bytes the body holds (sent as Content-Length). Constant.
  virtual int64_t size() const = 0;

  // Copies up to `length` bytes starting at `offset` (0 <= offset <= size()) into `buffer` and
  // returns how many were copied: fewer than asked only at the end, 0 only when offset ==
  // size(). An error (say, the file could not be read) aborts the request.
  virtual absl::StatusOr<size_t> ReadAt(int64_t offset, char* buffer, size_t length) const = 0;
};

struct HttpRequest {
  std::string method;   // "GET", "POST", "DELETE", ...
  std::string url;      // Absolute URL, already percent-encoded.
  HttpHeaders headers;  // Sent as given, in order.
  std::string body;     // Sent as is; empty means no body.
  // A body read while it is sent, instead of `body` (which must then be empty). Shared, so a
  // retry may send the same source again; the client keeps a reference until the request
  // completes.
  std::shared_ptr<const HttpBodySource> body_source;
  // The request is abandoned (DEADLINE_EXCEEDED) if not complete by then. Required: every wait
  // has a deadline.
  absl::Time deadline = absl::InfinitePast();
  // The completion is short and bounded: bookkeeping and one answer to one caller (no fan-out,
  // no disk, nothing that waits). A client with a network thread may then run it on that
  // thread when the answer is small, instead of handing it to another thread: one thread
  // hand-off fewer per request. False (the default): never on the network thread.
  bool short_callback = false;
};

struct HttpResponse {
  long status_code = 0;  // NOLINT(runtime/int): curl's type.
  HttpHeaders headers;   // Names lower-cased, in the order received.
  std::string body;

  // The value of the first header named `name` (case-insensitive), or "" when absent.
  absl::string_view Header(absl::string_view name) const;
};

// What became of one request.
struct HttpResult {
  // OK when an HTTP response arrived (whatever its status code). Otherwise a transport failure:
  // DEADLINE_EXCEEDED when the deadline passed, UNAVAILABLE for connection and protocol
  // failures (and a response larger than the client accepts), CANCELLED when the client shut
  // down, RESOURCE_EXHAUSTED when the client's own queue was full (never sent),
  // INVALID_ARGUMENT when the request itself is malformed (never sent). The message never
  // contains request headers, the URL's path or query, or the body.
  absl::Status transport_status;
  // False only when the request certainly never reached the server (for example the
  // connection was refused, or the name did not resolve), so even a non-idempotent request can
  // be retried safely. True whenever any byte of the request may have been sent.
  bool request_may_have_been_sent = true;
  // True when a reply arrived but was not a valid HTTP response (a garbage or missing status
  // line, an undecodable content encoding); transport_status is then UNAVAILABLE and the
  // request was sent. The upstream's fault, not the network's: the layer above may report it
  // as a bad response rather than as an unreachable upstream.
  bool reply_not_http = false;
  // False when the client answered without trying the network at all: its queue was full, the
  // request could no longer be answered in time, it was malformed, or the client was shutting
  // down (request_may_have_been_sent is then false too). Such an outcome is the gateway's own
  // decision and says nothing about the upstream's health.
  bool attempted = true;
  HttpResponse response;   // Meaningful only when transport_status is OK.
  absl::Duration elapsed;  // From Send() to completion.
};

class HttpClient {
 public:
  using Callback = absl::AnyInvocable<void(HttpResult) &&>;

  virtual ~HttpClient() = default;

  // Starts `request` and returns at once. `done` runs exactly once, on one of the client's
  // threads (the network thread only for a `short_callback` request), never inside Send()
  // itself.
  virtual void Send(HttpRequest request, Callback done) = 0;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_HTTP_HTTP_CLIENT_H_
