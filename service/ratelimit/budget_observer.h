// BudgetObserver: what a rate-limit budget reports as it happens, for the metrics that cannot
// be read from a snapshot at scrape time - the distribution of waits (a histogram needs every
// observation) and outcomes per caller.
//
// The interface belongs to the rate limiter, which calls it; it is header-only and free of
// Prometheus, so ratelimit/ depends on nothing in metrics/: FairLimiter takes an optional
// `BudgetObserver*` and calls it; BudgetMetrics (metrics/gateway_metrics.h) implements it;
// tests may use a recording fake.
//
// Thread-safety: implementations must be thread-safe; the limiter calls them from its own
// threads (the scheduler's, a token source's), possibly concurrently. Calls must be cheap and
// never block or call back into the limiter.
#ifndef USERPILOT_GATEWAY_SERVICE_RATELIMIT_BUDGET_OBSERVER_H_
#define USERPILOT_GATEWAY_SERVICE_RATELIMIT_BUDGET_OBSERVER_H_

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace userpilot::gateway {

class BudgetObserver {
 public:
  virtual ~BudgetObserver() = default;

  // `budget` admitted a call of `caller` (CallOptions.caller) `wait` after it asked (zero or
  // near zero when admitted at once).
  virtual void OnAdmitted(absl::string_view budget, absl::string_view caller,
                          absl::Duration wait) = 0;

  // `budget` answered a call of `caller` with an error instead of a permit. `reason` is the
  // refusal's ErrorInfo `cause` (queue_full, caller_queue_full, wait_exceeds_deadline,
  // pushed_out, deadline_reached) or source_error / shutdown.
  virtual void OnRejected(absl::string_view budget, absl::string_view caller,
                          absl::string_view reason) = 0;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RATELIMIT_BUDGET_OBSERVER_H_
