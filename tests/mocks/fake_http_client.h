// FakeHttpClient: an in-memory HttpClient for tests. It records every request and answers
// each one from a script, without a network.
//
// Each Send() records the request, then:
//  - if a handler is set (SetHandler), the handler's result answers it;
//  - else if a scripted result is queued (Enqueue...), the oldest one answers it;
//  - else the request waits, pending, until the test calls CompleteNext().
// Scripted and handler answers are delivered on the fake's own completion thread, like a real
// client's event thread; CompleteNext() delivers on the calling (test) thread. Never inside
// Send(), which keeps the HttpClient contract. Requests still pending at destruction complete
// with CANCELLED ("client shut down"), on the destructor's thread.
//
//   FakeHttpClient http;
//   http.EnqueueResponse(202, R"({"job_id":"j1","status":"queued"})", {{"x-request-id", "r1"}});
//   stub.BulkIdentifyUsers(...);              // answered on the fake's thread
//   ASSERT_TRUE(http.WaitForRequests(1));
//   EXPECT_EQ(http.requests()[0].url, "https://u.test/v1/users/bulk_identify");
//
// Thread-safety: every method may be called from any thread. Callbacks run without the fake's
// lock held, so they may call back into the fake (say, Send() a retry). The lock is a
// std::mutex, not absl::Mutex: Debian's libabsl is not built with ThreadSanitizer, so TSan
// cannot see absl::Mutex's synchronisation and would report false races in every test that
// uses this fake; pthread-based std::mutex is intercepted. Fields marked "guarded" are
// accessed only with `mu_` held.
#ifndef USERPILOT_GATEWAY_TESTS_MOCKS_FAKE_HTTP_CLIENT_H_
#define USERPILOT_GATEWAY_TESTS_MOCKS_FAKE_HTTP_CLIENT_H_

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "service/http/http_client.h"

namespace userpilot::gateway {

class FakeHttpClient : public HttpClient {
 public:
  // Answers a request; runs on the completion thread, without the fake's lock.
  using Handler = std::function<HttpResult(const HttpRequest&)>;

  FakeHttpClient();
  ~FakeHttpClient() override;

  FakeHttpClient(const FakeHttpClient&) = delete;
  FakeHttpClient& operator=(const FakeHttpClient&) = delete;

  void Send(HttpRequest request, Callback done) override;

  // --- Scripting answers ---

  // An HTTP response (transport OK). Header names are lower-cased, as a real client does.
  static HttpResult Response(long status_code, std::string body = "",  // NOLINT(runtime/int)
                             HttpHeaders headers = {});
  // A transport failure (DEADLINE_EXCEEDED, UNAVAILABLE, CANCELLED, ...).
  static HttpResult TransportFailure(absl::Status status, bool request_may_have_been_sent = true);

  // Queues `result` to answer the next request that arrives with no handler set.
  void Enqueue(HttpResult result);
  void EnqueueResponse(long status_code, std::string body = "",  // NOLINT(runtime/int)
                       HttpHeaders headers = {});
  // Answers every later request with `handler` (replacing any earlier one); nullptr unsets it.
  void SetHandler(Handler handler);

  // Completes the oldest pending request with `result`, on the calling thread. Returns false
  // when no request is pending.
  bool CompleteNext(HttpResult result);

  // --- Inspecting ---

  // Every request sent so far, in order.
  std::vector<HttpRequest> requests() const;
  // Requests waiting for CompleteNext().
  size_t pending() const;
  // Waits until at least `count` requests have been sent in total. False on timeout (which
  // must be finite).
  bool WaitForRequests(size_t count, absl::Duration timeout = absl::Seconds(10)) const;
  // Waits until every scripted or handler answer has been delivered (its callback returned).
  bool WaitForIdle(absl::Duration timeout = absl::Seconds(10)) const;

 private:
  // An automatic answer waiting for the completion thread.
  struct Work {
    HttpRequest request;  // For the handler.
    Handler handler;      // When set, computes the result from `request`.
    HttpResult result;    // Otherwise, the scripted result.
    Callback done;
  };

  void RunCompletions();

  mutable std::mutex mu_;
  // Signalled when requests_, work_, running_ or stopping_ change (what the waits watch).
  mutable std::condition_variable changed_;
  std::vector<HttpRequest> requests_;  // guarded
  std::deque<HttpResult> script_;      // guarded
  Handler handler_;                    // guarded
  std::deque<Callback> pending_;       // guarded
  std::deque<Work> work_;              // guarded
  size_t running_ = 0;                 // guarded; work taken whose callback has not returned
  bool stopping_ = false;              // guarded
  std::thread completion_thread_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_TESTS_MOCKS_FAKE_HTTP_CLIENT_H_
