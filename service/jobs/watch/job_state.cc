#include "service/jobs/watch/job_state.h"

#include <algorithm>

namespace userpilot::gateway {

bool IsTerminal(const v1::Job& job) {
  return job.status() == v1::JOB_STATUS_COMPLETED || job.status() == v1::JOB_STATUS_FAILED;
}

bool JobChanged(const v1::Job& before, const v1::Job& after) {
  v1::Job a = before;
  v1::Job b = after;
  a.clear_elapsed_time();
  b.clear_elapsed_time();
  // Deterministic serialization of two messages of one type compares every field, presence
  // of optional ones included, without listing them here (a field added later counts too).
  return a.SerializeAsString() != b.SerializeAsString();
}

absl::Duration PollPace::Next(absl::Duration current, bool changed) const {
  if (changed) return min;
  return std::clamp(current * growth, min, max);
}

}  // namespace userpilot::gateway
