#include "service/ratelimit/fair_limiter.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <list>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "service/ratelimit/gcra.h"

namespace userpilot::gateway {
namespace {

// When a source refuses without naming a future time (another replica took the permit just
// now), ask again this much later rather than spinning.
constexpr absl::Duration kMinRetryDelay = absl::Milliseconds(1);
// The observed spacing between grants (for estimates) is an exponential average with this
// weight on each new gap, and a gap counts as at most this many intervals (a pause the limiter
// did not see, such as another replica's 429 through Redis, must not dominate it).
constexpr double kObservedGapWeight = 0.25;
constexpr int64_t kMaxObservedIntervals = 8;
// Permits one asynchronous Take() asks for while nobody is paced (a burst waiting only for the
// round trip): one Redis script run admits up to this many.
constexpr int64_t kMaxBatch = 64;

// Set while this thread is inside TokenSource::Take(): a completion that arrives inline must
// not start the next Take() from inside the previous one (unbounded recursion).
thread_local int tl_take_depth = 0;

// Fair-queueing tags are sums of 1 / weight: equal within rounding counts as equal.
constexpr double kTagEpsilon = 1e-9;
bool TagAfter(double a, double b) { return a > b + kTagEpsilon; }
// The order calls are served in: by tag, equal tags by arrival.
bool ServedBefore(double tag_a, uint64_t seq_a, double tag_b, uint64_t seq_b) {
  if (TagAfter(tag_b, tag_a)) return true;
  if (TagAfter(tag_a, tag_b)) return false;
  return seq_a < seq_b;
}

using Done = FairLimiter::Done;

// An answer to deliver outside the lock, and what to tell the BudgetObserver about it.
struct Answer {
  Done done;
  CallStatus status;
  std::string caller;
  absl::string_view cause;  // A kCause* value; empty for an admission.
  absl::Duration wait;      // Admissions: from Acquire() to the permit.
};
using Answers = std::vector<Answer>;

void Report(BudgetObserver* observer, absl::string_view budget, const Answers& answers) {
  if (observer == nullptr) return;
  for (const Answer& answer : answers) {
    if (answer.cause.empty()) {
      observer->OnAdmitted(budget, answer.caller, answer.wait);
    } else {
      observer->OnRejected(budget, answer.caller, answer.cause);
    }
  }
}

void Deliver(Answers& answers) {
  for (Answer& answer : answers) {
    // An admission carries its wait (CallFacts::budget_wait), the value the observer was told.
    if (answer.cause.empty()) answer.status.facts().budget_wait = answer.wait;
    std::move(answer.done)(std::move(answer.status));
  }
  answers.clear();
}

std::string Describe(const RateSpec& spec) {
  return absl::StrCat("at most ", spec.limit, " requests per ", absl::FormatDuration(spec.window),
                      " to Userpilot");
}

CallStatus BudgetError(absl::StatusCode code, const RateSpec& spec, absl::string_view cause,
                       std::string message, std::optional<absl::Duration> retry,
                       std::string quota_description) {
  CallFacts facts;
  facts.reason = ErrorReason::kBudgetExhausted;
  facts.budget_refusal = BudgetRefusal{spec.name, cause, std::move(quota_description)};
  if (retry.has_value()) facts.retry_delay = RetryDelay{*retry, RetryDelaySource::kGateway};
  return CallStatus(absl::Status(code, message), std::move(facts));
}

}  // namespace

const CallerPolicy& FairLimiterOptions::PolicyFor(absl::string_view caller) const {
  auto it = callers.find(caller);
  return it == callers.end() ? default_caller : it->second;
}

absl::Status FairLimiterOptions::Validate() const {
  auto bad = [](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("rate limiting: ", what));
  };
  if (max_queue < 1) return bad("max_queue must be at least 1");
  if (!(default_caller.weight > 0)) return bad("the default caller weight must be positive");
  for (const auto& [name, policy] : callers) {
    if (!(policy.weight > 0)) {
      return bad(absl::StrCat("the weight of caller '", name, "' must be positive"));
    }
  }
  if (initial_backoff <= absl::ZeroDuration() || max_backoff < initial_backoff ||
      max_backoff == absl::InfiniteDuration()) {
    return bad("backoff bounds need 0 < initial_backoff <= max_backoff < infinity");
  }
  if (!(decrease_factor > 0 && decrease_factor <= 1)) {
    return bad("decrease_factor must be in (0, 1]");
  }
  if (!(min_rate_fraction > 0 && min_rate_fraction <= 1)) {
    return bad("min_rate_fraction must be in (0, 1]");
  }
  if (!(recovery_per_window > 0)) return bad("recovery_per_window must be positive");
  if (admission_headroom < absl::ZeroDuration() || admission_headroom == absl::InfiniteDuration()) {
    return bad("admission_headroom must be finite and not negative");
  }
  if (max_upstream_pause <= absl::ZeroDuration() ||
      max_upstream_pause == absl::InfiniteDuration()) {
    return bad("max_upstream_pause must be positive and finite");
  }
  return absl::OkStatus();
}

// All state, shared (weakly) with timers and Take() callbacks so that neither outlives it.
class FairLimiter::Core : public std::enable_shared_from_this<FairLimiter::Core> {
 public:
  Core(TokenSource& source, Scheduler& scheduler, FairLimiterOptions options)
      : source_(source),
        scheduler_(scheduler),
        options_(std::move(options)),
        spec_(source.spec()),
        base_interval_(spec_.interval()),
        backoff_(options_.initial_backoff),
        ceiling_(base_interval_) {}

  const std::string& name() const { return spec_.name; }
  absl::Time Now() const { return scheduler_.Now(); }
  absl::Duration max_upstream_pause() const { return options_.max_upstream_pause; }

  // Reports `answers` to the observer, then runs them. Never with mu_ held.
  void Finish(Answers& answers) {
    Report(options_.observer, spec_.name, answers);
    Deliver(answers);
  }
  // Reports `answers` now and runs them on the Scheduler's thread (answers decided on a caller's
  // thread for someone else's call, or refusals, which never run inside Acquire()).
  void Post(Answers& answers) {
    Report(options_.observer, spec_.name, answers);
    if (answers.empty()) return;
    scheduler_.RunAt(scheduler_.Now(),
                     [answers = std::move(answers)]() mutable { Deliver(answers); });
    answers.clear();
  }

  void Acquire(absl::string_view caller, absl::Time deadline, Done done);
  void OnUpstreamRateLimited(std::optional<absl::Duration> retry_after, absl::Time admitted_at);
  void OnUpstreamSuccess(absl::Time admitted_at);
  void Shutdown();
  FairLimiterStats Stats() const;

 private:
  struct Waiter {
    uint64_t id = 0;
    uint64_t seq = 0;  // Arrival order, to break ties between equal tags.
    // Finish tag: the previous waiting call's of the same caller (or the virtual time) plus
    // 1 / weight. Fixed while the call waits, so removing another call never moves it ahead of
    // anyone: the fair order only ever loses members.
    double tag = 0;
    Done done;
    absl::Time deadline;
    absl::Time enqueued_at;
    Scheduler::TimerId timer = 0;
  };
  // One caller's waiting calls, oldest first (tags increasing).
  struct CallerQueue {
    std::string name;
    CallerPolicy policy;
    std::list<Waiter> waiters;
  };
  struct Location {
    CallerQueue* queue;
    std::list<Waiter>::iterator it;
  };
  // A waiting call in the fair order (tag, then arrival).
  struct Ordered {
    double tag;
    uint64_t seq;
    Location location;
  };
  enum class PumpState { kIdle, kScheduled, kTaking };
  // An asynchronous Take() to start once the lock is released.
  struct AsyncTake {
    absl::Time now;
    TakeKind kind;
    int64_t want;
  };
  struct Estimate {
    absl::Duration wait;
    size_t ahead = 0;    // Waiting calls served before the new one.
    double tag = 0;      // The new call's finish tag.
    bool exact = false;  // From the source's Plan() (then plan_ holds ahead + 1 times).
  };

  // Stats() under mu_; `*ask_source`: whether tokens_available is the source's to tell (not
  // paused, not held back by the ceiling, not shut down).
  FairLimiterStats StatsLocked(bool* ask_source) const;

  // --- Everything below runs with mu_ held. ---
  absl::Duration IntervalLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return base_interval_ / scale_;
  }
  // The spacing the asynchronous estimate assumes: the adaptive interval, or the spacing this
  // limiter's grants actually had while calls waited if that is longer (other replicas).
  absl::Duration EstimateIntervalLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::max(IntervalLocked(), observed_interval_);
  }
  // The earliest time the limiter itself lets a permit go: the pause, and the adaptive ceiling
  // while the rate is reduced.
  absl::Time HeldUntilLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    absl::Time held = paused_until_;
    if (scale_ < 1.0) held = std::max(held, ceiling_.NextAllowed());
    return held;
  }
  // The least spacing of admissions the adaptive ceiling imposes (0 at the full rate).
  absl::Duration CeilingSpacingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return scale_ < 1.0 ? IntervalLocked() : absl::ZeroDuration();
  }
  // Waiting calls served before a new call of `caller` (and its tag).
  size_t AheadLocked(absl::string_view caller, const CallerPolicy& policy, double* tag) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The wait of a call `caller` would add now (see the header).
  Estimate EstimateLocked(absl::string_view caller, const CallerPolicy& policy, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool deadline_reached(absl::Time deadline, absl::Time now) const {
    return deadline != absl::InfiniteFuture() && now >= deadline - options_.admission_headroom;
  }
  // Whether a permit expected at `expected` comes too late for a call with `deadline`: at or
  // after its deadline less the headroom, less the pace's timer slack (a pump that wakes a few
  // milliseconds late must not turn a planned admission into an expiry).
  bool TooLate(absl::Time expected, absl::Time deadline) const {
    return deadline != absl::InfiniteFuture() &&
           expected >= deadline - options_.admission_headroom - spec_.tolerance;
  }
  // Every waiting call in the order fairness serves them.
  std::vector<Ordered> ServiceOrderLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The waiting call to serve next, answering DEADLINE_EXCEEDED to expired ones on the way.
  std::optional<Location> SelectLocked(absl::Time now, Answers& answers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes a waiting call (served: it was its queue's head and got a permit).
  Done RemoveLocked(Location location, bool served) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Admits the waiting call at `location` now.
  void AdmitWaiterLocked(Location location, absl::Time now, Answers& answers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes a waiting call that can no longer be admitted in time, answering RESOURCE_EXHAUSTED.
  void RefuseWaiterLocked(Location location, absl::string_view cause, absl::Duration wait,
                          absl::string_view why, Answers& answers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After a call with finish tag `tag` joined `ahead` calls: the first call behind it that
  // would now miss its deadline is displaced (exact sources only).
  void DisplaceLocked(double tag, size_t ahead, absl::Time now, Answers& answers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After something the queue could not foresee (a pause, a shared source's refusal): refuses
  // the waiting calls that can no longer be admitted before their deadlines.
  void RefuseHopelessLocked(absl::Time now, absl::string_view why, Answers& answers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SchedulePumpLocked(absl::Time when) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Admits what the source grants now; returns a Take() to start when the source is
  // asynchronous, otherwise schedules the pump for when it can grant again.
  std::optional<AsyncTake> ServeLocked(absl::Time now, Answers& answers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  CallStatus DeadlineWhileWaitingLocked(const Waiter& waiter, absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Pushes out the newest call of the caller with the largest share, if `caller` (with
  // `waiting` calls and `weight`) would have a smaller one. True when it made room.
  bool PushOutLocked(absl::string_view caller, size_t waiting, double weight, absl::Time now,
                     Answers& answers) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // --- Without mu_. ---
  void StartTake(const AsyncTake& take);
  // Runs the pump scheduled as `generation` (a stale timer that escaped Cancel() does nothing).
  void Pump(uint64_t generation);
  void OnTake(absl::StatusOr<TakeResult> result);
  void Expire(uint64_t id);

  TokenSource& source_;
  Scheduler& scheduler_;
  const FairLimiterOptions options_;
  const RateSpec spec_;
  const absl::Duration base_interval_;

  mutable std::mutex mu_;
  std::condition_variable source_idle_;  // calls_in_source_ dropped to 0.
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  int calls_in_source_ ABSL_GUARDED_BY(mu_) = 0;  // Threads inside TokenSource::Take/PauseUntil.

  // Waiting calls.
  absl::flat_hash_map<std::string, std::unique_ptr<CallerQueue>> queues_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, Location> index_ ABSL_GUARDED_BY(mu_);
  size_t queued_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  double virtual_time_ ABSL_GUARDED_BY(mu_) = 0;
  // The waiting calls wait for the budget (window, pace, pause or ceiling), not just for an
  // asynchronous source's round trip: they are paced. False whenever nobody waits.
  bool pacing_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<absl::Time> plan_ ABSL_GUARDED_BY(mu_);  // Scratch for Plan().

  // The pump.
  PumpState pump_state_ ABSL_GUARDED_BY(mu_) = PumpState::kIdle;
  Scheduler::TimerId pump_timer_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time pump_when_ ABSL_GUARDED_BY(mu_);  // When the scheduled pump runs.
  uint64_t pump_generation_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t take_want_ ABSL_GUARDED_BY(mu_) = 0;  // Permits the outstanding Take() asked for.

  // What is known of the budget's next free permit (for asynchronous estimates).
  absl::Time last_grant_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time source_retry_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // Average gap between consecutive grants made while calls kept waiting (0: none seen yet),
  // and whether calls were still waiting after the last grant.
  absl::Duration observed_interval_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  bool backlogged_at_last_grant_ ABSL_GUARDED_BY(mu_) = false;

  // 429 handling and adaptation.
  absl::Time paused_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Duration backoff_ ABSL_GUARDED_BY(mu_);
  double scale_ ABSL_GUARDED_BY(mu_) = 1.0;  // Effective limit / configured limit.
  absl::Time last_decrease_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  Gcra ceiling_ ABSL_GUARDED_BY(mu_);  // Spacing at the adaptive rate; binds when scale_ < 1.

  FairLimiterStats stats_ ABSL_GUARDED_BY(mu_);
};

void FairLimiter::Core::Acquire(absl::string_view caller, absl::Time deadline, Done done) {
  CallStatus refusal;
  absl::string_view cause;  // The refusal's.
  Answers admitted;         // This call, admitted inline.
  Answers others;           // Calls pushed out or displaced by this one.
  {
    std::lock_guard<std::mutex> lock(mu_);
    const absl::Time now = scheduler_.Now();
    const CallerPolicy& policy = options_.PolicyFor(caller);
    if (shutdown_) {
      cause = kCauseShutdown;
      refusal = absl::UnavailableError("gateway shutting down");
    } else if (deadline_reached(deadline, now)) {
      ++stats_.deadline_exceeded;
      cause = kCauseDeadlineReached;
      refusal = BudgetError(
          absl::StatusCode::kDeadlineExceeded, spec_, kCauseDeadlineReached,
          absl::StrCat("deadline reached before budget '", spec_.name, "' could admit the call"),
          std::nullopt, "");
    } else if (queued_ == 0) {
      // Nobody waits: admit here if the budget allows it and the source can say so now.
      pacing_ = false;
      if (HeldUntilLocked() > now) {
        pacing_ = true;
      } else if (std::optional<TakeResult> r = source_.TryTakeNow(now, TakeKind::kImmediate)) {
        if (r->granted > 0) {
          ++stats_.admitted_without_wait;
          ++stats_.admitted_inline;
          last_grant_ = now;
          backlogged_at_last_grant_ = false;
          ceiling_.ForceTake(now);
          admitted.push_back({std::move(done), absl::OkStatus(), std::string(caller),
                              absl::string_view(), absl::ZeroDuration()});
        } else {
          pacing_ = true;
          source_retry_at_ = r->retry_at;
        }
      }
    }
    if (refusal.ok() && admitted.empty()) {
      auto queue_it = queues_.find(caller);
      const size_t waiting = queue_it == queues_.end() ? 0 : queue_it->second->waiters.size();
      const Estimate estimate = EstimateLocked(caller, policy, now);
      const absl::Duration wait = estimate.wait;
      if (policy.max_queued > 0 && waiting >= policy.max_queued) {
        ++stats_.rejected_caller_cap;
        cause = kCauseCallerQueueFull;
        refusal = BudgetError(
            absl::StatusCode::kResourceExhausted, spec_, kCauseCallerQueueFull,
            absl::StrCat("budget '", spec_.name, "' is exhausted: this caller already has ",
                         waiting, " calls waiting, its cap; estimated wait ",
                         absl::FormatDuration(wait)),
            wait,
            absl::StrCat(Describe(spec_), "; the caller's cap of ", policy.max_queued,
                         " waiting calls is reached"));
      } else if (TooLate(now + wait, deadline)) {
        ++stats_.rejected_wait_exceeds_deadline;
        cause = kCauseWaitExceedsDeadline;
        refusal = BudgetError(
            absl::StatusCode::kResourceExhausted, spec_, kCauseWaitExceedsDeadline,
            absl::StrCat("budget '", spec_.name, "' cannot admit the call before its deadline: ",
                         estimate.exact ? "next permit in " : "estimated wait ",
                         absl::FormatDuration(wait), ", ", absl::FormatDuration(deadline - now),
                         " left"),
            wait,
            absl::StrCat(
                Describe(spec_), "; ", queued_, " calls waiting, ",
                estimate.exact ? "the next permit for this call comes" : "estimated wait ends",
                " after the call's deadline"));
      } else if (queued_ >= options_.max_queue &&
                 !PushOutLocked(caller, waiting, policy.weight, now, others)) {
        ++stats_.rejected_queue_full;
        cause = kCauseQueueFull;
        refusal =
            BudgetError(absl::StatusCode::kResourceExhausted, spec_, kCauseQueueFull,
                        absl::StrCat("budget '", spec_.name, "' is exhausted: ", queued_,
                                     " calls already waiting (the queue is full); estimated wait ",
                                     absl::FormatDuration(wait)),
                        wait,
                        absl::StrCat(Describe(spec_), "; the queue of ", options_.max_queue,
                                     " waiting calls is full"));
      } else {
        // Enqueue. A call pushed out for this one may have been ahead of it.
        size_t ahead = estimate.ahead;
        if (!others.empty()) {
          double tag;
          ahead = AheadLocked(caller, policy, &tag);
        }
        CallerQueue* queue;
        queue_it = queues_.find(caller);  // PushOutLocked may have erased queues.
        if (queue_it == queues_.end()) {
          auto fresh = std::make_unique<CallerQueue>();
          fresh->name = std::string(caller);
          fresh->policy = policy;
          queue = fresh.get();
          queues_.emplace(fresh->name, std::move(fresh));
        } else {
          queue = queue_it->second.get();
        }
        const uint64_t id = next_id_++;
        Waiter& waiter = queue->waiters.emplace_back();
        waiter.id = id;
        waiter.seq = id;
        waiter.tag = estimate.tag;
        waiter.done = std::move(done);
        waiter.deadline = deadline;
        waiter.enqueued_at = now;
        if (deadline != absl::InfiniteFuture()) {
          waiter.timer = scheduler_.RunAt(deadline - options_.admission_headroom,
                                          [weak = weak_from_this(), id] {
                                            if (auto self = weak.lock()) self->Expire(id);
                                          });
        }
        index_.emplace(id, Location{queue, std::prev(queue->waiters.end())});
        ++queued_;
        if (estimate.exact) {
          // Exact: the pump wakes when the first waiting call's permit comes.
          const absl::Time first = plan_.front();
          DisplaceLocked(estimate.tag, ahead, now, others);
          SchedulePumpLocked(first);
        } else {
          SchedulePumpLocked(now);
        }
      }
    }
  }
  // Inline admission: on this thread, no lock held.
  Finish(admitted);
  // Refusals never run inside Acquire(): they, and calls pushed out or displaced by this one,
  // are posted (and reported at once, so the observer never waits for the scheduler).
  if (!refusal.ok()) {
    others.push_back(
        {std::move(done), std::move(refusal), std::string(caller), cause, absl::ZeroDuration()});
  }
  Post(others);
}

size_t FairLimiter::Core::AheadLocked(absl::string_view caller, const CallerPolicy& policy,
                                      double* tag) const {
  size_t ahead = 0;
  auto own = queues_.find(caller);
  if (own != queues_.end()) {
    const CallerQueue& q = *own->second;
    *tag = q.waiters.back().tag + 1.0 / q.policy.weight;
    ahead += q.waiters.size();
  } else {
    *tag = virtual_time_ + 1.0 / policy.weight;
  }
  for (const auto& [name, queue] : queues_) {
    if (name == caller) continue;
    // Its waiting calls that come first: tags not after the new call's (equal tags: the earlier
    // arrival first).
    for (const Waiter& waiter : queue->waiters) {
      if (TagAfter(waiter.tag, *tag)) break;
      ++ahead;
    }
  }
  return ahead;
}

FairLimiter::Core::Estimate FairLimiter::Core::EstimateLocked(absl::string_view caller,
                                                              const CallerPolicy& policy,
                                                              absl::Time now) {
  Estimate estimate;
  estimate.ahead = AheadLocked(caller, policy, &estimate.tag);
  const absl::Time start = std::max(now, HeldUntilLocked());
  if (source_.Plan(now, static_cast<int64_t>(estimate.ahead) + 1, start, CeilingSpacingLocked(),
                   &plan_) &&
      !plan_.empty()) {
    estimate.exact = true;
    estimate.wait = std::max(absl::ZeroDuration(), plan_.back() - now);
    return estimate;
  }
  // A guess for a source that decides elsewhere (see the header).
  absl::Time next_free = std::max(start, source_retry_at_);
  if (!pacing_) {
    estimate.wait = next_free - now;  // Waiting only for the round trip.
    return estimate;
  }
  const absl::Duration interval = EstimateIntervalLocked();
  if (last_grant_ != absl::InfinitePast()) next_free = std::max(next_free, last_grant_ + interval);
  estimate.wait = (next_free - now) + interval * static_cast<int64_t>(estimate.ahead);
  return estimate;
}

std::vector<FairLimiter::Core::Ordered> FairLimiter::Core::ServiceOrderLocked() {
  std::vector<Ordered> order;
  order.reserve(queued_);
  for (const auto& [name, queue] : queues_) {
    for (auto it = queue->waiters.begin(); it != queue->waiters.end(); ++it) {
      order.push_back({it->tag, it->seq, {queue.get(), it}});
    }
  }
  std::sort(order.begin(), order.end(), [](const Ordered& a, const Ordered& b) {
    return ServedBefore(a.tag, a.seq, b.tag, b.seq);
  });
  return order;
}

std::optional<FairLimiter::Core::Location> FairLimiter::Core::SelectLocked(absl::Time now,
                                                                           Answers& answers) {
  while (true) {
    CallerQueue* best = nullptr;
    for (const auto& [name, queue] : queues_) {
      if (best == nullptr || ServedBefore(queue->waiters.front().tag, queue->waiters.front().seq,
                                          best->waiters.front().tag, best->waiters.front().seq)) {
        best = queue.get();
      }
    }
    if (best == nullptr) return std::nullopt;
    Location location{best, best->waiters.begin()};
    if (!deadline_reached(location.it->deadline, now)) return location;
    ++stats_.deadline_exceeded;
    CallStatus status = DeadlineWhileWaitingLocked(*location.it, now);
    if (location.it->timer != 0) scheduler_.Cancel(location.it->timer);
    std::string caller = best->name;  // RemoveLocked may erase the queue.
    answers.push_back({RemoveLocked(location, /*served=*/false), std::move(status),
                       std::move(caller), kCauseDeadlineReached, absl::ZeroDuration()});
  }
}

Done FairLimiter::Core::RemoveLocked(Location location, bool served) {
  CallerQueue* queue = location.queue;
  Done done = std::move(location.it->done);
  if (served) {
    // Virtual time moves to the served call's start tag.
    virtual_time_ = std::max(virtual_time_, location.it->tag - 1.0 / queue->policy.weight);
  }
  index_.erase(location.it->id);
  queue->waiters.erase(location.it);
  --queued_;
  if (queue->waiters.empty()) queues_.erase(queue->name);
  if (queued_ == 0) pacing_ = false;
  return done;
}

void FairLimiter::Core::AdmitWaiterLocked(Location location, absl::Time now, Answers& answers) {
  if (location.it->timer != 0) scheduler_.Cancel(location.it->timer);
  if (backlogged_at_last_grant_ && paused_until_ <= last_grant_) {
    // A gap of pure service: calls waited all along and no pause of ours intervened.
    const absl::Duration gap =
        std::min(now - last_grant_, IntervalLocked() * kMaxObservedIntervals);
    observed_interval_ =
        observed_interval_ == absl::ZeroDuration()
            ? gap
            : observed_interval_ * (1 - kObservedGapWeight) + gap * kObservedGapWeight;
  }
  last_grant_ = now;
  ceiling_.ForceTake(now);
  const absl::Duration waited = now - location.it->enqueued_at;
  stats_.total_wait += waited;
  if (waited < IntervalLocked()) {
    ++stats_.admitted_without_wait;
  } else {
    ++stats_.admitted_after_wait;
  }
  std::string caller = location.queue->name;
  answers.push_back({RemoveLocked(location, /*served=*/true), absl::OkStatus(), std::move(caller),
                     absl::string_view(), waited});
  backlogged_at_last_grant_ = queued_ > 0;
}

void FairLimiter::Core::RefuseWaiterLocked(Location location, absl::string_view cause,
                                           absl::Duration wait, absl::string_view why,
                                           Answers& answers) {
  if (location.it->timer != 0) scheduler_.Cancel(location.it->timer);
  std::string caller = location.queue->name;
  answers.push_back(
      {RemoveLocked(location, /*served=*/false),
       BudgetError(absl::StatusCode::kResourceExhausted, spec_, cause,
                   absl::StrCat("budget '", spec_.name,
                                "' can no longer admit the call before its deadline: ", why,
                                "; next permit for it in ", absl::FormatDuration(wait)),
                   wait, absl::StrCat(Describe(spec_), "; ", why)),
       std::move(caller), cause, absl::ZeroDuration()});
}

void FairLimiter::Core::DisplaceLocked(double tag, size_t ahead, absl::Time now, Answers& answers) {
  // Anyone behind the new call? (Usually not: one caller's calls queue in arrival order.)
  bool behind = false;
  for (const auto& [name, queue] : queues_) {
    if (TagAfter(queue->waiters.back().tag, tag)) behind = true;
  }
  if (!behind) return;
  const absl::Time start = std::max(now, HeldUntilLocked());
  if (!source_.Plan(now, static_cast<int64_t>(queued_), start, CeilingSpacingLocked(), &plan_) ||
      plan_.size() != queued_) {
    return;
  }
  size_t position = ahead + 1;  // The new call is at `ahead`.
  for (const Ordered& entry : ServiceOrderLocked()) {
    if (!TagAfter(entry.tag, tag)) continue;  // Served before the new call (or is it).
    const absl::Time deadline = entry.location.it->deadline;
    if (TooLate(plan_[position], deadline)) {
      ++stats_.displaced;
      RefuseWaiterLocked(entry.location, kCauseDisplaced, plan_[position] - now,
                         "a call that fair queueing serves first took its turn", answers);
      return;  // The calls behind it move back to where they were: still in time.
    }
    ++position;
  }
}

void FairLimiter::Core::RefuseHopelessLocked(absl::Time now, absl::string_view why,
                                             Answers& answers) {
  if (queued_ == 0) return;
  const absl::Time start = std::max(now, HeldUntilLocked());
  const bool exact =
      source_.Plan(now, static_cast<int64_t>(queued_), start, CeilingSpacingLocked(), &plan_) &&
      plan_.size() == queued_;
  const absl::Duration interval = EstimateIntervalLocked();
  const absl::Time first = std::max(start, source_retry_at_);
  size_t position = 0;  // Among the calls kept.
  for (const Ordered& entry : ServiceOrderLocked()) {
    const absl::Time deadline = entry.location.it->deadline;
    const absl::Time expected =
        exact ? plan_[position] : first + interval * static_cast<int64_t>(position);
    if (TooLate(expected, deadline)) {
      ++stats_.rejected_wait_exceeds_deadline;
      RefuseWaiterLocked(entry.location, kCauseWaitExceedsDeadline, expected - now, why, answers);
      if (exact) {
        // The calls behind it now come one permit earlier: replan.
        if (!source_.Plan(now, static_cast<int64_t>(queued_), start, CeilingSpacingLocked(),
                          &plan_)) {
          return;
        }
      }
      continue;
    }
    ++position;
  }
}

bool FairLimiter::Core::PushOutLocked(absl::string_view caller, size_t waiting, double weight,
                                      absl::Time now, Answers& answers) {
  CallerQueue* largest = nullptr;
  double largest_share = 0;
  for (const auto& [name, queue] : queues_) {
    const double share = static_cast<double>(queue->waiters.size()) / queue->policy.weight;
    if (largest == nullptr || share > largest_share) {
      largest = queue.get();
      largest_share = share;
    }
  }
  if (largest == nullptr || largest->name == caller ||
      static_cast<double>(waiting + 1) / weight >= largest_share) {
    return false;
  }
  Location location{largest, std::prev(largest->waiters.end())};
  if (location.it->timer != 0) scheduler_.Cancel(location.it->timer);
  const std::string victim = largest->name;
  ++stats_.pushed_out;
  Done done = RemoveLocked(location, /*served=*/false);
  // The victim's retry estimate: as if it asked again now.
  const absl::Duration wait = EstimateLocked(victim, options_.PolicyFor(victim), now).wait;
  answers.push_back(
      {std::move(done),
       BudgetError(absl::StatusCode::kResourceExhausted, spec_, kCausePushedOut,
                   absl::StrCat("budget '", spec_.name,
                                "' is exhausted: the queue is full and this caller holds the "
                                "largest share of it, so its newest waiting call was dropped "
                                "for another caller's; estimated wait ",
                                absl::FormatDuration(wait)),
                   wait,
                   absl::StrCat(Describe(spec_), "; the queue of ", options_.max_queue,
                                " waiting calls is full")),
       victim, kCausePushedOut, absl::ZeroDuration()});
  return true;
}

CallStatus FairLimiter::Core::DeadlineWhileWaitingLocked(const Waiter& waiter,
                                                         absl::Time now) const {
  return BudgetError(absl::StatusCode::kDeadlineExceeded, spec_, kCauseDeadlineReached,
                     absl::StrCat("deadline reached after waiting ",
                                  absl::FormatDuration(now - waiter.enqueued_at), " for budget '",
                                  spec_.name, "'"),
                     std::nullopt, "");
}

void FairLimiter::Core::SchedulePumpLocked(absl::Time when) {
  // Taking: OnTake() schedules the next round. Already scheduled: kept, unless `when` is
  // earlier (a call that joined an empty queue with credit the previous head did not have).
  if (shutdown_ || pump_state_ == PumpState::kTaking) return;
  if (pump_state_ == PumpState::kScheduled) {
    if (when >= pump_when_) return;
    scheduler_.Cancel(pump_timer_);  // If it is running already, its generation is stale.
  }
  pump_state_ = PumpState::kScheduled;
  pump_when_ = when;
  const uint64_t generation = ++pump_generation_;
  pump_timer_ = scheduler_.RunAt(when, [weak = weak_from_this(), generation] {
    if (auto self = weak.lock()) self->Pump(generation);
  });
}

std::optional<FairLimiter::Core::AsyncTake> FairLimiter::Core::ServeLocked(absl::Time now,
                                                                           Answers& answers) {
  while (true) {
    std::optional<Location> next = SelectLocked(now, answers);
    if (!next.has_value()) return std::nullopt;
    const absl::Time held = HeldUntilLocked();
    if (held > now) {
      pacing_ = true;
      SchedulePumpLocked(held);
      return std::nullopt;
    }
    const TakeKind kind = pacing_ ? TakeKind::kPaced : TakeKind::kImmediate;
    std::optional<TakeResult> result = source_.TryTakeNow(now, kind);
    if (!result.has_value()) {
      // Asynchronous: one Take() for the whole burst, or for the next paced call.
      const int64_t want = kind == TakeKind::kPaced
                               ? 1
                               : std::min<int64_t>(static_cast<int64_t>(queued_), kMaxBatch);
      pump_state_ = PumpState::kTaking;
      take_want_ = want;
      ++calls_in_source_;  // Shutdown() waits for it, so the source outlives the call.
      return AsyncTake{now, kind, want};
    }
    if (result->granted > 0) {
      AdmitWaiterLocked(*next, now, answers);
      continue;
    }
    pacing_ = true;
    source_retry_at_ = result->retry_at;
    SchedulePumpLocked(result->retry_at > now ? result->retry_at : now + kMinRetryDelay);
    return std::nullopt;
  }
}

void FairLimiter::Core::StartTake(const AsyncTake& take) {
  ++tl_take_depth;
  source_.Take(take.now, take.kind, take.want,
               [weak = weak_from_this()](absl::StatusOr<TakeResult> result) {
                 if (auto self = weak.lock()) self->OnTake(std::move(result));
               });
  --tl_take_depth;
  std::lock_guard<std::mutex> lock(mu_);
  if (--calls_in_source_ == 0) source_idle_.notify_all();
}

void FairLimiter::Core::Pump(uint64_t generation) {
  Answers answers;
  std::optional<AsyncTake> take;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pump_state_ != PumpState::kScheduled || generation != pump_generation_) return;
    pump_state_ = PumpState::kIdle;
    if (shutdown_) return;
    take = ServeLocked(scheduler_.Now(), answers);
  }
  if (take.has_value()) StartTake(*take);
  Finish(answers);
}

void FairLimiter::Core::OnTake(absl::StatusOr<TakeResult> result) {
  Answers answers;
  std::optional<AsyncTake> take;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_ || pump_state_ != PumpState::kTaking) return;
    pump_state_ = PumpState::kIdle;
    const absl::Time now = scheduler_.Now();
    const int64_t want = take_want_;
    if (!result.ok()) {
      // The calls this Take() was for could not be checked.
      for (int64_t i = 0; i < want; ++i) {
        std::optional<Location> next = SelectLocked(now, answers);
        if (!next.has_value()) break;
        ++stats_.source_errors;
        if (next->it->timer != 0) scheduler_.Cancel(next->it->timer);
        std::string caller = next->queue->name;
        answers.push_back(
            {RemoveLocked(*next, /*served=*/false),
             absl::UnavailableError(absl::StrCat(
                 "budget '", spec_.name, "' could not be checked: ", result.status().message())),
             std::move(caller), kCauseSourceError, absl::ZeroDuration()});
      }
      if (queued_ > 0) SchedulePumpLocked(now);
    } else {
      int64_t used = 0;
      for (; used < result->granted; ++used) {
        std::optional<Location> next = SelectLocked(now, answers);
        if (!next.has_value()) break;
        AdmitWaiterLocked(*next, now, answers);
      }
      stats_.wasted_permits += static_cast<uint64_t>(result->granted - used);
      if (result->granted < want) {
        // The budget refused: whoever still waits waits for the budget now.
        source_retry_at_ = result->retry_at;
        if (queued_ > 0) {
          pacing_ = true;
          RefuseHopelessLocked(now, "the shared budget is spent for now", answers);
        }
        if (queued_ > 0) {
          SchedulePumpLocked(result->retry_at > now ? result->retry_at : now + kMinRetryDelay);
        }
      } else if (queued_ > 0) {
        if (result->retry_at > now) {
          SchedulePumpLocked(result->retry_at);
        } else if (tl_take_depth > 0) {
          SchedulePumpLocked(now);  // Completed inline: no nested Take().
        } else {
          take = ServeLocked(now, answers);  // Chain the next Take() from here: no hop.
        }
      }
    }
  }
  if (take.has_value()) StartTake(*take);
  Finish(answers);
}

void FairLimiter::Core::Expire(uint64_t id) {
  Answers answers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_) return;
    auto it = index_.find(id);
    if (it == index_.end()) return;
    const Location location = it->second;
    ++stats_.deadline_exceeded;
    CallStatus status = DeadlineWhileWaitingLocked(*location.it, scheduler_.Now());
    std::string caller = location.queue->name;
    answers.push_back({RemoveLocked(location, /*served=*/false), std::move(status),
                       std::move(caller), kCauseDeadlineReached, absl::ZeroDuration()});
  }
  Finish(answers);
}

void FairLimiter::Core::OnUpstreamRateLimited(std::optional<absl::Duration> retry_after,
                                              absl::Time admitted_at) {
  absl::Time until;
  Answers refused;
  std::optional<absl::Duration> capped_from;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_) return;
    const absl::Time now = scheduler_.Now();
    ++stats_.upstream_rate_limited;
    if (retry_after.has_value()) {
      retry_after = std::max(*retry_after, absl::ZeroDuration());
      if (*retry_after > options_.max_upstream_pause) {
        ++stats_.upstream_pauses_capped;
        capped_from = *retry_after;
        retry_after = options_.max_upstream_pause;
      }
    }
    if (admitted_at <= last_decrease_at_) {
      // An echo: sent before the budget reacted to the first 429 of this congestion.
      if (retry_after.has_value()) paused_until_ = std::max(paused_until_, now + *retry_after);
    } else {
      ++stats_.rate_decreases;
      absl::Duration pause = backoff_;
      if (retry_after.has_value()) {
        pause = *retry_after;
      } else {
        backoff_ = std::min(backoff_ * 2, options_.max_backoff);
      }
      paused_until_ = std::max(paused_until_, now + pause);
      scale_ = std::max(options_.min_rate_fraction, scale_ * options_.decrease_factor);
      ceiling_.SetInterval(IntervalLocked());
      last_decrease_at_ = now;
    }
    // Waiting calls the pause pushes past their deadlines learn it now, not at their deadline.
    RefuseHopelessLocked(now, "Userpilot answered 429 and the budget pauses", refused);
    until = paused_until_;
    ++calls_in_source_;
  }
  source_.PauseUntil(until);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (--calls_in_source_ == 0) source_idle_.notify_all();
  }
  if (capped_from.has_value() && options_.logger != nullptr) {
    options_.logger->Warning("upstream pause capped",
                             {{"budget", spec_.name},
                              {"requested", absl::FormatDuration(*capped_from)},
                              {"cap", absl::FormatDuration(options_.max_upstream_pause)}});
  }
  Post(refused);
}

void FairLimiter::Core::OnUpstreamSuccess(absl::Time admitted_at) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shutdown_) return;
  ++stats_.upstream_successes;
  if (admitted_at <= last_decrease_at_) return;  // Evidence from before the last decrease.
  backoff_ = options_.initial_backoff;
  if (scale_ < 1.0) {
    const double current_limit = scale_ * static_cast<double>(spec_.limit);
    scale_ = std::min(1.0, scale_ + options_.recovery_per_window / current_limit);
    ceiling_.SetInterval(IntervalLocked());
  }
}

void FairLimiter::Core::Shutdown() {
  Answers answers;
  std::vector<Scheduler::TimerId> timers;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (!shutdown_) {
      shutdown_ = true;
      for (auto& [name, queue] : queues_) {
        for (Waiter& waiter : queue->waiters) {
          if (waiter.timer != 0) timers.push_back(waiter.timer);
          answers.push_back({std::move(waiter.done),
                             absl::UnavailableError("gateway shutting down"), queue->name,
                             kCauseShutdown, absl::ZeroDuration()});
        }
      }
      stats_.cancelled_by_shutdown += queued_;
      queues_.clear();
      index_.clear();
      queued_ = 0;
      pacing_ = false;
      if (pump_state_ == PumpState::kScheduled) timers.push_back(pump_timer_);
      pump_state_ = PumpState::kIdle;
    }
    source_idle_.wait(lock, [&] { return calls_in_source_ == 0; });
  }
  for (Scheduler::TimerId timer : timers) scheduler_.Cancel(timer);
  Finish(answers);
}

FairLimiterStats FairLimiter::Core::Stats() const {
  bool ask_source = false;
  FairLimiterStats stats = StatsLocked(&ask_source);
  // Asked without mu_ (nothing requires it, and a metrics scrape should not hold the budget).
  if (ask_source) {
    const std::optional<int64_t> available = source_.Available(scheduler_.Now());
    stats.tokens_available = available.has_value() ? static_cast<double>(*available) : -1;
  }
  return stats;
}

FairLimiterStats FairLimiter::Core::StatsLocked(bool* ask_source) const {
  std::lock_guard<std::mutex> lock(mu_);
  const absl::Time now = scheduler_.Now();
  FairLimiterStats stats = stats_;
  stats.budget = spec_.name;
  stats.configured_limit = spec_.limit;
  stats.window = spec_.window;
  stats.current_limit = scale_ * static_cast<double>(spec_.limit);
  stats.queued = queued_;
  stats.callers_waiting = queues_.size();
  stats.paused = paused_until_ > now;
  stats.paused_until = paused_until_;
  stats.backoff = backoff_;
  // Paused, or held back by the adaptive ceiling after 429s: nothing is grantable now. After
  // Shutdown() the source may be gone: unknown (-1).
  const bool held = stats.paused || (scale_ < 1.0 && ceiling_.NextAllowed() > now);
  stats.tokens_available = shutdown_ ? -1 : 0;
  *ask_source = !shutdown_ && !held;
  return stats;
}

// --- FairLimiter ---

namespace {

FairLimiterOptions CheckedOptions(FairLimiterOptions options) {
  if (absl::Status status = options.Validate(); !status.ok()) {
    std::fprintf(stderr, "FairLimiter: %s\n", status.ToString().c_str());
    std::abort();
  }
  return options;
}

}  // namespace

FairLimiter::FairLimiter(std::unique_ptr<TokenSource> source, Scheduler& scheduler,
                         FairLimiterOptions options)
    : source_(std::move(source)) {
  if (source_ == nullptr) {
    std::fprintf(stderr, "FairLimiter: null TokenSource\n");
    std::abort();
  }
  core_ = std::make_shared<Core>(*source_, scheduler, CheckedOptions(std::move(options)));
}

FairLimiter::~FairLimiter() {
  core_->Shutdown();
  // Timers and late Take() completions hold only weak references, and the core no longer
  // touches the source: both can go.
  core_.reset();
  source_.reset();
}

void FairLimiter::Acquire(absl::string_view caller, absl::Time deadline, Done done) {
  core_->Acquire(caller, deadline, std::move(done));
}

void FairLimiter::OnUpstreamRateLimited(std::optional<absl::Duration> retry_after,
                                        absl::Time admitted_at) {
  core_->OnUpstreamRateLimited(retry_after, admitted_at);
}

void FairLimiter::OnUpstreamSuccess(absl::Time admitted_at) {
  core_->OnUpstreamSuccess(admitted_at);
}

void FairLimiter::Shutdown() { core_->Shutdown(); }

FairLimiterStats FairLimiter::Stats() const { return core_->Stats(); }

const std::string& FairLimiter::name() const { return core_->name(); }

absl::Time FairLimiter::Now() const { return core_->Now(); }

absl::Duration FairLimiter::max_upstream_pause() const { return core_->max_upstream_pause(); }

}  // namespace userpilot::gateway
