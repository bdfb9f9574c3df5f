// Where a budget's permits come from: the in-process GCRA (local_token_source.h) for one
// replica, or Redis (redis_token_source.h) for several replicas sharing one Userpilot API key.
//
// A TokenSource only answers "may one request go now, and if not, when should I ask again";
// queueing, fairness between callers and deadlines live above it in FairLimiter, so both
// sources behave the same to callers.
//
// Spacing, not bursts: a source admits at most `limit` requests in ANY window of `window`
// length (Userpilot enforces a sliding window), which GCRA with a tolerance below one emission
// interval guarantees; a classic token bucket whose burst adds a full window does not.
//
// Thread-safety: implementations are thread-safe. Take() completes exactly once, possibly
// inline for the local source (callers must not hold their own locks across Take()).
#ifndef USERPILOT_GATEWAY_SERVICE_RATELIMIT_TOKEN_SOURCE_H_
#define USERPILOT_GATEWAY_SERVICE_RATELIMIT_TOKEN_SOURCE_H_

#include <optional>
#include <string>

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
  // Timer slack: a request may be granted up to this long before the spacing alone would allow
  // it (the GCRA tolerance, on top of any burst). Without it every late wake-up of the pump
  // (a loaded host wakes a timer some 0.1-1 ms late) is lost for good, because the next
  // request is spaced from the late grant: at 20 requests/s that alone wastes ~1% of the budget.
  // With it, a grant that comes late by less than `tolerance` keeps the schedule. It costs
  // guarantee: `limit` requests fit in window - tolerance instead of window, so a source keeps
  // at most `limit` per window only if the window it was given holds `tolerance` of slack
  // (MakeBudgets takes it from the spacing margin). >= 0; 0 = strict spacing.
  absl::Duration tolerance = absl::ZeroDuration();
  // The emission interval, window / limit: admitted requests are at least this far apart on
  // average, and never more than `limit` fall in any window (less `tolerance`).
  absl::Duration interval() const { return window / limit; }
};

// What Take() decided.
struct TakeResult {
  bool granted = false;
  // When not granted: the earliest time a Take() can succeed (assuming no one else takes).
  absl::Time retry_at = absl::InfinitePast();
};

class TokenSource {
 public:
  using Done = absl::AnyInvocable<void(absl::StatusOr<TakeResult>) &&>;

  virtual ~TokenSource() = default;

  // Tries to take one permit at time `now` (the caller's clock). OK with the decision, or an
  // error when the source could not decide (Redis unreachable: the caller falls back or
  // refuses, as configured).
  virtual void Take(absl::Time now, Done done) = 0;

  // Userpilot answered 429 although the source admitted the request (another client on the
  // key, a lower plan limit): stop granting until `until`.
  virtual void PauseUntil(absl::Time until) = 0;

  // The spec currently enforced (adaptive rate control may lower `limit` below the configured
  // one after 429s, and raise it back).
  virtual RateSpec spec() const = 0;

  // Permits a Take() at `now` would grant back to back, when the source can tell without a
  // round trip (the local GCRA can; Redis cannot): for metrics. nullopt: unknown.
  virtual std::optional<int64_t> Available(absl::Time now) const { return std::nullopt; }
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RATELIMIT_TOKEN_SOURCE_H_
