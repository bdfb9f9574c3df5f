// ExactWindow: the admission rule of one budget (COUNT requests per WINDOW) as a value type.
// LocalTokenSource holds one under a lock; RedisTokenSource runs the same rule as a Lua script
// on Redis' clock, so one replica and N replicas sharing a key behave alike.
//
// 1. The window (the guarantee). A request may be sent at t only when fewer than `limit`
//    requests were sent in (t - window, t]. The log keeps the send times of the last window,
//    oldest first (at most `limit` of them): the check is one comparison with the oldest, a
//    grant one append, and sends that leave the window are dropped as time passes, so each
//    admission is O(1) amortised and memory is at most `limit` times. Send times are recorded
//    in order (a clock that steps back records the latest time seen). Proof that no window
//    (x - window, x] ever holds more than `limit`: were it to hold sends s_j <= ... <= s_{j+L},
//    the grant of s_{j+L} would have seen s_j .. s_{j+L-1} (all later than
//    x - window >= s_{j+L} - window) in its own window, L of them, and refused. This holds for
//    every kind of grant below, bursts included, and for windows fixed or sliding. (MakeBudgets
//    passes Userpilot's window plus the spacing margin, so jitter between the gateway and
//    Userpilot cannot squeeze two windows' requests into one of Userpilot's.)
//
// 2. Bursts go at once. When nobody waits (TakeKind::kImmediate), the window alone decides: a
//    burst that fits what the window has left is granted back to back, and a call that does
//    not fit learns when the oldest send leaves the window.
//
// 3. Smoothing: waiting calls are paced. Calls that wait (TakeKind::kPaced; the queue is in
//    FairLimiter) are granted when the window has room AND the pace allows: one request per
//    interval = ceil(window / limit), each paced grant moving the pace slot `next` to
//    max(next, now) + interval, and a grant may come `slack` before its slot (timer slack; it
//    never loosens the window). Without pacing, a window's budget spent in a burst would come
//    back as a burst one window later, and again every window: under sustained overload every
//    caller arriving between two such instants - most of the window - would be refused or wait
//    a whole window. With it, sends follow the pace from the moment calls start waiting, so
//    after one window of sustained overload admissions are at most one interval apart (any gap
//    in the previous window's sends is filled at the pace), every window holds `limit` (the
//    pace sends window / interval of them, the window caps them), and a waiting caller with an
//    ordinary deadline is served in its turn.
//    The price: the window right after a burst is under-used (its budget went to the burst),
//    and without credit a batch that arrives just before the window frees would be spread over
//    a window instead of sent at once. Hence:
//
// 4. Credit from idle time. An immediate ask (a call that arrives while nobody waits) sets the
//    credit to the whole intervals that passed since the previous ask of any kind, at most
//    limit - 1; waiting calls spend credit before they need a pace slot. A job that sends its
//    batch once a minute and finds the window still full for 100 ms gets the whole batch out
//    when the window frees; under sustained overload callers ask more often than once an
//    interval, so the credit is 0 and the pace rules. Credit never outlives a queue's
//    promises: only an immediate ask (an empty queue) resets it.
//
// Utilisation: while calls wait, each grant waits either for the pace (then grants come one
// interval apart: `limit` per window, interval rounded up to the nanosecond) or for the window
// (then the window holds `limit`); so from the second window of sustained overload on, the
// budget is used to the last request, less the rounding of `interval` and the timer's lateness
// beyond `slack` (property tests in exact_window_test.cc and fair_limiter_test.cc).
//
// Plan() replays this rule to say when the next N paced grants would happen: FairLimiter's
// exact wait estimates, in O(N).
//
// Thread-safety: none; a value type. Owners serialise access.
#ifndef USERPILOT_GATEWAY_SERVICE_RATELIMIT_EXACT_WINDOW_H_
#define USERPILOT_GATEWAY_SERVICE_RATELIMIT_EXACT_WINDOW_H_

#include <cstdint>
#include <deque>
#include <vector>

#include "absl/time/time.h"
#include "service/ratelimit/token_source.h"

namespace userpilot::gateway {

class ExactWindow {
 public:
  // ceil(window / limit): the pace. Requires window > 0 and limit >= 1.
  static absl::Duration IntervalFor(absl::Duration window, int64_t limit);

  // Requires limit >= 1, 0 < window < infinity, 0 <= slack < infinity (aborts otherwise).
  ExactWindow(int64_t limit, absl::Duration window, absl::Duration slack = absl::ZeroDuration());

  // Takes one permit at `now` if the rule allows it. `retry_at` in the result: when one more
  // permit of `kind` could be taken (granted or not); InfinitePast when at once.
  TakeResult Take(absl::Time now, TakeKind kind);

  // Requests the window still holds room for at `now` (0 when full).
  int64_t Room(absl::Time now) const;

  // When the next `count` paced grants would happen if asked for one after another from `now`,
  // each at or after `start` and at least `min_spacing` after the previous one, with nobody
  // else taking permits: the same rule as Take(kPaced), replayed. Fills `*times`.
  void Plan(absl::Time now, int64_t count, absl::Time start, absl::Duration min_spacing,
            std::vector<absl::Time>* times) const;

  int64_t limit() const { return limit_; }
  absl::Duration window() const { return window_; }
  absl::Duration interval() const { return interval_; }
  absl::Duration slack() const { return slack_; }
  int64_t credit() const { return credit_; }

 private:
  // The index in sends_ of the oldest send still inside the window at `t`.
  size_t FirstInWindow(absl::Time t) const;

  const int64_t limit_;
  const absl::Duration window_;
  const absl::Duration interval_;
  const absl::Duration slack_;
  std::deque<absl::Time> sends_;  // Send times, oldest first; those of the last window at least.
  absl::Time last_send_ = absl::InfinitePast();
  absl::Time next_paced_ = absl::InfinitePast();  // The pace slot of the next paced grant.
  int64_t credit_ = 0;
  absl::Time last_ask_ = absl::InfinitePast();
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RATELIMIT_EXACT_WINDOW_H_
