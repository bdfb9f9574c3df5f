// Gcra: the Generic Cell Rate Algorithm as a small value type, the arithmetic shared by
// LocalTokenSource (a budget's permits) and FairLimiter (its adaptive ceiling after 429s).
//
// State is one instant, the theoretical arrival time (TAT). A request at `now` conforms when
// now >= TAT - tolerance; taking it sets TAT = max(TAT, now) + interval.
//
// The any-window guarantee. Let t_0 <= t_1 <= ... be the times of taken requests. Each take
// moves TAT forward by at least `interval` and happens no earlier than TAT - tolerance, so for
// every i and k:   t_{i+k} - t_i >= k * interval - tolerance.
// Userpilot (and the emulator) count a request taken at t in the sliding window (t - W, t].
// Such a window holds more than L requests only if some t_{i+L} - t_i < W. Hence at most L
// requests fall in ANY window of length W whenever
//                        L * interval - tolerance >= W.
//  - burst b = 1 (tolerance 0): interval = ceil(W / L). Requests are spaced at least W / L
//    apart, and a budget saturated from time 0 is used to the last request (L in [0, W)).
//  - burst b > 1 (up to b requests back to back after an idle spell): tolerance =
//    (b - 1) * interval, which requires interval = ceil(W / (L - b + 1)). A burst is paid for
//    with a lower sustained rate, (L - b + 1) per W instead of L: the classic token bucket
//    (b on top of L per W) breaks the window limit, this does not.
// `interval` is rounded UP to absl::Duration's resolution, never down: rounding down would let
// L * interval fall short of W and admit L + 1 in one window.
//
// Changing the interval (SetInterval) keeps TAT, so spacing already promised is kept; the
// guarantee above holds across changes as long as every interval in use is at least the one
// that satisfies the inequality (adaptive control only ever slows a budget down from it).
//
// Thread-safety: none; a value type. Owners serialise access.
#ifndef USERPILOT_GATEWAY_SERVICE_RATELIMIT_GCRA_H_
#define USERPILOT_GATEWAY_SERVICE_RATELIMIT_GCRA_H_

#include <cstdint>

#include "absl/time/time.h"

namespace userpilot::gateway {

class Gcra {
 public:
  // The smallest interval at which `burst` back-to-back requests plus steady spacing keep at
  // most `limit` requests in any window of length `window`: ceil(window / (limit - burst + 1)).
  // Requires window > 0 and 1 <= burst <= limit.
  static absl::Duration IntervalFor(absl::Duration window, int64_t limit, int64_t burst = 1);

  // A limiter spacing requests `interval` apart, letting up to `burst` through back to back
  // (tolerance = (burst - 1) * interval), plus `slack` of extra tolerance for timers that fire
  // late (RateSpec::tolerance). Requires interval > 0, burst >= 1, slack >= 0.
  explicit Gcra(absl::Duration interval, int64_t burst = 1,
                absl::Duration slack = absl::ZeroDuration());

  // The earliest time a request conforms (InfinitePast when idle long enough).
  absl::Time NextAllowed() const { return tat_ - tolerance_; }

  // True (and the request is taken) when a request at `now` conforms; otherwise false and
  // `*retry_at` (if not null) is the earliest conforming time.
  bool TryTake(absl::Time now, absl::Time* retry_at = nullptr);

  // How many requests would conform at `now` if taken back to back (0 when the next one must
  // wait).
  int64_t Available(absl::Time now) const;
  // Takes a request at `now` whether or not it conforms (for a ceiling that only records).
  void ForceTake(absl::Time now);

  // Changes the spacing from now on. The tolerance stays what the construction-time interval
  // and burst made it, so a slower interval never widens bursts.
  void SetInterval(absl::Duration interval);

  absl::Duration interval() const { return interval_; }
  absl::Duration tolerance() const { return tolerance_; }

 private:
  absl::Duration interval_;
  absl::Duration tolerance_;
  absl::Time tat_ = absl::InfinitePast();
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RATELIMIT_GCRA_H_
