// LocalTokenSource: a budget's permits for a single replica, from an in-process GCRA.
//
// It grants at most `spec.limit` requests in ANY sliding window of `spec.window` (the window
// (t - W, t] that Userpilot and the emulator count), by spacing requests at least
// ceil(window / limit) apart; see gcra.h for the proof and the rounding. Optional burst
// tolerance `burst` lets up to `burst` requests through back to back after an idle spell and
// keeps the guarantee by lowering the sustained rate to (limit - burst + 1) per window; the
// default, 1, has no burst and uses the budget to the last request.
//
// `spec.tolerance` (timer slack, token_source.h) widens the GCRA tolerance by that much: a pump
// that wakes up to it late loses nothing, and the window guarantee shrinks by the same amount.
//
// PauseUntil(until) stops all grants before `until` (an upstream 429); after it, spacing starts
// afresh with no catch-up burst beyond `burst`.
//
// Adaptive rate control (lowering the rate after 429s) is not done here but in FairLimiter, so
// that the local and the Redis source get it alike; spec() therefore always reports the
// configured limit.
//
// Thread-safety: thread-safe (one std::mutex; Take() completes inline, outside it).
#ifndef USERPILOT_GATEWAY_SERVICE_RATELIMIT_LOCAL_TOKEN_SOURCE_H_
#define USERPILOT_GATEWAY_SERVICE_RATELIMIT_LOCAL_TOKEN_SOURCE_H_

#include <cstdint>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "service/ratelimit/gcra.h"
#include "service/ratelimit/token_source.h"

namespace userpilot::gateway {

struct LocalTokenSourceOptions {
  // Requests that may go back to back after an idle spell, 1 <= burst <= limit. Each one above
  // 1 costs one request of sustained rate per window (see gcra.h). Default: no burst.
  int64_t burst = 1;
};

class LocalTokenSource final : public TokenSource {
 public:
  // Checks `spec` and `options`: InvalidArgument for limit <= 0, window <= 0, or a burst
  // outside [1, limit]. Prefer this at start-up; the constructor aborts on the same errors.
  static absl::Status Validate(const RateSpec& spec, const LocalTokenSourceOptions& options = {});

  explicit LocalTokenSource(RateSpec spec, LocalTokenSourceOptions options = {});

  // Completes `done` inline, before returning, always with OK: granted, or not with the
  // earliest time a Take() can succeed.
  void Take(absl::Time now, Done done) override;
  void PauseUntil(absl::Time until) override;
  RateSpec spec() const override { return spec_; }
  std::optional<int64_t> Available(absl::Time now) const override;

  // Take() without the callback.
  TakeResult TryTake(absl::Time now);

  // The spacing between grants (gcra.h): ceil(window / (limit - burst + 1)).
  absl::Duration interval() const { return interval_; }

 private:
  const RateSpec spec_;
  const absl::Duration interval_;
  mutable std::mutex mu_;
  Gcra gcra_ ABSL_GUARDED_BY(mu_);
  absl::Time paused_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RATELIMIT_LOCAL_TOKEN_SOURCE_H_
