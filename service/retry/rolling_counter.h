// RollingCounter: a count of events over the last `window`, in `buckets` time slices, on a
// caller-supplied clock. Used by the retry budget and the circuit breaker.
//
// Sum(now) counts what was added in the slice holding `now` and the `buckets - 1` slices
// before it, so the window it covers is between window - window / buckets and window long.
//
// Thread-safety: none; the owner locks.
#ifndef USERPILOT_GATEWAY_SERVICE_RETRY_ROLLING_COUNTER_H_
#define USERPILOT_GATEWAY_SERVICE_RETRY_ROLLING_COUNTER_H_

#include <cstdint>
#include <vector>

#include "absl/time/time.h"

namespace userpilot::gateway {

class RollingCounter {
 public:
  // `window` > 0, `buckets` >= 1.
  RollingCounter(absl::Duration window, int buckets);

  void Add(absl::Time now, int64_t count = 1);
  int64_t Sum(absl::Time now) const;
  void Clear();

 private:
  struct Bucket {
    int64_t slice = -1;  // Which time slice the count belongs to; -1 = empty.
    int64_t count = 0;
  };
  int64_t SliceOf(absl::Time now) const;

  absl::Duration slice_;
  std::vector<Bucket> buckets_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RETRY_ROLLING_COUNTER_H_
