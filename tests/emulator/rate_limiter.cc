#include "tests/emulator/rate_limiter.h"

#include <algorithm>

namespace userpilot::gateway::testing {

SlidingWindowLimiter::Decision SlidingWindowLimiter::Admit(RateScope scope, absl::Time now) {
  if (!enabled_.load(std::memory_order_relaxed)) return {};
  absl::MutexLock lock(&mu_);
  if (!limits_.enabled) return {};
  int limit;
  absl::Duration window;
  switch (scope) {
    case RateScope::kIdentify:
      limit = limits_.identify_limit;
      window = limits_.window;
      break;
    case RateScope::kTrack:
      limit = limits_.track_limit;
      window = limits_.window;
      break;
    case RateScope::kDelete:
    default:
      limit = 1;
      window = limits_.delete_interval;
      break;
  }
  std::deque<absl::Time>& times = admitted_[static_cast<int>(scope)];
  // A request admitted at t occupies the window (t - window, t]: it leaves once now - t >= window.
  while (!times.empty() && now - times.front() >= window) times.pop_front();
  if (static_cast<int>(times.size()) < limit) {
    times.push_back(now);
    return {};
  }
  Decision refused;
  refused.admitted = false;
  if (limit <= 0) {
    refused.retry_after = window;
    return refused;
  }
  // The request whose expiry frees a slot: the oldest, unless the limit was lowered since.
  const absl::Time freeing = times[times.size() - static_cast<size_t>(limit)];
  refused.retry_after = std::max(absl::ZeroDuration(), freeing + window - now);
  return refused;
}

void SlidingWindowLimiter::SetLimits(const RateLimits& limits) {
  absl::MutexLock lock(&mu_);
  limits_ = limits;
  enabled_.store(limits.enabled, std::memory_order_relaxed);
}

RateLimits SlidingWindowLimiter::limits() const {
  absl::MutexLock lock(&mu_);
  return limits_;
}

void SlidingWindowLimiter::Clear() {
  absl::MutexLock lock(&mu_);
  for (auto& times : admitted_) times.clear();
}

}  // namespace userpilot::gateway::testing
