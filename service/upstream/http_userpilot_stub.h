// HttpUserpilotStub: the UserpilotStub that speaks Userpilot's REST API over an HttpClient.
//
// For each call it builds one HTTP request - the method and path of the call's route
// (upstream_rpcs.h; a path parameter such as a job id percent-encoded as one segment) after
// `base_url`, the body of json_mapping.h, and the headers every Userpilot call takes:
//   Authorization: Token <api key>
//   X-API-Version: 2020-09-22
//   Accept: application/json
//   Content-Type: application/json        (only when there is a body)
//   traceparent: 00-<trace id>-<new span id>-<flags>  (when the call has a trace context: the
//   tracestate: <the caller's>                         trace id of CallOptions::trace, a span id
//                                                      of this attempt's own; tracestate when set)
// - with deadline min(caller's deadline, now + request_timeout), and maps the answer through
// error_mapping.h (status and facts) and json_mapping.h (ParseResponse). Acknowledgement
// responses carry Userpilot's `x-request-id` as `upstream_request_id`.
//
// CheckKey sends the key check (KeyCheckEndpoint, not an RPC) the same way, without a body.
//
// One attempt per call: retries, rate limiting and metrics are decorators stacked around this
// stub. When the per-attempt cap (not the caller's deadline) cuts a request short, the result
// is UNAVAILABLE, not DEADLINE_EXCEEDED: the caller still has time, and what it should do next
// is retry, not give up. Every answer carries the facts of its exchange (common/call_facts.h:
// HTTP status, request id, whether a failed request may have reached Userpilot, ...), for the
// layers above. A multipart upload is streamed from its source (body_source.h) under its own
// per-attempt cap, `upload_timeout`.
//
// The API key appears only in the Authorization header handed to the HttpClient: it is never
// logged, and every text from Userpilot - an error's status and facts (RedactSecret), every
// string of a successful answer (RedactStrings) - is scrubbed of every form of it
// (logging/redactor.h) before it reaches the caller or a log.
//
// Thread-safety: immutable after construction; every method may be called from any thread,
// concurrently. Callbacks run on the HttpClient's threads (on the thread that drives the network
// only for a call whose CallOptions::short_callback is set), never inside the call (the
// HttpClient's own guarantees); they parse the
// answer (size and depth bounded, linear time: json_mapping.h) and never block. A callback
// holds shared ownership of what it needs, so it stays valid if the stub is destroyed first;
// the HttpClient must outlive the stub and all its calls.
#ifndef USERPILOT_GATEWAY_SERVICE_UPSTREAM_HTTP_USERPILOT_STUB_H_
#define USERPILOT_GATEWAY_SERVICE_UPSTREAM_HTTP_USERPILOT_STUB_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "service/http/body_source.h"
#include "service/http/http_client.h"
#include "service/upstream/json_mapping.h"
#include "service/upstream/upstream_options.h"
#include "service/upstream/userpilot_stub.h"

namespace userpilot::gateway {

// The value of the `X-API-Version` header sent on every call.
inline constexpr absl::string_view kUserpilotApiVersion = "2020-09-22";

// Percent-encodes `segment` as exactly one URL path segment: every byte outside RFC 3986's
// unreserved set, and also `.`, becomes %XX (upper-case hex), so neither `/` nor a `.`/`..`
// segment can change the path. "bulk:jobs:NX-1" -> "bulk%3Ajobs%3ANX-1", "../x" -> "%2E%2E%2Fx".
std::string EncodePathSegment(absl::string_view segment);

class HttpUserpilotStub final : public RpcDispatcher<HttpUserpilotStub> {
 public:
  // Returns the current time; used for deadlines and HTTP-date Retry-After values.
  using Clock = std::function<absl::Time()>;

  // `http` must outlive this stub and every call made through it. `clock` is injectable for
  // tests; it must be safe to call from any thread.
  HttpUserpilotStub(HttpClient& http, UpstreamOptions options, Clock clock = absl::Now);

  HttpUserpilotStub(const HttpUserpilotStub&) = delete;
  HttpUserpilotStub& operator=(const HttpUserpilotStub&) = delete;

  // One attempt of any RPC (RpcDispatcher's hook): the route of the request
  // (Routing<Rpc>::For), its path parameter and body (json_mapping.h HttpFormOf), and for a 2xx
  // answer the parsed response (ParseResponse). A request whose form cannot be built
  // (a file upload without a target, say) is answered INVALID_ARGUMENT without being sent, still
  // through the HTTP client's thread.
  template <typename Rpc>
  void Call(const CallOptions& options, const typename Rpc::Request& request,
            StubCallback<typename Rpc::Response> done);

  // One attempt of the key check (not an RPC: KeyCheckEndpoint in upstream_rpcs.h, `GET
  // /v1/validate`), with the headers, deadline and error mapping of every call: OK for a 2xx
  // answer (its body is not read), else the mapped error (a 401/403 is
  // kUpstreamCredentialsRejected), with the facts of the exchange either way.
  void CheckKey(const CallOptions& options, absl::AnyInvocable<void(CallStatus) &&> done);

 private:
  struct Settings;

  template <typename Response>
  void Send(const CallOptions& options, const Route& route, HttpForm form,
            StubCallback<Response> done);
  // What Send and CheckKey share: sends `method` `path` with `form` and hands the HTTP result
  // to `conclude(result, endpoint, now, redactor)` -> Answer (a Result<T> or a CallStatus),
  // whose facts it completes (one attempt; an attempt timeout told apart from the caller's).
  template <typename Answer, typename ConcludeFn>
  void Exchange(const CallOptions& options, absl::string_view method, std::string path,
                absl::string_view endpoint, HttpForm form, ConcludeFn conclude,
                absl::AnyInvocable<void(Answer) &&> done);

  HttpClient& http_;
  std::shared_ptr<const Settings> settings_;  // Shared with in-flight callbacks.
};

// Instantiated in the .cc file, where Call<Rpc> is defined.
extern template class RpcDispatcher<HttpUserpilotStub>;

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_UPSTREAM_HTTP_USERPILOT_STUB_H_
