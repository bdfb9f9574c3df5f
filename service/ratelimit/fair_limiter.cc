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
  for (Answer& answer : answers) std::move(answer.done)(std::move(answer.status));
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

  // Reports `answers` to the observer, then runs them. Never with mu_ held.
  void Finish(Answers& answers) {
    Report(options_.observer, spec_.name, answers);
    Deliver(answers);
  }

  void Acquire(absl::string_view caller, absl::Time deadline, Done done);
  void OnUpstreamRateLimited(std::optional<absl::Duration> retry_after, absl::Time admitted_at);
  void OnUpstreamSuccess(absl::Time admitted_at);
  void Shutdown();
  FairLimiterStats Stats() const;

 private:
  // Stats() under mu_; `*ask_source`: whether tokens_available is the source's to tell (not
  // paused, not held back by the ceiling, not shut down).
  FairLimiterStats StatsLocked(bool* ask_source) const;
  struct Waiter {
    uint64_t id = 0;
    uint64_t seq = 0;  // Arrival order, to break ties between equal tags.
    Done done;
    absl::Time deadline;
    absl::Time enqueued_at;
    Scheduler::TimerId timer = 0;
  };
  // One caller's waiting calls, oldest first. The i-th has the finish tag head_tag + i / weight.
  struct CallerQueue {
    std::string name;
    CallerPolicy policy;
    double head_tag = 0;
    std::list<Waiter> waiters;
  };
  struct Location {
    CallerQueue* queue;
    std::list<Waiter>::iterator it;
  };
  enum class PumpState { kIdle, kScheduled, kTaking };

  // --- Everything below runs with mu_ held. ---
  absl::Duration IntervalLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return base_interval_ / scale_;
  }
  // The spacing the estimate assumes: the adaptive interval, or the spacing this limiter's
  // grants actually had while calls waited if that is longer (a shared budget's other users).
  absl::Duration EstimateIntervalLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::max(IntervalLocked(), observed_interval_);
  }
  // The estimated wait of a call `caller` would add now (see the header).
  absl::Duration EstimateWaitLocked(absl::string_view caller, const CallerPolicy& policy,
                                    absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool ExpiredLocked(const Waiter& waiter, absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return deadline_reached(waiter.deadline, now);
  }
  bool deadline_reached(absl::Time deadline, absl::Time now) const {
    return deadline != absl::InfiniteFuture() && now >= deadline - options_.admission_headroom;
  }
  // The waiting call to serve next, answering DEADLINE_EXCEEDED to expired ones on the way.
  std::optional<Location> SelectLocked(absl::Time now, Answers& answers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes a waiting call (served: it was its queue's head and got a permit).
  Done RemoveLocked(Location location, bool served) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SchedulePumpLocked(absl::Time when) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  CallStatus DeadlineWhileWaitingLocked(const Waiter& waiter, absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Pushes out the newest call of the caller with the largest share, if `caller` (with
  // `waiting` calls and `weight`) would have a smaller one. True when it made room.
  bool PushOutLocked(absl::string_view caller, size_t waiting, double weight, absl::Time now,
                     Answers& answers) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // --- Callbacks. ---
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
  int calls_in_source_ ABSL_GUARDED_BY(mu_) = 0;  // Threads inside a TokenSource method.

  // Waiting calls.
  absl::flat_hash_map<std::string, std::unique_ptr<CallerQueue>> queues_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint64_t, Location> index_ ABSL_GUARDED_BY(mu_);
  size_t queued_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  double virtual_time_ ABSL_GUARDED_BY(mu_) = 0;

  // The pump.
  PumpState pump_state_ ABSL_GUARDED_BY(mu_) = PumpState::kIdle;
  Scheduler::TimerId pump_timer_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t pump_generation_ ABSL_GUARDED_BY(mu_) = 0;

  // What is known of the budget's next free permit (for estimates).
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
  Answers pushed_out;       // At most one.
  {
    std::lock_guard<std::mutex> lock(mu_);
    const absl::Time now = scheduler_.Now();
    const CallerPolicy& policy = options_.PolicyFor(caller);
    auto queue_it = queues_.find(caller);
    const size_t waiting = queue_it == queues_.end() ? 0 : queue_it->second->waiters.size();
    const absl::Duration wait = EstimateWaitLocked(caller, policy, now);
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
    } else if (policy.max_queued > 0 && waiting >= policy.max_queued) {
      ++stats_.rejected_caller_cap;
      cause = kCauseCallerQueueFull;
      refusal = BudgetError(
          absl::StatusCode::kResourceExhausted, spec_, kCauseCallerQueueFull,
          absl::StrCat("budget '", spec_.name, "' is exhausted: this caller already has ", waiting,
                       " calls waiting, its cap; estimated wait ", absl::FormatDuration(wait)),
          wait,
          absl::StrCat(Describe(spec_), "; the caller's cap of ", policy.max_queued,
                       " waiting calls is reached"));
    } else if (deadline != absl::InfiniteFuture() &&
               now + wait >= deadline - options_.admission_headroom) {
      ++stats_.rejected_wait_exceeds_deadline;
      cause = kCauseWaitExceedsDeadline;
      refusal =
          BudgetError(absl::StatusCode::kResourceExhausted, spec_, kCauseWaitExceedsDeadline,
                      absl::StrCat("budget '", spec_.name,
                                   "' cannot admit the call before its deadline: estimated wait ",
                                   absl::FormatDuration(wait), ", ",
                                   absl::FormatDuration(deadline - now), " left"),
                      wait,
                      absl::StrCat(Describe(spec_), "; ", queued_,
                                   " calls waiting, estimated wait exceeds the call's deadline"));
    } else if (queued_ >= options_.max_queue &&
               !PushOutLocked(caller, waiting, policy.weight, now, pushed_out)) {
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
      // Enqueue.
      CallerQueue* queue;
      queue_it = queues_.find(caller);  // PushOutLocked may have erased queues.
      if (queue_it == queues_.end()) {
        auto fresh = std::make_unique<CallerQueue>();
        fresh->name = std::string(caller);
        fresh->policy = policy;
        fresh->head_tag = virtual_time_ + 1.0 / policy.weight;
        queue = fresh.get();
        queues_.emplace(fresh->name, std::move(fresh));
      } else {
        queue = queue_it->second.get();
      }
      const uint64_t id = next_id_++;
      Waiter& waiter = queue->waiters.emplace_back();
      waiter.id = id;
      waiter.seq = id;
      waiter.done = std::move(done);
      waiter.deadline = deadline;
      waiter.enqueued_at = now;
      if (deadline != absl::InfiniteFuture()) {
        waiter.timer =
            scheduler_.RunAt(deadline - options_.admission_headroom, [weak = weak_from_this(), id] {
              if (auto self = weak.lock()) self->Expire(id);
            });
      }
      index_.emplace(id, Location{queue, std::prev(queue->waiters.end())});
      ++queued_;
      SchedulePumpLocked(now);
    }
  }
  // Never inside Acquire(): the refusal, and a call pushed out for this one, are posted (and
  // reported at once, so the observer never waits for the scheduler).
  if (!refusal.ok()) {
    pushed_out.push_back(
        {std::move(done), std::move(refusal), std::string(caller), cause, absl::ZeroDuration()});
  }
  Report(options_.observer, spec_.name, pushed_out);
  if (!pushed_out.empty()) {
    scheduler_.RunAt(scheduler_.Now(),
                     [answers = std::move(pushed_out)]() mutable { Deliver(answers); });
  }
}

absl::Duration FairLimiter::Core::EstimateWaitLocked(absl::string_view caller,
                                                     const CallerPolicy& policy,
                                                     absl::Time now) const {
  const absl::Duration interval = EstimateIntervalLocked();
  absl::Time next_free = std::max({now, paused_until_, source_retry_at_});
  if (last_grant_ != absl::InfinitePast()) next_free = std::max(next_free, last_grant_ + interval);
  if (scale_ < 1.0) next_free = std::max(next_free, ceiling_.NextAllowed());

  // The new call's finish tag, then how many waiting calls are served no later.
  double tag;
  size_t ahead = 0;
  auto own = queues_.find(caller);
  if (own != queues_.end()) {
    const CallerQueue& q = *own->second;
    tag = q.head_tag + static_cast<double>(q.waiters.size()) / q.policy.weight;
    ahead += q.waiters.size();
  } else {
    tag = virtual_time_ + 1.0 / policy.weight;
  }
  for (const auto& [name, queue] : queues_) {
    if (name == caller || tag < queue->head_tag) continue;
    // Waiting calls i with head_tag + i / weight <= tag (with slack for rounding).
    const double fits = (tag - queue->head_tag) * queue->policy.weight + 1e-9;
    ahead += std::min(queue->waiters.size(), static_cast<size_t>(fits) + 1);
  }
  return (next_free - now) + interval * static_cast<int64_t>(ahead);
}

std::optional<FairLimiter::Core::Location> FairLimiter::Core::SelectLocked(absl::Time now,
                                                                           Answers& answers) {
  while (true) {
    CallerQueue* best = nullptr;
    for (const auto& [name, queue] : queues_) {
      if (best == nullptr || queue->head_tag < best->head_tag ||
          (queue->head_tag == best->head_tag &&
           queue->waiters.front().seq < best->waiters.front().seq)) {
        best = queue.get();
      }
    }
    if (best == nullptr) return std::nullopt;
    Location location{best, best->waiters.begin()};
    if (!ExpiredLocked(*location.it, now)) return location;
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
    // Virtual time moves to the served call's start tag; the caller's next call inherits the
    // following tag. A call removed unserved leaves its tag to the calls behind it.
    const double step = 1.0 / queue->policy.weight;
    virtual_time_ = std::max(virtual_time_, queue->head_tag - step);
    queue->head_tag += step;
  }
  index_.erase(location.it->id);
  queue->waiters.erase(location.it);
  --queued_;
  if (queue->waiters.empty()) queues_.erase(queue->name);
  return done;
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
  const absl::Duration wait = EstimateWaitLocked(victim, options_.PolicyFor(victim), now);
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
  // Already scheduled: for the time the source, a pause or the ceiling named, which an arrival
  // does not bring forward. Taking: OnTake() schedules the next round.
  if (shutdown_ || pump_state_ != PumpState::kIdle) return;
  pump_state_ = PumpState::kScheduled;
  const uint64_t generation = ++pump_generation_;
  pump_timer_ = scheduler_.RunAt(when, [weak = weak_from_this(), generation] {
    if (auto self = weak.lock()) self->Pump(generation);
  });
}

void FairLimiter::Core::Pump(uint64_t generation) {
  Answers answers;
  absl::Time now;
  bool take = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pump_state_ != PumpState::kScheduled || generation != pump_generation_) return;
    pump_state_ = PumpState::kIdle;
    if (shutdown_) return;
    now = scheduler_.Now();
    if (SelectLocked(now, answers).has_value()) {
      absl::Time ready = paused_until_;
      if (scale_ < 1.0) ready = std::max(ready, ceiling_.NextAllowed());
      if (ready > now) {
        SchedulePumpLocked(ready);
      } else {
        pump_state_ = PumpState::kTaking;
        ++calls_in_source_;  // Shutdown() waits for it, so the source outlives the call.
        take = true;
      }
    }
  }
  if (take) {
    source_.Take(now, [weak = weak_from_this()](absl::StatusOr<TakeResult> result) {
      if (auto self = weak.lock()) self->OnTake(std::move(result));
    });
    std::lock_guard<std::mutex> lock(mu_);
    if (--calls_in_source_ == 0) source_idle_.notify_all();
  }
  Finish(answers);
}

void FairLimiter::Core::OnTake(absl::StatusOr<TakeResult> result) {
  Answers answers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_ || pump_state_ != PumpState::kTaking) return;
    pump_state_ = PumpState::kIdle;
    const absl::Time now = scheduler_.Now();
    if (!result.ok()) {
      std::optional<Location> next = SelectLocked(now, answers);
      if (next.has_value()) {
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
    } else if (result->granted) {
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
      std::optional<Location> next = SelectLocked(now, answers);
      if (next.has_value()) {
        if (next->it->timer != 0) scheduler_.Cancel(next->it->timer);
        const absl::Duration waited = now - next->it->enqueued_at;
        stats_.total_wait += waited;
        if (waited < IntervalLocked()) {
          ++stats_.admitted_without_wait;
        } else {
          ++stats_.admitted_after_wait;
        }
        std::string caller = next->queue->name;
        answers.push_back({RemoveLocked(*next, /*served=*/true), absl::OkStatus(),
                           std::move(caller), absl::string_view(), waited});
      } else {
        ++stats_.wasted_permits;
      }
      backlogged_at_last_grant_ = queued_ > 0;
      if (queued_ > 0) SchedulePumpLocked(now);
    } else {
      source_retry_at_ = result->retry_at;
      SchedulePumpLocked(result->retry_at > now ? result->retry_at : now + kMinRetryDelay);
    }
  }
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_) return;
    const absl::Time now = scheduler_.Now();
    ++stats_.upstream_rate_limited;
    if (retry_after.has_value()) retry_after = std::max(*retry_after, absl::ZeroDuration());
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
    until = paused_until_;
    ++calls_in_source_;
  }
  source_.PauseUntil(until);
  std::lock_guard<std::mutex> lock(mu_);
  if (--calls_in_source_ == 0) source_idle_.notify_all();
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
  // Asked without mu_: a source may complete a Take() (which locks mu_) under its own lock.
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

}  // namespace userpilot::gateway
