#include "service/retry/retrying_stub.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace userpilot::gateway {

struct RetryingStub::Shared {
  Shared(const std::shared_ptr<UserpilotStub>& inner_stub, Scheduler& timer,
         RetryOptions retry_options, std::unique_ptr<RetryPolicy> retry,
         std::unique_ptr<BackoffPolicy> backoff)
      : inner(inner_stub),
        scheduler(timer),
        options(std::move(retry_options)),
        retry_prototype(std::move(retry)),
        backoff_prototype(std::move(backoff)),
        budget(options.budget),
        breaker(options.circuit_breaker, options.upstream_host) {}

  const std::shared_ptr<UserpilotStub> inner;
  Scheduler& scheduler;
  const RetryOptions options;
  // Prototypes: only Clone() (const) is called on them, from any thread.
  const std::unique_ptr<RetryPolicy> retry_prototype;
  const std::unique_ptr<BackoffPolicy> backoff_prototype;
  RetryBudget budget;
  CircuitBreaker breaker;

  std::atomic<int64_t> calls{0};
  std::atomic<int64_t> attempts{0};
  std::atomic<int64_t> recovered{0};
  std::array<std::atomic<int64_t>, kRetryCauseCount> retries_by_cause{};
  std::array<std::atomic<int64_t>, kStopReasonCount> failed_by_stop_reason{};

  // Timers set for calls waiting to retry, so that the destructor can cancel them.
  std::mutex mu;
  std::set<Scheduler::TimerId> timers;  // guarded by mu
  bool shut_down = false;               // guarded by mu
};

namespace {

using Shared = RetryingStub::Shared;

// One call: its copies of the request and options, its policies, and its progress. Steps run
// one after another (attempt, its completion, the timer, the next attempt), each on whichever
// thread delivers it, so the loop needs no lock of its own; the wrapped stub and the scheduler
// order the hand-offs.
template <typename Rpc>
class RetryLoop : public std::enable_shared_from_this<RetryLoop<Rpc>> {
 public:
  using Request = typename Rpc::Request;
  using Response = typename Rpc::Response;

  RetryLoop(std::shared_ptr<Shared> shared, const CallOptions& options, const Request& request,
            StubCallback<Response> done)
      : shared_(std::move(shared)),
        options_(options),
        request_(request),
        done_(std::move(done)),
        retry_(shared_->retry_prototype->Clone()),
        backoff_(shared_->backoff_prototype->Clone()) {}

  // A loop is destroyed without having finished only when the call was abandoned: its retry
  // timer was cancelled (RetryingStub destroyed) or dropped (scheduler destroyed), or the
  // wrapped stub dropped its callback. The caller still gets its one answer.
  ~RetryLoop() {
    if (!done_) return;
    if (last_error_.ok()) last_error_ = absl::CancelledError("the upstream call was abandoned");
    Finish(StopReason::kShutdown);
  }

  void Start() {
    ++shared_->calls;
    retry_->OnCallStart(shared_->scheduler.Now());
    Attempt();
  }

 private:
  void Attempt() {
    const absl::Time now = shared_->scheduler.Now();
    if (attempts_ > 0) {
      if (now >= options_.deadline) return Finish(StopReason::kDeadline);
      // A retry belongs to a call the breaker already admitted; it stops only while open.
      if (!shared_->breaker.AllowsRetry(now)) return Finish(StopReason::kCircuitOpen);
    } else {
      // The breaker judges calls, not attempts: one permit per call, recorded in Finish().
      CircuitBreaker::Permit permit = shared_->breaker.TryAcquire(now);
      if (!permit.allowed) {
        // Still inside the caller's call: answer from the scheduler's thread.
        last_error_ = shared_->breaker.RefusedError(permit);
        return Schedule(absl::ZeroDuration(), &RetryLoop::FinishCircuitOpen);
      }
      shared_->budget.RecordCall(now);
      permit_ = permit;
    }
    ++attempts_;
    ++shared_->attempts;
    // Nothing of the loop may be touched after this call: the answer may already be running
    // on another thread.
    InvokeRpc<Rpc>(*shared_->inner, options_, request_,
                   [self = this->shared_from_this()](Result<Response> result) {
                     self->OnAttemptDone(std::move(result));
                   });
  }

  void OnAttemptDone(Result<Response> result) {
    const absl::Time now = shared_->scheduler.Now();
    // What the whole call spent so far, on every attempt's facts.
    http_attempts_ += result.facts().http_attempts;
    budget_wait_ += result.facts().budget_wait;
    result.facts().http_attempts = http_attempts_;
    result.facts().budget_wait = budget_wait_;
    if (result.ok()) {
      shared_->breaker.Record(permit_, UpstreamHealth::kHealthy, now);
      if (attempts_ > 1) ++shared_->recovered;
      StubCallback<Response> done = std::move(done_);
      done_ = nullptr;
      std::move(done)(std::move(result));
      return;
    }
    last_error_ = std::move(result).error();
    const FailureClassification failure =
        ClassifyFailure(last_error_, shared_->options.idempotency(Rpc::kId));
    if (failure.kind == FailureClassification::kNonRetryable) {
      return Finish(StopReason::kNonRetryable);
    }
    if (failure.kind == FailureClassification::kMayHaveReachedUpstream) {
      return Finish(StopReason::kNotIdempotent);
    }
    if (!retry_->OnFailure(now)) return Finish(StopReason::kRetryPolicyExhausted);
    absl::Duration delay = backoff_->OnCompletion();
    if (auto requested = RequestedRetryDelay(last_error_)) delay = std::max(delay, *requested);
    if (now + delay >= options_.deadline) return Finish(StopReason::kDeadline);
    if (!shared_->budget.TryAcquireRetry(now)) return Finish(StopReason::kRetryBudgetExhausted);
    ++shared_->retries_by_cause[static_cast<size_t>(failure.cause)];
    Schedule(delay, &RetryLoop::Attempt);
  }

  void FinishCircuitOpen() { Finish(StopReason::kCircuitOpen); }

  // Runs `step` after `delay` on the scheduler, or ends the call when shutting down.
  void Schedule(absl::Duration delay, void (RetryLoop::*step)()) {
    std::unique_lock<std::mutex> lock(shared_->mu);
    if (shared_->shut_down) {
      lock.unlock();
      return Finish(StopReason::kShutdown);
    }
    // The timer may fire on the scheduler's thread before RunAfter returns; its first act is
    // to take `mu`, so it sees timer_id_ and the registration below.
    timer_id_ = shared_->scheduler.RunAfter(delay, [self = this->shared_from_this(), step] {
      {
        std::lock_guard<std::mutex> timer_lock(self->shared_->mu);
        self->shared_->timers.erase(self->timer_id_);
      }
      ((*self).*step)();
    });
    shared_->timers.insert(timer_id_);
  }

  // Ends the call with last_error_; the breaker learns the call's one outcome (a refused
  // permit, a gateway refusal or the caller's own deadline teach it nothing).
  void Finish(StopReason reason) {
    shared_->breaker.Record(permit_, ClassifyHealth(last_error_), shared_->scheduler.Now());
    ++shared_->failed_by_stop_reason[static_cast<size_t>(reason)];
    StubCallback<Response> done = std::move(done_);
    done_ = nullptr;
    std::move(done)(AnnotateFinalError(last_error_, Rpc::kName, attempts_, reason));
  }

  const std::shared_ptr<Shared> shared_;
  const CallOptions options_;
  const Request request_;
  StubCallback<Response> done_;  // Empty once the caller has its answer.
  const std::unique_ptr<RetryPolicy> retry_;
  const std::unique_ptr<BackoffPolicy> backoff_;
  int attempts_ = 0;
  int http_attempts_ = 0;       // Summed over the attempts' facts.
  absl::Duration budget_wait_;  // Summed over the attempts' facts.
  CallStatus last_error_;
  CircuitBreaker::Permit permit_;
  Scheduler::TimerId timer_id_ = 0;  // guarded by shared_->mu
};

}  // namespace

absl::Status RetryOptions::Validate() const {
  if (max_attempts < 1 || max_attempts > 100) {
    return absl::InvalidArgumentError(
        absl::StrCat("retry max attempts must be in [1, 100], not ", max_attempts));
  }
  if (max_retry_duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("retry max duration must be positive, not ",
                                                   absl::FormatDuration(max_retry_duration)));
  }
  if (absl::Status s =
          ExponentialBackoffPolicy::Validate(initial_backoff, max_backoff, backoff_multiplier);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = budget.Validate(); !s.ok()) return s;
  if (absl::Status s = circuit_breaker.Validate(); !s.ok()) return s;
  if (upstream_host.empty()) return absl::InvalidArgumentError("retry upstream host is empty");
  if (idempotency == nullptr) return absl::InvalidArgumentError("retry idempotency policy is null");
  return absl::OkStatus();
}

std::unique_ptr<RetryPolicy> MakeRetryPolicy(const RetryOptions& options) {
  auto attempts = std::make_unique<LimitedAttemptsRetryPolicy>(options.max_attempts);
  if (options.max_retry_duration == absl::InfiniteDuration()) return attempts;
  std::vector<std::unique_ptr<RetryPolicy>> both;
  both.push_back(std::move(attempts));
  both.push_back(std::make_unique<LimitedTimeRetryPolicy>(options.max_retry_duration));
  return std::make_unique<AllOfRetryPolicy>(std::move(both));
}

std::unique_ptr<BackoffPolicy> MakeBackoffPolicy(const RetryOptions& options) {
  return std::make_unique<ExponentialBackoffPolicy>(
      options.initial_backoff, options.max_backoff, options.backoff_multiplier,
      options.jitter != nullptr ? options.jitter : MakeRandomJitterSource());
}

namespace {

const RetryOptions& ValidOrDie(const RetryOptions& options) {
  if (absl::Status status = options.Validate(); !status.ok()) {
    std::fprintf(stderr, "RetryingStub: %s\n", status.ToString().c_str());
    std::abort();
  }
  return options;
}

}  // namespace

RetryingStub::RetryingStub(std::shared_ptr<UserpilotStub> inner, Scheduler& scheduler,
                           RetryOptions options)
    : RetryingStub(std::move(inner), scheduler, options, MakeRetryPolicy(ValidOrDie(options)),
                   MakeBackoffPolicy(options)) {}

RetryingStub::RetryingStub(std::shared_ptr<UserpilotStub> inner, Scheduler& scheduler,
                           RetryOptions options, std::unique_ptr<RetryPolicy> retry_policy,
                           std::unique_ptr<BackoffPolicy> backoff_policy)
    : ForwardingStub(std::move(inner)) {
  ValidOrDie(options);
  if (retry_policy == nullptr || backoff_policy == nullptr) {
    std::fprintf(stderr, "RetryingStub: null policy\n");
    std::abort();
  }
  shared_ = std::make_shared<Shared>(this->inner(), scheduler, std::move(options),
                                     std::move(retry_policy), std::move(backoff_policy));
}

RetryingStub::~RetryingStub() {
  std::set<Scheduler::TimerId> timers;
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->shut_down = true;
    timers.swap(shared_->timers);
  }
  // Outside the lock: a cancelled timer's loop answers its caller as it is destroyed.
  for (Scheduler::TimerId id : timers) shared_->scheduler.Cancel(id);
}

template <typename Rpc>
void RetryingStub::Call(const CallOptions& options, const typename Rpc::Request& request,
                        StubCallback<typename Rpc::Response> done) {
  std::make_shared<RetryLoop<Rpc>>(shared_, options, request, std::move(done))->Start();
}

RetryStats RetryingStub::stats() const {
  RetryStats stats;
  stats.calls = shared_->calls.load();
  stats.attempts = shared_->attempts.load();
  stats.recovered = shared_->recovered.load();
  for (size_t i = 0; i < kRetryCauseCount; ++i) {
    stats.retries_by_cause[i] = shared_->retries_by_cause[i].load();
  }
  for (size_t i = 0; i < kStopReasonCount; ++i) {
    stats.failed_by_stop_reason[i] = shared_->failed_by_stop_reason[i].load();
  }
  stats.circuit = shared_->breaker.GetSnapshot(shared_->scheduler.Now());
  return stats;
}

const CircuitBreaker& RetryingStub::circuit_breaker() const { return shared_->breaker; }

// Every method of the interface, each calling its row's Call (declared extern in the header).
template class RpcDispatcher<RetryingStub>;

}  // namespace userpilot::gateway
