#include "service/retry/rolling_counter.h"

#include <algorithm>

namespace userpilot::gateway {

RollingCounter::RollingCounter(absl::Duration window, int buckets)
    : slice_(std::max(window / std::max(buckets, 1), absl::Nanoseconds(1))),
      buckets_(static_cast<size_t>(std::max(buckets, 1))) {}

int64_t RollingCounter::SliceOf(absl::Time now) const {
  absl::Duration rem;
  const int64_t slice = absl::IDivDuration(now - absl::UnixEpoch(), slice_, &rem);
  return std::max<int64_t>(slice, 0);  // Clocks before 1970 share slice 0; never in practice.
}

void RollingCounter::Add(absl::Time now, int64_t count) {
  const int64_t slice = SliceOf(now);
  Bucket& bucket = buckets_[static_cast<size_t>(slice % static_cast<int64_t>(buckets_.size()))];
  if (bucket.slice != slice) bucket = Bucket{slice, 0};
  bucket.count += count;
}

int64_t RollingCounter::Sum(absl::Time now) const {
  const int64_t slice = SliceOf(now);
  const int64_t oldest = slice - static_cast<int64_t>(buckets_.size()) + 1;
  int64_t sum = 0;
  for (const Bucket& bucket : buckets_) {
    if (bucket.slice >= oldest && bucket.slice <= slice) sum += bucket.count;
  }
  return sum;
}

void RollingCounter::Clear() { std::fill(buckets_.begin(), buckets_.end(), Bucket()); }

}  // namespace userpilot::gateway
