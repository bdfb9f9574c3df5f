#include "service/ratelimit/gcra.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace userpilot::gateway {
namespace {

// Invariants are CHECKed (style.md): a violated one is a programming error, not input.
void Require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "Gcra: invariant violated: %s\n", what);
  std::abort();
}

}  // namespace

absl::Duration Gcra::IntervalFor(absl::Duration window, int64_t limit, int64_t burst) {
  Require(window > absl::ZeroDuration(), "window > 0");
  Require(burst >= 1 && burst <= limit, "1 <= burst <= limit");
  const int64_t slots = limit - burst + 1;
  absl::Duration interval = window / slots;  // Truncates to absl's resolution (1/4 ns).
  // Round up: interval * slots must reach the window, or one window could hold limit + 1.
  while (interval * slots < window) interval += absl::Nanoseconds(1);
  return interval;
}

Gcra::Gcra(absl::Duration interval, int64_t burst, absl::Duration slack)
    : interval_(interval), tolerance_(interval * (burst - 1) + slack) {
  Require(interval > absl::ZeroDuration(), "interval > 0");
  Require(burst >= 1, "burst >= 1");
  Require(slack >= absl::ZeroDuration() && slack < absl::InfiniteDuration(), "0 <= slack < inf");
}

bool Gcra::TryTake(absl::Time now, absl::Time* retry_at) {
  const absl::Time allowed = NextAllowed();
  if (now < allowed) {
    if (retry_at != nullptr) *retry_at = allowed;
    return false;
  }
  ForceTake(now);
  return true;
}

int64_t Gcra::Available(absl::Time now) const {
  if (now < NextAllowed()) return 0;
  // Each take moves TAT to max(TAT, now) + interval; the k-th conforms while
  // now >= max(TAT, now) + (k - 1) * interval - tolerance.
  const absl::Time start = std::max(tat_, now);
  absl::Duration remainder;
  return 1 + absl::IDivDuration(now + tolerance_ - start, interval_, &remainder);
}

void Gcra::ForceTake(absl::Time now) { tat_ = std::max(tat_, now) + interval_; }

void Gcra::SetInterval(absl::Duration interval) {
  Require(interval > absl::ZeroDuration(), "interval > 0");
  interval_ = interval;
}

}  // namespace userpilot::gateway
