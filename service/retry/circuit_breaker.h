// CircuitBreaker: fail fast while Userpilot is down, and probe before trusting it again.
//
//   closed ---- N consecutive failures, or failure ratio >= R over the window ----> open
//   open ------ open duration passed, next call becomes the probe ----------------> half-open
//   half-open - probe succeeds (Userpilot answered) ------------------------------> closed
//   half-open - probe fails: open again, open duration * multiplier (capped) -----> open
//
// Failures are attempts whose outcome is UpstreamHealth::kUnhealthy (5xx, 408/425, transport
// failures, no answer in time: retry_decision.h). Any answer from Userpilot, 4xx and 429
// included, is a success: Userpilot is up, it just did not like the request. The gateway's own
// refusals (budget, breaker) are neither. While open, and while the one half-open probe is in
// flight, calls are refused with UNAVAILABLE, reason CIRCUIT_OPEN and a retry delay (the time
// until the next probe may go); they never reach the rate limiter or Userpilot.
//
// The state moves from open to half-open lazily, when a call arrives after the open duration,
// so no timer is needed; State() reports half-open as soon as the open duration has passed.
// Outcomes of attempts admitted in an earlier state (in flight when the breaker opened) are
// ignored. A probe that never reports back is replaced by a new probe after
// `max_open_duration`, so a lost callback cannot wedge the breaker half-open.
//
// One breaker per upstream host (the gateway has one), shared by every call of the
// RetryingStub, which checks it before every attempt, retries included.
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
  // Whether one attempt may go, and its ticket for Record().
  struct Permit {
    bool allowed = false;
    bool probe = false;       // This attempt is the half-open probe.
    uint64_t generation = 0;  // Which closed period or probe the attempt belongs to.
    // When refused: how long until the next probe may go (for RetryInfo).
    absl::Duration retry_after = absl::ZeroDuration();
  };

  // For metrics.
  struct Snapshot {
    CircuitState state = CircuitState::kClosed;
    int consecutive_failures = 0;
    int64_t times_opened = 0;  // closed -> open and half-open -> open transitions
    int64_t rejected = 0;      // attempts refused
    absl::Duration open_duration = absl::ZeroDuration();  // of the current or next opening
  };

  // `options` must pass Validate(). `upstream` names the host in messages ("api.userpilot.io").
  CircuitBreaker(const CircuitBreakerOptions& options, std::string upstream);

  // Asks to send one attempt at `now`. An allowed permit must be given back to Record() once
  // the attempt's outcome is known.
  Permit TryAcquire(absl::Time now);

  // The outcome of an attempt admitted by `permit`.
  void Record(const Permit& permit, UpstreamHealth health, absl::Time now);

  CircuitState State(absl::Time now) const;
  Snapshot GetSnapshot(absl::Time now) const;

  // The fail-fast error for a refused `permit`: UNAVAILABLE, reason CIRCUIT_OPEN, the upstream
  // host (ErrorInfo metadata `upstream`), retry delay `permit.retry_after`.
  CallStatus RefusedError(const Permit& permit) const;

 private:
  void OpenLocked(absl::Time now, absl::Duration duration);
  CircuitState StateLocked(absl::Time now) const;

  const CircuitBreakerOptions options_;
  const std::string upstream_;
  mutable std::mutex mu_;
  CircuitState state_ = CircuitState::kClosed;       // guarded; kOpen may have expired (lazy)
  uint64_t generation_ = 1;                          // guarded; bumped on every transition
  int consecutive_failures_ = 0;                     // guarded
  RollingCounter outcomes_;                          // guarded; while closed
  RollingCounter failures_;                          // guarded; while closed
  absl::Duration open_duration_;                     // guarded
  absl::Time open_until_ = absl::InfinitePast();     // guarded
  bool probe_in_flight_ = false;                     // guarded
  absl::Time probe_started_ = absl::InfinitePast();  // guarded
  int64_t times_opened_ = 0;                         // guarded
  int64_t rejected_ = 0;                             // guarded
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RETRY_CIRCUIT_BREAKER_H_
