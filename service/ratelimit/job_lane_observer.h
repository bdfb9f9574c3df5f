// JobLaneObserver: what a job lane (job_lane.h) reports as it happens, for the one lane metric
// that cannot be read from a snapshot at scrape time - the distribution of waits (a histogram
// needs every observation). Counts and gauges come from JobLaneStub::Stats() at scrape.
//
// The interface belongs to the lanes, which call it; it is header-only and free of Prometheus
// (as BudgetObserver), so ratelimit/ depends on nothing in metrics/: JobLaneOptions holds an
// optional `JobLaneObserver*`; JobLaneMetrics (metrics/gateway_metrics.h) implements it.
//
// Thread-safety: implementations must be thread-safe; lanes call them from the inner stub's
// threads and the Scheduler's, possibly concurrently, without holding a lane's lock. Calls must
// be cheap and never block or call back into the lane.
#ifndef USERPILOT_GATEWAY_SERVICE_RATELIMIT_JOB_LANE_OBSERVER_H_
#define USERPILOT_GATEWAY_SERVICE_RATELIMIT_JOB_LANE_OBSERVER_H_

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace userpilot::gateway {

class JobLaneObserver {
 public:
  virtual ~JobLaneObserver() = default;

  // `lane` ("bulk", "imports") sent a call to Userpilot `wait` after the call entered it (its
  // turn and the wait for the lane's job included; zero or near zero when sent at once). Once per
  // send, as JobLaneStats::sent counts them: a call sent again after a 409 is reported again, with
  // its whole wait.
  virtual void OnSent(absl::string_view lane, absl::Duration wait) = 0;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RATELIMIT_JOB_LANE_OBSERVER_H_
