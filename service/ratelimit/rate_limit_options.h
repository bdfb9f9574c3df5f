// The rate limiter's options - one FairLimiter's (fairness, 429 feedback, admission headroom)
// and the gateway's budgets' (rates, queue bounds, spacing margin) - in a header of their own so
// that configuration and the stack's composition need not include the component. Validate() is
// defined beside what each configures (fair_limiter.cc, budgets.cc); see budgets.h and
// fair_limiter.h for what the settings do.
//
// Thread-safety: values (the observer, not owned, is thread-safe).
#ifndef USERPILOT_GATEWAY_SERVICE_RATELIMIT_RATE_LIMIT_OPTIONS_H_
#define USERPILOT_GATEWAY_SERVICE_RATELIMIT_RATE_LIMIT_OPTIONS_H_

#include <cstddef>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/ratelimit/budget_observer.h"
#include "service/ratelimit/token_source.h"

namespace userpilot::gateway {

class Logger;           // service/logging/logger.h
class JobLaneObserver;  // service/ratelimit/job_lane_observer.h

// How much of a budget one caller deserves while calls wait.
struct CallerPolicy {
  // The caller's share of admissions relative to other waiting callers; > 0. Default 1.
  double weight = 1.0;
  // At most this many of the caller's calls wait in one budget; 0 = no cap of its own (only
  // the budget's max_queue).
  size_t max_queued = 0;
};

// A few minutes: longer than any window Userpilot documents (one minute), short enough that a
// hostile or broken header (`Retry-After: 86400`) costs minutes, not a day.
inline constexpr absl::Duration kDefaultMaxUpstreamPause = absl::Minutes(5);

struct FairLimiterOptions {
  // Calls waiting in this budget, all callers together; >= 1.
  size_t max_queue = 1000;
  // Policy for callers not named in `callers`.
  CallerPolicy default_caller;
  // Per-caller policies by caller name (x-caller).
  absl::flat_hash_map<std::string, CallerPolicy> callers;

  // 429 without Retry-After: pause for the backoff, which starts here and doubles per 429
  // (reset by a success), up to `max_backoff`. 0 < initial_backoff <= max_backoff.
  absl::Duration initial_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Seconds(30);

  // Adaptive rate: each (non-echo) 429 multiplies the effective limit by decrease_factor, in
  // (0, 1]; never below min_rate_fraction of the configured limit, in (0, 1]. Successes give
  // back recovery_per_window of the configured limit per window of successful traffic, > 0.
  double decrease_factor = 0.7;
  double min_rate_fraction = 0.1;
  double recovery_per_window = 0.1;

  // A call must be admitted at least this long before its deadline (time the upstream request
  // needs); a call that would be admitted later is refused or expires. >= 0. Default 0: admit
  // until the deadline itself.
  absl::Duration admission_headroom = absl::ZeroDuration();

  // The longest pause an upstream hint (Retry-After, X-RateLimit-Reset) may impose on the
  // budget; a longer one is cut to this, logged and counted. The retry delay given to callers
  // must be capped with the same value (one option, --max_upstream_pause). > 0, finite.
  absl::Duration max_upstream_pause = kDefaultMaxUpstreamPause;

  // Told of every answer as it is decided, for metrics that need every observation (the wait
  // histogram, outcomes per caller): OnAdmitted(budget, caller, wait from Acquire() to the
  // permit) for each admission, OnRejected(budget, caller, cause) for each error answer, with
  // one of the kCause* values above. Called without the limiter's lock, just before `done`
  // runs (a refusal inside Acquire() is reported there, its `done` posted). Null: none. Not
  // owned; must outlive the limiter.
  BudgetObserver* observer = nullptr;

  // Where a capped upstream pause is logged (warning). Null: not logged (still counted). Not
  // owned; must outlive the limiter.
  Logger* logger = nullptr;

  // The policy of `caller`.
  const CallerPolicy& PolicyFor(absl::string_view caller) const;
  // InvalidArgument naming the first bad field.
  absl::Status Validate() const;
};

// The gateway's fairness/feedback defaults: FairLimiterOptions' own, except that a call must be
// admitted at least kDefaultAdmissionHeadroom before its deadline. A call admitted at the very
// end of its deadline would be sent to Userpilot just as its caller gives up: the request
// spends budget and may take effect (an event recorded) while the caller sees
// DEADLINE_EXCEEDED from its own timer. 100 ms covers a typical Userpilot answer; a call that
// cannot be admitted that early is refused at once, or answered DEADLINE_EXCEEDED by the gateway
// 100 ms before its deadline, while the caller still listens.
inline constexpr absl::Duration kDefaultAdmissionHeadroom = absl::Milliseconds(100);
inline FairLimiterOptions DefaultBudgetLimiterOptions() {
  FairLimiterOptions options;
  options.admission_headroom = kDefaultAdmissionHeadroom;
  return options;
}

// The timer slack of a budget's pace: above the stalls a loaded 2-core host gives a timer thread
// (usually well under 1 ms, now and then several), far below any pace worth pacing.
inline constexpr absl::Duration kPacingSlack = absl::Milliseconds(10);

// The job lanes (job_lane.h): one bulk identify job at a time, one import job at a time.
struct JobLaneOptions {
  // Between two GetJob polls of the job a call waits for; > 0. Each poll spends the job_read
  // budget (120 a minute by default): two lanes polling every 2 s take 60 of them.
  absl::Duration poll_interval = absl::Seconds(2);
  // A call must be sent at least this long before its deadline (time for Userpilot to answer
  // the submission); >= 0.
  absl::Duration headroom = kDefaultAdmissionHeadroom;
  // Calls waiting their turn on one lane (each holds a copy of its request, a bulk request may
  // be megabytes); >= 1.
  size_t max_waiting = 4;
  // Told of every send with the call's wait (the wait histogram). Null: none. Not owned; must
  // outlive the lanes.
  JobLaneObserver* observer = nullptr;

  // InvalidArgument naming the first bad field.
  absl::Status Validate() const;
};

// One budget: its rate and how many calls may wait for it.
struct BudgetOptions {
  RateSpec rate;
  size_t max_queue = 1000;
};

struct RateLimitOptions {
  // Requests per window, and the queue bound. Queue bounds also bound memory: each waiting
  // call holds a copy of its request. Bulk identify and imports have no rate (Userpilot
  // documents none): one job at a time, kept by the job lanes below.
  BudgetOptions identify = {{"identify", 600, absl::Minutes(1)}, 1000};
  BudgetOptions track = {{"track", 600, absl::Minutes(1)}, 1000};
  BudgetOptions deletes = {{"delete", 1, absl::Seconds(2)}, 30};
  BudgetOptions job_reads = {{"job_read", 120, absl::Minutes(1)}, 240};

  // Slack added to every window (see the file comment); >= 0.
  absl::Duration spacing_margin = absl::Milliseconds(100);

  // Fairness, caller weights and caps, 429 backoff, adaptive rate, admission headroom: the
  // same for every budget. Its max_queue is ignored: each BudgetOptions has its own.
  FairLimiterOptions limiter = DefaultBudgetLimiterOptions();

  // The bulk and import lanes (job_lane.h).
  JobLaneOptions job_lanes;

  // InvalidArgument naming the first bad field.
  absl::Status Validate() const;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RATELIMIT_RATE_LIMIT_OPTIONS_H_
