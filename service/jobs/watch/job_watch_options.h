// JobWatchOptions: the settings of the JobWatchRegistry (job_watch_registry.h), in a header of
// their own so that configuration code can build them without including the registry.
//
// Thread-safety: a plain value.
#ifndef USERPILOT_GATEWAY_SERVICE_JOBS_WATCH_JOB_WATCH_OPTIONS_H_
#define USERPILOT_GATEWAY_SERVICE_JOBS_WATCH_JOB_WATCH_OPTIONS_H_

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace userpilot::gateway {

struct JobWatchOptions {
  // Poll pace bounds (job_state.h PollPace): fastest while a job changes, slowest while not.
  absl::Duration min_poll_interval = absl::Seconds(1);
  absl::Duration max_poll_interval = absl::Seconds(15);
  // Interval multiplier per poll that saw no change. > 1.
  double poll_interval_growth = 2.0;
  // Deadline of one upstream read (it may wait for the job-read budget within it).
  absl::Duration poll_timeout = absl::Seconds(10);
  // A job (or the list) that cannot be read for this long ends its watches with UNAVAILABLE.
  absl::Duration unreadable_timeout = absl::Minutes(1);
  // Concurrent subscriptions, to one job or to the job list; beyond: RESOURCE_EXHAUSTED.
  size_t max_subscribers = 20000;
  // Distinct jobs watched at once (each costs one upstream read per interval).
  size_t max_watched_jobs = 1000;
  // CallOptions.caller of polls: the fairness key the job-read budget sees.
  std::string poll_caller = "job-watch";

  // INVALID_ARGUMENT naming the first bad field, else OK. For start-up configuration checks.
  absl::Status Validate() const;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_JOBS_WATCH_JOB_WATCH_OPTIONS_H_
