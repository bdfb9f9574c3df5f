// The production HttpClient: libcurl's multi interface driven by one event thread.
//
// One CurlHttpClient carries every upstream HTTP call of the process. It owns a single event
// thread that runs all transfers through libcurl's multi interface, so Send() never blocks on
// DNS, connects or I/O (it validates, enqueues and wakes the thread) and thousands of concurrent
// requests cost one thread. Connections are HTTP/1.1 keep-alive and are reused across requests.
//
// Flow control, in one place: at most `max_in_flight` transfers run at once; up to `max_queued`
// more wait; beyond that a request fails at once with RESOURCE_EXHAUSTED and is never sent. A
// request's deadline bounds its whole life, queue included. A request that finds a free slot is
// sent. One that has to wait is sent only while it can still be answered in time: once no more
// of its deadline is left than the upstream's typical answer time (learnt from recent answers,
// latency_estimate.h), it completes with DEADLINE_EXCEEDED without being sent
// (request_may_have_been_sent false), at that moment rather than at its deadline. Waiting
// requests are started oldest first while the queue keeps up, and newest first once its oldest
// request has waited longer than a typical answer (adaptive LIFO): under sustained overload the
// slots then go to requests with most of their deadline left, and the oldest expire unsent. So
// against a slow upstream the slots serve requests that can still be answered, instead of
// requests that hold a slot until their deadline and answer nothing (issue 13 item 10).
//
// Security defaults: TLS peer and host verification are always on (`ca_file` only chooses the
// trust store); proxies are never taken from the environment; redirects are not followed; only
// http and https URLs are accepted. Error messages name the method and scheme://host:port, never
// the path, query, body or any request header (the Authorization header holds the API key).
//
// Costs on the event thread (measured on this 2-core machine): the first https connection
// parses the CA bundle (~100 ms, during which every transfer waits; the parsed store is then
// cached for 24 h); each later new TLS connection costs its handshake (milliseconds). DNS runs
// on libcurl's resolver threads. Keep-alive makes new connections rare.
//
// What is sent: the method, URL, headers and body exactly as given, plus Host,
// Content-Length (when there is a body, or for POST) and User-Agent (`user_agent`, unless the
// request has its own). A `body_source` body is read piece by piece on the event thread while
// it is sent (libcurl's read callback, 64 KiB at a time), with its size as Content-Length, so
// a file upload costs no more memory than a small request; libcurl rewinds it (seek callback)
// when it sends the request again. A failed read ends the request with INTERNAL. libcurl's own
// defaults "Accept: */*", "Expect: 100-continue" and "Content-Type:
// application/x-www-form-urlencoded" are suppressed unless the request sets those headers itself.
//
// Known limitation (libcurl 7.88 behaviour, not configurable): when a request written on a
// reused keep-alive connection gets no response byte before the connection closes, libcurl
// sends it once more on a fresh connection, whatever the method, and reports only the second
// outcome. A server that processed the first copy and then closed without answering sees the
// request twice, and the caller may get OK. max_idle_connection_age narrows the window
// (connections are retired before the server's idle timeout closes them); idempotency keys,
// where the API has them, close it.
//
// Where callbacks run. A request marked `short_callback` (HttpRequest: its callback finishes one
// call and does nothing slow) whose outcome carries at most `inline_completion_max_bytes` of
// response body has its callback run on the event thread, right after the transfer ends: the
// answer goes back to the caller without another thread hand-off (the gateway's unary calls).
// Every other callback is handed to a few completion threads (`completion_threads`), which run
// them in the order the transfers finished, possibly several at once; so a callback that takes
// CPU time (parsing a large or hostile answer, fanning a job's status out to its watchers)
// holds up neither the transfers in flight nor shutdown's cancellations, only the callbacks
// queued behind it, and only while every completion thread is busy. The size cap bounds what a
// short callback can cost the event thread: parsing at most that much JSON (linear time).
//
// Thread-safety: Send(), Stats() and Shutdown() may be called from any thread, concurrently,
// including from inside a completion callback. Callbacks run on the event thread (short ones,
// see above) or on the completion threads, never inside Send(), possibly concurrently with one
// another; they must not block or throw.
#ifndef USERPILOT_GATEWAY_SERVICE_HTTP_CURL_HTTP_CLIENT_H_
#define USERPILOT_GATEWAY_SERVICE_HTTP_CURL_HTTP_CLIENT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/http/http_client.h"

namespace userpilot::gateway {

struct CurlHttpClientOptions {
  // Transfers handed to libcurl at once. Must be >= 1.
  size_t max_in_flight = 256;
  // Requests accepted while all in-flight slots are busy, waiting for one. Beyond this,
  // Send() completes the request with RESOURCE_EXHAUSTED (not sent). Must be >= 1.
  size_t max_queued = 4096;
  // Open connections at most (busy and idle, all hosts together); also how many idle keep-alive
  // connections are kept for reuse. 0 means max_in_flight, which is what HTTP/1.1 (one request
  // per connection at a time) needs to run max_in_flight transfers truly in parallel. A smaller
  // value makes the excess transfers wait inside libcurl for a free connection; their deadlines
  // still hold.
  size_t max_connections = 0;
  // Limit on establishing a connection: TCP connect plus TLS handshake. A connect that runs out
  // of this time (but not of the request's deadline) fails with UNAVAILABLE, not sent. Must be
  // positive. The request's deadline caps it further.
  absl::Duration connect_timeout = absl::Seconds(5);
  // Idle keep-alive connections older than this are closed rather than reused. Keep it below
  // the idle timeout of the server and of any load balancer in front of it (often 60 s), so a
  // connection is not reused just as the server closes it: that race is when libcurl re-sends
  // a request (see "Known limitation" above). Whole seconds, at least 1 s.
  absl::Duration max_idle_connection_age = absl::Seconds(50);
  // Largest response accepted, body plus headers, in bytes; a larger one fails with UNAVAILABLE
  // naming the limit. Must be >= 1. Userpilot's JSON answers are far smaller.
  size_t max_response_bytes = size_t{8} << 20;
  // PEM bundle of trusted CA certificates; empty means the system's default bundle. Must be a
  // readable file when set. Verification itself cannot be turned off.
  std::string ca_file;
  // Proxy URL (e.g. "http://proxy:3128"); empty means connect directly. The http_proxy,
  // https_proxy and no_proxy environment variables are never read: the configuration decides.
  std::string proxy;
  // User-Agent header of every request that does not set one itself. Empty sends none.
  std::string user_agent = "userpilot-gateway/0.1";
  // Threads that run completion callbacks (see above). Must be >= 1. Two keep one slow
  // callback from delaying every other answer on a 2-core machine.
  size_t completion_threads = 2;
  // Largest response body a `short_callback` request's callback may receive on the event
  // thread (see above); larger answers go to the completion threads. 0: never on the event
  // thread. Userpilot's answers to unary calls are a few hundred bytes.
  size_t inline_completion_max_bytes = size_t{64} << 10;
};

// A snapshot of the client's load, for metrics. Cheap: one short lock.
struct CurlHttpClientStats {
  size_t queued = 0;                 // Accepted, waiting for an in-flight slot.
  size_t in_flight = 0;              // Handed to libcurl, not yet completed.
  uint64_t rejected_queue_full = 0;  // Since start: requests refused because the queue was full.
  // Since start: queued requests answered DEADLINE_EXCEEDED without being sent, because their
  // deadline passed or less of it was left than the upstream's typical answer time.
  uint64_t refused_too_late = 0;
  // The upstream's typical answer time (latency_estimate.h); zero until enough answers.
  absl::Duration typical_latency = absl::ZeroDuration();
  // Finished requests whose callbacks wait for a completion thread.
  size_t completions_waiting = 0;
  // Since start: callbacks run on the event thread (short callbacks, small answers).
  uint64_t completed_inline = 0;
};

class CurlHttpClient final : public HttpClient {
 public:
  // Validates `options` (INVALID_ARGUMENT naming the bad field, e.g. an unreadable ca_file),
  // initialises libcurl for the process (once, thread-safe) and starts the event thread.
  // Errors here are configuration errors: report them and stop at start-up.
  static absl::StatusOr<std::unique_ptr<CurlHttpClient>> Create(CurlHttpClientOptions options);

  CurlHttpClient(const CurlHttpClient&) = delete;
  CurlHttpClient& operator=(const CurlHttpClient&) = delete;

  // Shutdown(), then frees libcurl's state (closing idle connections). Must not run on one of
  // the client's threads, i.e. not from inside a completion callback.
  ~CurlHttpClient() override;

  // Queues `request` and returns at once; `done` runs exactly once, on the event thread or a
  // completion thread (see "Where callbacks run").
  // Outcomes decided without the network (expired deadline, full queue, malformed request,
  // client shutting down) are also delivered that way, promptly.
  // One exception: after Shutdown() has returned there is no event thread, so `done` runs
  // inside Send() with CANCELLED. Callers that can race with shutdown must tolerate that.
  void Send(HttpRequest request, Callback done) override;

  // Stops accepting requests, completes every queued and in-flight request with CANCELLED
  // (in-flight ones report whether they may have been sent), then joins the event thread and,
  // once every callback has run, the completion threads.
  // Idempotent; safe from any thread. Called from a completion callback it cannot join its own
  // thread: it then only starts the shutdown, and the destructor finishes it.
  void Shutdown();

  CurlHttpClientStats Stats() const;

 private:
  class Impl;
  explicit CurlHttpClient(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_HTTP_CURL_HTTP_CLIENT_H_
