// What "a job changed" and "a job ended" mean for job watching, and the adaptive poll pace.
//
// A change is any field of v1::Job other than `elapsed_time` taking a new value: Userpilot
// recomputes elapsed_time on every read of a running job, so counting it would turn every poll
// into a "change" (and keep the poller at its fastest pace for the job's whole life) without
// telling a watcher anything new. Messages still carry the latest elapsed_time.
//
// Thread-safety: free functions over values; safe from any thread.
#ifndef USERPILOT_GATEWAY_SERVICE_JOBS_WATCH_JOB_STATE_H_
#define USERPILOT_GATEWAY_SERVICE_JOBS_WATCH_JOB_STATE_H_

#include "absl/time/time.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {

// COMPLETED or FAILED: the job will not change any more.
bool IsTerminal(const v1::Job& job);

// True when `after` differs from `before` in any field but elapsed_time.
bool JobChanged(const v1::Job& before, const v1::Job& after);

// The adaptive pace of one poller: `min` after a poll that saw a change (the job is moving),
// otherwise the current interval times `growth`, capped at `max` (the job is idle, or could
// not be read).
struct PollPace {
  absl::Duration min = absl::Seconds(1);
  absl::Duration max = absl::Seconds(15);
  double growth = 2.0;

  absl::Duration Next(absl::Duration current, bool changed) const;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_JOBS_WATCH_JOB_STATE_H_
