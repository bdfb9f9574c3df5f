// Userpilot's per-key rate limits, as the emulator enforces them: a true sliding window per
// budget, so a test can tell whether a client ever sent more than N requests in any window.
//
// Budgets (userpilot-api-notes.md "Limits"): identify and company identify share one budget,
// track has its own, and deletes (users and companies together) get one request per
// `delete_interval`. Only admitted requests occupy a window; a refused (429) request does not.
//
// Thread-safety: SlidingWindowLimiter is thread-safe; limits can change while requests flow.
#ifndef USERPILOT_GATEWAY_TESTS_EMULATOR_RATE_LIMITER_H_
#define USERPILOT_GATEWAY_TESTS_EMULATOR_RATE_LIMITER_H_

#include <array>
#include <atomic>
#include <deque>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace userpilot::gateway::testing {

// The limits in force. Plain data; copy freely.
struct RateLimits {
  // False turns every limit off (benchmarks).
  bool enabled = true;
  // Identify + company identify requests admitted per `window`.
  int identify_limit = 600;
  // Track requests admitted per `window`.
  int track_limit = 600;
  // The sliding window of the identify and track budgets.
  absl::Duration window = absl::Seconds(60);
  // Deletes: one request (users or companies) per this interval.
  absl::Duration delete_interval = absl::Seconds(2);
  // Whether a 429 carries `Retry-After: <seconds>` (Userpilot documents none; both forms must
  // be testable).
  bool retry_after = false;
};

// The budgets a request can draw on.
enum class RateScope { kIdentify = 0, kTrack = 1, kDelete = 2 };

class SlidingWindowLimiter {
 public:
  struct Decision {
    bool admitted = true;
    // When refused: how long until the oldest request in the window leaves it.
    absl::Duration retry_after = absl::ZeroDuration();
  };

  explicit SlidingWindowLimiter(const RateLimits& limits) { SetLimits(limits); }

  // Admits the request at `now` into `scope`'s window, or refuses it. Thread-safe.
  Decision Admit(RateScope scope, absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  // Replaces the limits. Requests already admitted stay in their windows. Thread-safe.
  void SetLimits(const RateLimits& limits) ABSL_LOCKS_EXCLUDED(mu_);
  RateLimits limits() const ABSL_LOCKS_EXCLUDED(mu_);

  // Forgets every admitted request (empty windows). Thread-safe.
  void Clear() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  static constexpr int kScopes = 3;

  mutable absl::Mutex mu_;
  RateLimits limits_ ABSL_GUARDED_BY(mu_);
  // Admission times per scope, oldest first; at most the scope's limit long (bounded memory).
  std::array<std::deque<absl::Time>, kScopes> admitted_ ABSL_GUARDED_BY(mu_);
  // Mirrors limits_.enabled so the disabled case costs no lock.
  std::atomic<bool> enabled_{true};
};

}  // namespace userpilot::gateway::testing

#endif  // USERPILOT_GATEWAY_TESTS_EMULATOR_RATE_LIMITER_H_
