// LocalTokenSource: a budget's permits for a single replica, from an in-process ExactWindow
// (exact_window.h): at most `spec.limit` requests in ANY window of `spec.window`, bursts that
// fit at once, waiting calls paced at window / limit, `spec.tolerance` as the pace's timer
// slack.
//
// PauseUntil(until) stops all grants before `until` (an upstream 429). Adaptive rate control
// (lowering the rate after 429s) is not done here but in FairLimiter, so that the local and the
// Redis source get it alike; spec() therefore always reports the configured limit.
//
// It decides on the caller's thread: TryTakeNow() always answers, Take() completes inline, and
// Plan() replays the rule, so FairLimiter can admit without a hop and estimate waits exactly.
//
// Thread-safety: thread-safe (one std::mutex, never held while calling back).
#ifndef USERPILOT_GATEWAY_SERVICE_RATELIMIT_LOCAL_TOKEN_SOURCE_H_
#define USERPILOT_GATEWAY_SERVICE_RATELIMIT_LOCAL_TOKEN_SOURCE_H_

#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "service/ratelimit/exact_window.h"
#include "service/ratelimit/token_source.h"

namespace userpilot::gateway {

class LocalTokenSource final : public TokenSource {
 public:
  // Checks `spec`: InvalidArgument for limit <= 0, a window not positive and finite, or a
  // tolerance outside [0, window). Prefer this at start-up; the constructor aborts on the same.
  static absl::Status Validate(const RateSpec& spec);

  explicit LocalTokenSource(RateSpec spec);

  // Completes `done` inline, before returning, always with OK.
  void Take(absl::Time now, TakeKind kind, int64_t want, Done done) override;
  std::optional<TakeResult> TryTakeNow(absl::Time now, TakeKind kind) override;
  bool Plan(absl::Time now, int64_t count, absl::Time start, absl::Duration min_spacing,
            std::vector<absl::Time>* times) const override;
  void PauseUntil(absl::Time until) override;
  RateSpec spec() const override { return spec_; }
  std::optional<int64_t> Available(absl::Time now) const override;

  // Take() of one permit without the callback.
  TakeResult TryTake(absl::Time now, TakeKind kind = TakeKind::kImmediate);

  // The pace of waiting calls: ceil(window / limit).
  absl::Duration interval() const { return interval_; }

 private:
  const RateSpec spec_;
  const absl::Duration interval_;
  mutable std::mutex mu_;
  ExactWindow window_ ABSL_GUARDED_BY(mu_);
  absl::Time paused_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RATELIMIT_LOCAL_TOKEN_SOURCE_H_
