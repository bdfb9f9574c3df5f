// CircuitBreaker: fail fast while Userpilot is down, without turning partial failure into an
// outage, and let a share of traffic probe before trusting it again.
//
//   closed ---- failed / judged calls over the window >= failure_ratio, with at least
//               min_calls_in_window judged -------------------------------------------> open
//   open ------ open_duration passed (fixed: it never grows) -------------------------> half-open
//   half-open - half_open_share of calls go as probes; once half_open_probes were judged
//               with a failure ratio below failure_ratio -----------------------------> closed
//   half-open - enough probes failed that the ratio cannot stay below it -------------> open
//
// The breaker judges calls, not attempts: RetryingStub asks TryAcquire() once per call and
// Record()s the call's final outcome once, so retries neither count twice nor trip it, and
// Userpilot's partial failure (which retries partly recover) stays below a ratio meant for
// "Userpilot is down". A failed call is one whose outcome is UpstreamHealth::kUnhealthy (5xx,
// 408/425, transport failures, the per-attempt timeout: retry_decision.h). Any answer from
// Userpilot, 4xx and 429 included, is a success. Neither count: the gateway's own refusals
// (budget, breaker) and the caller's own deadline or cancellation (kUnknown): a caller with a
// short deadline says nothing about Userpilot.
//
// While open, calls are refused with UNAVAILABLE, reason CIRCUIT_OPEN and a retry delay (the
// time until half-open); they never reach the rate limiter or Userpilot. While half-open, the
// calls that are not probes are refused the same way. Retries of an admitted call go on unless
// the breaker is open (AllowsRetry).
//
// The state moves from open to half-open lazily, when a call arrives after the open duration,
// so no timer is needed; State() reports half-open as soon as the open duration has passed.
// Outcomes of calls admitted in an earlier state (in flight when the breaker opened or closed)
// are ignored. Probes that never report back cannot wedge the breaker: half-open keeps
// admitting its share of calls.
//
// One breaker per upstream host (the gateway has one), shared by every call of the
// RetryingStub.
//
// Thread-safety: thread-safe (std::mutex).
#ifndef USERPILOT_GATEWAY_SERVICE_RETRY_CIRCUIT_BREAKER_H_
#define USERPILOT_GATEWAY_SERVICE_RETRY_CIRCUIT_BREAKER_H_

#include <cstdint>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/retry/retry_decision.h"
#include "service/retry/retry_options.h"
#include "service/retry/rolling_counter.h"

namespace userpilot::gateway {

enum class CircuitState { kClosed = 0, kOpen = 1, kHalfOpen = 2 };
// "closed", "open", "half_open".
absl::string_view CircuitStateName(CircuitState state);

class CircuitBreaker {
 public:
  // Whether one call may go, and its ticket for Record().
  struct Permit {
    bool allowed = false;
    bool probe = false;       // This call is a half-open probe.
    uint64_t generation = 0;  // Which closed or half-open period the call belongs to.
    // When refused: how long until the breaker may let calls through again (for RetryInfo).
    absl::Duration retry_after = absl::ZeroDuration();
  };

  // For metrics.
  struct Snapshot {
    CircuitState state = CircuitState::kClosed;
    int64_t times_opened = 0;  // closed -> open and half-open -> open transitions
    int64_t rejected = 0;      // calls refused
    int64_t judged_calls = 0;  // calls judged in the current window (closed) or probes judged
    int64_t failed_calls = 0;  // ... of which failed
  };

  // `options` must pass Validate(). `upstream` names the host in messages ("api.userpilot.io").
  CircuitBreaker(const CircuitBreakerOptions& options, std::string upstream);

  // Asks to send one call (all its attempts) at `now`. An allowed permit must be given back to
  // Record() once, with the call's final outcome.
  Permit TryAcquire(absl::Time now);

  // Whether an admitted call may send another attempt at `now`: false while open.
  bool AllowsRetry(absl::Time now) const;

  // The final outcome of a call admitted by `permit`.
  void Record(const Permit& permit, UpstreamHealth health, absl::Time now);

  CircuitState State(absl::Time now) const;
  Snapshot GetSnapshot(absl::Time now) const;

  // The fail-fast error for a refused `permit`: UNAVAILABLE, reason CIRCUIT_OPEN, the upstream
  // host (ErrorInfo metadata `upstream`), retry delay `permit.retry_after`.
  CallStatus RefusedError(const Permit& permit) const;

 private:
  void OpenLocked(absl::Time now);
  void CloseLocked();
  CircuitState StateLocked(absl::Time now) const;
  bool RatioReached(int64_t failed, int64_t judged) const;

  const CircuitBreakerOptions options_;
  const std::string upstream_;
  mutable std::mutex mu_;
  CircuitState state_ = CircuitState::kClosed;    // guarded; kOpen may have expired (lazy)
  uint64_t generation_ = 1;                       // guarded; bumped on every transition
  RollingCounter judged_;                         // guarded; while closed
  RollingCounter failed_;                         // guarded; while closed
  absl::Time open_until_ = absl::InfinitePast();  // guarded
  double probe_credit_ = 0;                       // guarded; half-open: a probe goes at >= 1
  int64_t probes_judged_ = 0;                     // guarded; half-open
  int64_t probes_failed_ = 0;                     // guarded; half-open
  int64_t times_opened_ = 0;                      // guarded
  int64_t rejected_ = 0;                          // guarded
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RETRY_CIRCUIT_BREAKER_H_
