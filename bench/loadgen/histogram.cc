#include "bench/loadgen/histogram.h"

#include <algorithm>
#include <cmath>

namespace userpilot::gateway::bench {
namespace {

// Values below 2^kExactBits are their own bucket; above, each power of two [2^m, 2^(m+1)) is
// split into 2^(kExactBits-1) = 128 equal sub-buckets.
constexpr int kExactBits = 8;
constexpr uint64_t kExact = uint64_t{1} << kExactBits;       // 256
constexpr uint64_t kHalf = uint64_t{1} << (kExactBits - 1);  // 128
constexpr int kMaxShift = 40 - (kExactBits - 1);             // the ceiling is 2^40
constexpr int kBuckets = static_cast<int>(kExact + kMaxShift * kHalf);

int MostSignificantBit(uint64_t v) { return 63 - __builtin_clzll(v); }

}  // namespace

LatencyHistogram::LatencyHistogram() : counts_(kBuckets, 0) {}

int LatencyHistogram::IndexOf(uint64_t value) {
  if (value < kExact) return static_cast<int>(value);
  const int shift = MostSignificantBit(value) - (kExactBits - 1);  // >= 1
  const uint64_t sub = value >> shift;                             // in [128, 256)
  return static_cast<int>(kExact + (shift - 1) * kHalf + (sub - kHalf));
}

int64_t LatencyHistogram::MidpointOf(int index) {
  if (index < static_cast<int>(kExact)) return index;
  const int shift = (index - static_cast<int>(kExact)) / static_cast<int>(kHalf) + 1;
  const uint64_t sub = kHalf + (index - kExact) % kHalf;
  const uint64_t low = sub << shift;
  return static_cast<int64_t>(low + ((uint64_t{1} << shift) - 1) / 2);
}

void LatencyHistogram::Record(int64_t nanos) {
  int64_t value = std::max<int64_t>(nanos, 0);
  if (value >= kCeilingNanos) {
    value = kCeilingNanos - 1;
    ++clamped_;
  }
  ++counts_[IndexOf(static_cast<uint64_t>(value))];
  min_ = count_ == 0 ? value : std::min(min_, value);
  max_ = std::max(max_, value);
  ++count_;
  sum_ += static_cast<double>(value);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  min_ = count_ == 0 ? other.min_ : std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  count_ += other.count_;
  clamped_ += other.clamped_;
  sum_ += other.sum_;
}

double LatencyHistogram::mean() const {
  return count_ == 0 ? 0 : sum_ / static_cast<double>(count_);
}

int64_t LatencyHistogram::ValueAtQuantile(double q) const {
  if (count_ == 0) return 0;
  if (q >= 1) return max_;
  const int64_t rank =
      std::max<int64_t>(1, static_cast<int64_t>(std::ceil(std::max(q, 0.0) * count_)));
  int64_t seen = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::clamp(MidpointOf(static_cast<int>(i)), min_, max_);
  }
  return max_;
}

}  // namespace userpilot::gateway::bench
