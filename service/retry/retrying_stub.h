// RetryingStub: the UserpilotStub decorator that retries failed upstream calls, with backoff,
// within the caller's deadline, under a retry budget and behind a circuit breaker.
//
// Stack position (service/app assembles it):
//     RetryingStub -> RateLimitedStub -> HttpUserpilotStub
// so every attempt, retries included, is admitted by the rate-limit budget, and the breaker
// refuses before the limiter queues anything.
//
// Per call (each policy is separate and injectable, google-cloud-cpp style):
//  1. The circuit breaker (circuit_breaker.h) must admit the call (once, before its first
//     attempt), else the call ends with its UNAVAILABLE/CIRCUIT_OPEN error; a retry stops with
//     the last upstream error while the breaker is open. The breaker learns the call's final
//     outcome once, whatever the number of attempts.
//  2. The attempt goes to the wrapped stub with the caller's CallOptions (same deadline).
//  3. A failure is classified (retry_decision.h) by code, facts (reason, whether the request
//     reached Userpilot) and the RPC's idempotency (RetryOptions::idempotency: gateway.proto's
//     `idempotency_level`): retryable, non-retryable, or not repeatable and possibly recorded
//     by Userpilot. Only retryable failures go on.
//  4. The retry policy (retry_policy.h, cloned per call) must allow another attempt.
//  5. The delay is max(backoff (backoff_policy.h, full jitter), the error's retry delay,
//     e.g. a 429's Retry-After). If now + delay >= the caller's deadline, the call ends now
//     with the last error rather than waking up to no time.
//  6. The retry budget (retry_budget.h) must have room for one more retry.
//  7. A Scheduler timer runs the next attempt after the delay; no thread sleeps.
// The final error keeps the last attempt's code and facts (a 429's RESOURCE_EXHAUSTED and
// retry delay, a 503's UNAVAILABLE) and says why retrying stopped: see AnnotateFinalError. Every
// answer, success or error, carries the facts of its last attempt, with `http_attempts` and
// `budget_wait` summed over all attempts.
//
// Lifetimes: the request and options are copied per call. The wrapped stub is shared with
// every call in flight, so it lives as long as they do. The Scheduler must outlive this stub
// and every call it started. Destroying the stub cancels the retries waiting on a timer: those
// calls end at once with their last error (`retry_stopped_because: shutdown`); attempts in
// flight end when the wrapped stub answers, without a retry.
//
// Thread-safety: every method may be called from any thread, concurrently. The callback runs
// exactly once, never inside the call: on the wrapped stub's thread, or the scheduler's.
#ifndef USERPILOT_GATEWAY_SERVICE_RETRY_RETRYING_STUB_H_
#define USERPILOT_GATEWAY_SERVICE_RETRY_RETRYING_STUB_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "service/common/scheduler.h"
#include "service/retry/backoff_policy.h"
#include "service/retry/circuit_breaker.h"
#include "service/retry/retry_budget.h"
#include "service/retry/retry_decision.h"
#include "service/retry/retry_options.h"
#include "service/retry/retry_policy.h"
#include "service/upstream/forwarding_stub.h"

namespace userpilot::gateway {

// Counters for metrics (monotonic, except `circuit`'s state).
struct RetryStats {
  int64_t calls = 0;     // Calls started.
  int64_t attempts = 0;  // Attempts sent to the wrapped stub (retries included).
  // Retries scheduled, by what the failed attempt was (RetryCause).
  std::array<int64_t, kRetryCauseCount> retries_by_cause{};
  // Calls that ended with an error, by why retrying stopped (StopReason).
  std::array<int64_t, kStopReasonCount> failed_by_stop_reason{};
  // Calls that succeeded after at least one retry.
  int64_t recovered = 0;
  CircuitBreaker::Snapshot circuit;
};

// The retry and backoff policy prototypes RetryOptions describe (each call clones them).
std::unique_ptr<RetryPolicy> MakeRetryPolicy(const RetryOptions& options);
std::unique_ptr<BackoffPolicy> MakeBackoffPolicy(const RetryOptions& options);

class RetryingStub final : public ForwardingStub<RetryingStub> {
 public:
  // Policies built from `options`, which must pass Validate() (the constructor aborts the
  // process with its message otherwise: configuration is validated at start-up).
  RetryingStub(std::shared_ptr<UserpilotStub> inner, Scheduler& scheduler, RetryOptions options);
  // Custom retry and backoff policy prototypes; the rest from `options`.
  RetryingStub(std::shared_ptr<UserpilotStub> inner, Scheduler& scheduler, RetryOptions options,
               std::unique_ptr<RetryPolicy> retry_policy,
               std::unique_ptr<BackoffPolicy> backoff_policy);
  ~RetryingStub() override;

  RetryingStub(const RetryingStub&) = delete;
  RetryingStub& operator=(const RetryingStub&) = delete;

  // Every RPC (ForwardingStub's hook): the retry loop above. Every attempt passes the same
  // request on (a file upload's source is re-read from offset 0).
  template <typename Rpc>
  void Call(const CallOptions& options, const typename Rpc::Request& request,
            StubCallback<typename Rpc::Response> done);

  // A snapshot of the counters and the breaker. Thread-safe.
  RetryStats stats() const;
  // The breaker, for metrics (its state) and tests. Thread-safe.
  const CircuitBreaker& circuit_breaker() const;

  // Internal: the state calls share, which outlives this object while calls are in flight.
  struct Shared;

 private:
  std::shared_ptr<Shared> shared_;
};

// Instantiated in the .cc file, where Call<Rpc> is defined.
extern template class RpcDispatcher<RetryingStub>;

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RETRY_RETRYING_STUB_H_
