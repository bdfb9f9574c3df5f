// LatencyHistogram: an HDR-style log-linear histogram of durations in nanoseconds.
//
// Why not a sorted vector of samples: a 60 s run at 20,000 calls/s would hold 1.2 M samples per
// target; a log-linear histogram holds ~4,500 counters whatever the count, merges by addition,
// and still reports every percentile within 0.4 % of the true value (each power of two is split
// into 128 linear sub-buckets, and a bucket reports its midpoint). Values below 256 ns are exact;
// values above ~18 minutes are clamped to that ceiling (and counted, so it shows).
//
// Not thread-safe: each recorder owns one, or guards it; Merge() combines them afterwards.
#pragma once

#include <cstdint>
#include <vector>

namespace userpilot::gateway::bench {

class LatencyHistogram {
 public:
  LatencyHistogram();

  // Records one duration. Negative values count as 0.
  void Record(int64_t nanos);
  // Adds every count of `other` to this one.
  void Merge(const LatencyHistogram& other);

  int64_t count() const { return count_; }
  // Exact smallest and largest recorded values (0 when empty).
  int64_t min() const { return count_ == 0 ? 0 : min_; }
  int64_t max() const { return max_; }
  double mean() const;
  // Values recorded above the ceiling (recorded as the ceiling).
  int64_t clamped() const { return clamped_; }

  // The value at quantile q in [0, 1]: the smallest recorded value v such that at least
  // ceil(q * count) values are <= v, reported as its bucket's midpoint and kept within
  // [min, max]. Quantile 1 is the exact maximum. 0 when empty.
  int64_t ValueAtQuantile(double q) const;

  static constexpr int64_t kCeilingNanos = int64_t{1} << 40;

 private:
  static int IndexOf(uint64_t value);
  static int64_t MidpointOf(int index);

  std::vector<int64_t> counts_;
  int64_t count_ = 0;
  int64_t min_ = 0;
  int64_t max_ = 0;
  int64_t clamped_ = 0;
  double sum_ = 0;
};

}  // namespace userpilot::gateway::bench
