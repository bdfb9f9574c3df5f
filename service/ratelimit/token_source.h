// Where a budget's permits come from: the in-process exact window (local_token_source.h) for one
// replica, or Redis (redis_token_source.h) for several replicas sharing one Userpilot API key.
// Both apply the same rule, ExactWindow's (exact_window.h): at most `limit` requests in any
// window, bursts that fit go at once, and calls that wait are paced.
//
// A TokenSource only answers "may these requests go now, and if not, when should I ask again";
// queueing, fairness between callers and deadlines live above it in FairLimiter, so both
// sources behave the same to callers.
//
// Thread-safety: implementations are thread-safe. Take() completes exactly once, possibly
// inline (the local source always; callers must not hold their own locks across Take()).
// TryTakeNow(), Plan() and Available() never call back and never block on I/O: FairLimiter calls
// them with its own lock held.
#ifndef USERPILOT_GATEWAY_SERVICE_RATELIMIT_TOKEN_SOURCE_H_
#define USERPILOT_GATEWAY_SERVICE_RATELIMIT_TOKEN_SOURCE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace userpilot::gateway {

// One upstream limit, e.g. identify: 600 per 60 s.
struct RateSpec {
  std::string name;     // Budget name for errors and metrics: "identify".
  int64_t limit = 600;  // Requests admitted per window, > 0.
  absl::Duration window = absl::Minutes(1);
  // Pacing slack: a paced request (one that waited) may go up to this long before its pace
  // slot, so that a timer that wakes the pump a little late does not shift every later slot
  // (on a loaded host timers wake 0.1-1 ms late; at 20 requests/s that alone would waste ~1%
  // of the budget). It never loosens the window: the exact window is checked without slack.
  // >= 0 and < window.
  absl::Duration tolerance = absl::ZeroDuration();
  // The pace of waiting calls, window / limit: a budget under sustained overload admits one
  // request per interval.
  absl::Duration interval() const { return window / limit; }
};

// How a Take() is asked (exact_window.h has the rule).
enum class TakeKind {
  // Nobody waits: the window alone decides, so a burst that fits goes at once. Also sets the
  // pacing credit from the time nobody asked.
  kImmediate,
  // Calls wait: the window and the pace (or the credit) decide.
  kPaced,
};

// What Take() decided.
struct TakeResult {
  // Permits granted, from 0 (refused) to the number asked for.
  int64_t granted = 0;
  // The earliest time one more permit of the same kind can be taken (assuming no one else
  // takes one); InfinitePast when it could be taken at once.
  absl::Time retry_at = absl::InfinitePast();
};

class TokenSource {
 public:
  using Done = absl::AnyInvocable<void(absl::StatusOr<TakeResult>) &&>;

  virtual ~TokenSource() = default;

  // Tries to take up to `want` (>= 1) permits at time `now` (the caller's clock). OK with the
  // decision, or an error when the source could not decide (Redis unreachable: the caller
  // falls back or refuses, as configured).
  virtual void Take(absl::Time now, TakeKind kind, int64_t want, Done done) = 0;

  // One permit decided on the caller's thread without a round trip, or nullopt when this
  // source cannot decide that way (Redis: use Take()). FairLimiter admits a call inside
  // Acquire() this way.
  virtual std::optional<TakeResult> TryTakeNow(absl::Time now, TakeKind kind) {
    return std::nullopt;
  }

  // The times at which the next `count` paced permits would be granted if asked for one after
  // another, each at or after `start` and at least `min_spacing` after the previous one, and
  // nobody else took any: exact for a source that holds its whole state (local), which fills
  // `*times` (oldest first) and returns true; false when the source cannot tell without a
  // round trip (Redis). FairLimiter turns it into exact wait estimates.
  virtual bool Plan(absl::Time now, int64_t count, absl::Time start, absl::Duration min_spacing,
                    std::vector<absl::Time>* times) const {
    return false;
  }

  // Userpilot answered 429 although the source admitted the request (another client on the
  // key, a lower plan limit): stop granting until `until`.
  virtual void PauseUntil(absl::Time until) = 0;

  // The spec enforced (the configured one; adaptive rate control lives in FairLimiter).
  virtual RateSpec spec() const = 0;

  // Permits a Take() at `now` would grant back to back (room left in the window), when the
  // source can tell without a round trip: for metrics. nullopt: unknown.
  virtual std::optional<int64_t> Available(absl::Time now) const { return std::nullopt; }
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RATELIMIT_TOKEN_SOURCE_H_
