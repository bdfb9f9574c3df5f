// FairLimiter: admission to one upstream budget (identify, track, delete, ...), for many
// callers at once, without holding a thread while anyone waits.
//
// A call asks Acquire(caller, deadline, done). `done` receives exactly one of:
//  - OK: send the request upstream now (one permit of the budget was taken for it);
//  - RESOURCE_EXHAUSTED, reason BUDGET_EXHAUSTED, with the facts (common/call_facts.h) of the
//    refusal - the budget, the cause, when a permit is expected as retry delay, and a quota
//    description (callers see ErrorInfo, RetryInfo and QuotaFailure): refused at once because
//    the queue is full, the caller's own cap is reached, or the call cannot be admitted before
//    its deadline; or, later, pushed out of a full queue by a caller with a smaller share of it,
//    or displaced past its deadline by a call that fairness serves first (see "Queue bound" and
//    "Exact refusal");
//  - DEADLINE_EXCEEDED: the deadline (minus `admission_headroom`) arrived while the call was
//    waiting (only when something the limiter could not foresee intervened: a 429's pause, a
//    shared budget's other replicas); it is never admitted afterwards;
//  - UNAVAILABLE: the TokenSource could not decide (Redis down and no fallback), or the limiter
//    shut down ("gateway shutting down").
//
// The rule (exact_window.h): at most `limit` requests in any window; a call that arrives while
// nobody waits goes at once when the window has room, so a burst that fits goes out at once;
// calls that must wait are paced, one per window / limit, after spending any credit the budget
// earned while idle.
//
// Admission without a hop. When nobody waits, the budget is not paused or held back by the
// adaptive ceiling, and the source can decide on the caller's thread (the local source; a
// Redis-shared budget while it falls back to its local share), the call is admitted inside
// Acquire(): `done(OK)` runs on the caller's thread before Acquire() returns, with no lock of
// the limiter held, no timer set and no scheduler wake-up. Only calls that wait touch the
// timer thread. A Redis-shared budget needs a round trip to decide, so its calls always take the
// asynchronous path: they wait in the queue while one Take() for the whole burst (up to 64
// permits) is in flight, and its answer admits them on the Redis client's thread.
//
// Waiting. Calls that cannot go at once wait in per-caller FIFO queues; one "pump" asks the
// TokenSource for permits, and when refused sets a Scheduler timer for the time the source
// named. Only one Take() is outstanding at a time.
//
// Fairness: weighted fair queueing on virtual time (start-time tags, served by finish tag).
// A caller with weight w gets tags spaced 1/w apart; the next permit goes to the waiting call
// with the smallest tag (ties: arrival order). A caller that starts waiting joins at the
// current virtual time, so neither a flood's backlog nor an idle spell gives anyone credit:
// with A holding 100 waiting calls and B sending 5, B's calls interleave with A's one for one
// (weight 1 each). Weights come from configuration (per caller name, default 1); the name is
// CallOptions.caller (x-caller), "" for anonymous callers, who share one queue.
//
// Queue bound: at most `max_queue` calls wait in total, and optionally `max_queued` per caller.
// When the queue is full, a new call from a caller whose share (waiting / weight) would still
// be smaller than the largest share pushes out that caller's newest waiting call (answered
// RESOURCE_EXHAUSTED at once, like a refusal) - "longest queue drop" - so a flood cannot fill
// the queue and lock modest callers out. Otherwise the new call is refused.
//
// Exact refusal. With a source that can replay its rule (TokenSource::Plan: the local one),
// the wait of a new call is computed, not guessed: the time the source will grant the permit of
// its place in the fair order (the calls whose tags are not after its own are served first),
// given the pause, the adaptive ceiling, the window and the pace. A call that cannot be
// admitted before its deadline less `admission_headroom` (and less the pace's timer slack,
// RateSpec::tolerance, so a timer that fires a little late cannot make it expire) is refused
// at once; one that is queued is admitted at that time (nobody can take its permit: later calls
// queue behind, or are admitted inline only while nobody waits). A later call that fairness serves
// first moves the calls behind it back by one permit; the first of them that would then miss its
// deadline is answered RESOURCE_EXHAUSTED ("displaced") at once rather than left to expire. The
// cost is O(calls ahead) per waiting call, bounded by `max_queue`. A Redis-shared source cannot
// replay the shared state without a round trip, so its estimate is a guess: while the budget is not
// pacing (calls wait only for the round trip) the wait is the round trip; while pacing, the time
// the source last named plus `ahead` intervals, where the interval is the current (adaptive) pace
// or, when longer, the spacing this limiter's grants actually had while calls kept waiting (an
// exponential average of recent gaps, each counted as at most 8 intervals: other replicas take part
// of the permits). When the source refuses, the waiting calls that this guess puts past their
// deadlines are refused at once.
//
// Upstream feedback (from the stub layer):
//  - OnUpstreamRateLimited(retry_after, admitted_at): Userpilot answered 429. The whole budget
//    pauses until now + Retry-After when given, else now + the backoff, which starts at
//    `initial_backoff` and doubles with each 429 up to `max_backoff`; the pause is passed to the
//    TokenSource (PauseUntil) too, so a shared source can pause every replica. Retry-After (or
//    X-RateLimit-Reset) beyond `max_upstream_pause` is capped to it, logged and counted (a
//    `Retry-After: 86400` must not stop a budget for a day). The rate drops multiplicatively
//    (x `decrease_factor`, not below `min_rate_fraction` of the configured limit) through an
//    adaptive ceiling, a GCRA inside the limiter on top of the source that spaces every
//    admission, bursts included, while the rate is reduced. 429s for requests admitted at or
//    before the last decrease are echoes of the same congestion (requests already in flight):
//    they may extend the pause to their Retry-After, but neither decrease the rate again nor
//    grow the backoff.
//  - OnUpstreamSuccess(admitted_at): resets the backoff to `initial_backoff` and raises the rate
//    additively, by `recovery_per_window` of the configured limit per window of successful
//    traffic (each success adds recovery_per_window * limit / current_limit requests), up to
//    the configured limit. Successes of requests admitted before the last decrease are ignored.
//
// Lifetime: the Scheduler must outlive the limiter. The destructor calls Shutdown().
//
// Thread-safety: every method is thread-safe (one std::mutex; callbacks run outside it).
// `done` runs inside Acquire() only for an admission made there (see "Admission without a
// hop"): a caller must not hold a lock across Acquire() that `done` takes. Refusals decided in
// Acquire() (and a call pushed out or displaced by this one) are posted to the Scheduler; later
// admissions and expiries run on the Scheduler's thread, or on the TokenSource's completion
// thread (an asynchronous source); Shutdown() answers waiters on the calling thread. Do not
// call Shutdown() or destroy the limiter from inside a `done` callback.
#ifndef USERPILOT_GATEWAY_SERVICE_RATELIMIT_FAIR_LIMITER_H_
#define USERPILOT_GATEWAY_SERVICE_RATELIMIT_FAIR_LIMITER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/common/call_result.h"
#include "service/common/scheduler.h"
#include "service/logging/logger.h"
#include "service/ratelimit/budget_observer.h"
#include "service/ratelimit/rate_limit_options.h"
#include "service/ratelimit/token_source.h"

namespace userpilot::gateway {

// Why a call was refused (BudgetRefusal::cause, the ErrorInfo metadata `cause`).
inline constexpr absl::string_view kCauseQueueFull = "queue_full";
inline constexpr absl::string_view kCauseCallerQueueFull = "caller_queue_full";
inline constexpr absl::string_view kCauseWaitExceedsDeadline = "wait_exceeds_deadline";
inline constexpr absl::string_view kCausePushedOut = "pushed_out";
// A call that fairness served first moved this waiting call past its deadline.
inline constexpr absl::string_view kCauseDisplaced = "displaced";
// DEADLINE_EXCEEDED: the deadline (less admission_headroom) came before a permit did.
inline constexpr absl::string_view kCauseDeadlineReached = "deadline_reached";
// Reported to a BudgetObserver only (the caller sees UNAVAILABLE without an ErrorInfo cause):
// the TokenSource could not decide, or the limiter shut down.
inline constexpr absl::string_view kCauseSourceError = "source_error";
inline constexpr absl::string_view kCauseShutdown = "shutdown";

// A snapshot for metrics and tests.
struct FairLimiterStats {
  std::string budget;
  int64_t configured_limit = 0;  // the TokenSource's spec
  absl::Duration window;
  double current_limit = 0;  // after adaptation: configured_limit * current fraction
  // Permits the source would grant now (0 while paused or past the adaptive ceiling); < 0 when
  // the source cannot tell (Redis).
  double tokens_available = -1;
  size_t queued = 0;  // calls waiting
  size_t callers_waiting = 0;
  bool paused = false;
  absl::Time paused_until = absl::InfinitePast();
  absl::Duration backoff;  // the pause the next 429 without Retry-After would cause

  // Counters since construction.
  uint64_t admitted_without_wait = 0;  // admitted within one interval of asking
  uint64_t admitted_inline = 0;        // of those, inside Acquire() (no timer, no hop)
  uint64_t admitted_after_wait = 0;
  absl::Duration total_wait;  // summed over admitted calls, from Acquire() to admission
  uint64_t rejected_queue_full = 0;
  uint64_t rejected_caller_cap = 0;
  uint64_t rejected_wait_exceeds_deadline = 0;
  uint64_t pushed_out = 0;         // waiting calls pushed out of a full queue
  uint64_t displaced = 0;          // waiting calls moved past their deadline by fairness
  uint64_t deadline_exceeded = 0;  // on arrival (deadline already past) or while waiting
  uint64_t source_errors = 0;      // answered UNAVAILABLE because Take() failed
  uint64_t cancelled_by_shutdown = 0;
  uint64_t wasted_permits = 0;          // granted while every waiting call had just expired
  uint64_t upstream_rate_limited = 0;   // 429s reported, echoes included
  uint64_t rate_decreases = 0;          // 429s that paused with backoff/decrease (non-echo)
  uint64_t upstream_pauses_capped = 0;  // upstream pause hints cut to max_upstream_pause
  uint64_t upstream_successes = 0;
};

class FairLimiter {
 public:
  // `done`'s argument: OK to send now, or why not (see the file comment).
  using Done = absl::AnyInvocable<void(CallStatus) &&>;

  // Aborts on invalid `options` (call options.Validate() at start-up for a clear error).
  FairLimiter(std::unique_ptr<TokenSource> source, Scheduler& scheduler,
              FairLimiterOptions options = {});
  ~FairLimiter();

  FairLimiter(const FairLimiter&) = delete;
  FairLimiter& operator=(const FairLimiter&) = delete;

  // Asks for one permit for `caller`, who stops waiting at `deadline`. `done` runs exactly
  // once: inside this call for an admission made at once (see the file comment), otherwise
  // later on another thread.
  void Acquire(absl::string_view caller, absl::Time deadline, Done done);

  // Userpilot answered 429 to a request this budget admitted at `admitted_at` (Now() at
  // admission); `retry_after` is its Retry-After, if it sent one. The default `admitted_at`
  // never counts as an echo.
  void OnUpstreamRateLimited(std::optional<absl::Duration> retry_after,
                             absl::Time admitted_at = absl::InfiniteFuture());
  // Userpilot accepted a request this budget admitted at `admitted_at`.
  void OnUpstreamSuccess(absl::Time admitted_at = absl::InfiniteFuture());

  // Answers every waiting call UNAVAILABLE ("gateway shutting down") on this thread; later
  // Acquire() calls are answered the same way. Idempotent. Waits for a Take() call in progress
  // (not for an asynchronous completion, which is then ignored).
  void Shutdown();

  FairLimiterStats Stats() const;

  // The budget's name (its TokenSource spec's) and its clock (the Scheduler's).
  const std::string& name() const;
  absl::Time Now() const;
  // The longest pause a 429's Retry-After / X-RateLimit-Reset may impose (FairLimiterOptions).
  absl::Duration max_upstream_pause() const;

 private:
  class Core;
  std::unique_ptr<TokenSource> source_;  // Destroyed after core_ is shut down.
  std::shared_ptr<Core> core_;           // Shared with timers and Take() callbacks (weakly).
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RATELIMIT_FAIR_LIMITER_H_
