// RetryBudget: limits retries to a fraction of recent traffic, so an outage never turns into a
// retry storm (Finagle's RetryBudget; gRPC's retry throttling has the same aim).
//
// Every call deposits when it starts; every retry must withdraw. Over any rolling `window`, a
// retry is allowed while
//
//     retries_in_window + 1 <= retry_ratio * calls_in_window
//                              + min_retries_per_second * window_seconds
//
// so retries add at most `retry_ratio` (20%) to the upstream load, plus a small reserve that
// lets a quiet gateway still retry its few calls. When Userpilot fails everything, a thousand
// calls make at most 200 (+ reserve) retries, not 3000.
//
// Why the reserve is 1 retry a second by default: the ratio alone gives a caller sending one
// call every few seconds no retry at all (0.2 of a retry per call), so its single transient
// failure would reach it although Userpilot is nearly idle; 1/s (10 banked over the window) lets
// such a caller retry each failure. Much more would defeat the budget at low traffic: Userpilot
// allows only 10 identify and 10 track requests a second in all, and a reserve of 10/s would
// let a trickle of failing calls spend up to 3 retries each, quadrupling the load on an
// upstream that is failing. A refused retry ends the call with its
// last error and `retry_stopped_because: retry_budget_exhausted`.
//
// Thread-safety: thread-safe (std::mutex: Debian's Abseil lacks TSan annotations); one budget
// is shared by every call of a RetryingStub.
#ifndef USERPILOT_GATEWAY_SERVICE_RETRY_RETRY_BUDGET_H_
#define USERPILOT_GATEWAY_SERVICE_RETRY_RETRY_BUDGET_H_

#include <cstdint>
#include <mutex>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "service/retry/retry_options.h"
#include "service/retry/rolling_counter.h"

namespace userpilot::gateway {

class RetryBudget {
 public:
  // `options` must pass Validate().
  explicit RetryBudget(const RetryBudgetOptions& options);

  // A call started at `now` (its first attempt; not its retries).
  void RecordCall(absl::Time now);

  // True, and the retry is counted, when a retry at `now` fits the budget.
  bool TryAcquireRetry(absl::Time now);

  // Whole retries that would be allowed at `now` (>= 0); for metrics and tests.
  int64_t Available(absl::Time now) const;

 private:
  double AllowanceLocked(absl::Time now) const;

  const RetryBudgetOptions options_;
  const double reserve_;
  mutable std::mutex mu_;
  RollingCounter calls_;    // guarded by mu_
  RollingCounter retries_;  // guarded by mu_
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RETRY_RETRY_BUDGET_H_
