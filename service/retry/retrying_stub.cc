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
  Shared(std::shared_ptr<UserpilotStub> inner_stub, Scheduler& timer, RetryOptions retry_options,
         std::unique_ptr<RetryPolicy> retry, std::unique_ptr<BackoffPolicy> backoff)
      : inner(std::move(inner_stub)),
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
template <typename Request, typename Response>
class RetryLoop : public std::enable_shared_from_this<RetryLoop<Request, Response>> {
 public:
  using Call = void (UserpilotStub::*)(const CallOptions&, const Request&, StubCallback<Response>);

  RetryLoop(std::shared_ptr<Shared> shared, UpstreamMethod method, Call call,
            const CallOptions& options, const Request& request, StubCallback<Response> done)
      : shared_(std::move(shared)),
        method_(method),
        call_(call),
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
    if (attempts_ > 0 && now >= options_.deadline) return Finish(StopReason::kDeadline);
    CircuitBreaker::Permit permit = shared_->breaker.TryAcquire(now);
    if (!permit.allowed) {
      if (attempts_ > 0) return Finish(StopReason::kCircuitOpen);
      // Still inside the caller's call: answer from the scheduler's thread.
      last_error_ = shared_->breaker.RefusedError(permit);
      return Schedule(absl::ZeroDuration(), &RetryLoop::FinishCircuitOpen);
    }
    if (attempts_ == 0) shared_->budget.RecordCall(now);
    permit_ = permit;
    ++attempts_;
    ++shared_->attempts;
    // Nothing of the loop may be touched after this call: the answer may already be running
    // on another thread.
    ((*shared_->inner).*call_)(options_, request_,
                               [self = this->shared_from_this()](absl::StatusOr<Response> result) {
                                 self->OnAttemptDone(std::move(result));
                               });
  }

  void OnAttemptDone(absl::StatusOr<Response> result) {
    const absl::Time now = shared_->scheduler.Now();
    shared_->breaker.Record(permit_, ClassifyHealth(result.status()), now);
    if (result.ok()) {
      if (attempts_ > 1) ++shared_->recovered;
      StubCallback<Response> done = std::move(done_);
      done_ = nullptr;
      std::move(done)(std::move(result));
      return;
    }
    last_error_ = std::move(result).status();
    const FailureClassification failure =
        ClassifyFailure(last_error_, shared_->options.idempotency(method_));
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

  void Finish(StopReason reason) {
    ++shared_->failed_by_stop_reason[static_cast<size_t>(reason)];
    if (options_.trace != nullptr) {
      options_.trace->retry_stopped_because = std::string(StopReasonName(reason));
    }
    StubCallback<Response> done = std::move(done_);
    done_ = nullptr;
    std::move(done)(AnnotateFinalError(last_error_, method_, attempts_, reason));
  }

  const std::shared_ptr<Shared> shared_;
  const UpstreamMethod method_;
  const Call call_;
  const CallOptions options_;
  const Request request_;
  StubCallback<Response> done_;  // Empty once the caller has its answer.
  const std::unique_ptr<RetryPolicy> retry_;
  const std::unique_ptr<BackoffPolicy> backoff_;
  int attempts_ = 0;
  absl::Status last_error_;
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
                           std::unique_ptr<BackoffPolicy> backoff_policy) {
  ValidOrDie(options);
  if (inner == nullptr || retry_policy == nullptr || backoff_policy == nullptr) {
    std::fprintf(stderr, "RetryingStub: null wrapped stub or policy\n");
    std::abort();
  }
  shared_ = std::make_shared<Shared>(std::move(inner), scheduler, std::move(options),
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

template <typename Request, typename Response>
void RetryingStub::Start(UpstreamMethod method,
                         void (UserpilotStub::*call)(const CallOptions&, const Request&,
                                                     StubCallback<Response>),
                         const CallOptions& options, const Request& request,
                         StubCallback<Response> done) {
  std::make_shared<RetryLoop<Request, Response>>(shared_, method, call, options, request,
                                                 std::move(done))
      ->Start();
}

void RetryingStub::IdentifyUser(const CallOptions& options, const v1::IdentifyUserRequest& request,
                                StubCallback<v1::IdentifyUserResponse> done) {
  Start(UpstreamMethod::kIdentifyUser, &UserpilotStub::IdentifyUser, options, request,
        std::move(done));
}

void RetryingStub::IdentifyCompany(const CallOptions& options,
                                   const v1::IdentifyCompanyRequest& request,
                                   StubCallback<v1::IdentifyCompanyResponse> done) {
  Start(UpstreamMethod::kIdentifyCompany, &UserpilotStub::IdentifyCompany, options, request,
        std::move(done));
}

void RetryingStub::BulkIdentifyUsers(const CallOptions& options,
                                     const v1::BulkIdentifyUsersRequest& request,
                                     StubCallback<v1::Job> done) {
  Start(UpstreamMethod::kBulkIdentifyUsers, &UserpilotStub::BulkIdentifyUsers, options, request,
        std::move(done));
}

void RetryingStub::BulkIdentifyCompanies(const CallOptions& options,
                                         const v1::BulkIdentifyCompaniesRequest& request,
                                         StubCallback<v1::Job> done) {
  Start(UpstreamMethod::kBulkIdentifyCompanies, &UserpilotStub::BulkIdentifyCompanies, options,
        request, std::move(done));
}

void RetryingStub::TrackEvent(const CallOptions& options, const v1::TrackEventRequest& request,
                              StubCallback<v1::TrackEventResponse> done) {
  Start(UpstreamMethod::kTrackEvent, &UserpilotStub::TrackEvent, options, request, std::move(done));
}

void RetryingStub::ListJobs(const CallOptions& options, const v1::ListJobsRequest& request,
                            StubCallback<v1::ListJobsResponse> done) {
  Start(UpstreamMethod::kListJobs, &UserpilotStub::ListJobs, options, request, std::move(done));
}

void RetryingStub::GetJob(const CallOptions& options, const v1::GetJobRequest& request,
                          StubCallback<v1::Job> done) {
  Start(UpstreamMethod::kGetJob, &UserpilotStub::GetJob, options, request, std::move(done));
}

void RetryingStub::DeleteUsers(const CallOptions& options, const v1::DeleteUsersRequest& request,
                               StubCallback<v1::DeleteUsersResponse> done) {
  Start(UpstreamMethod::kDeleteUsers, &UserpilotStub::DeleteUsers, options, request,
        std::move(done));
}

void RetryingStub::DeleteCompanies(const CallOptions& options,
                                   const v1::DeleteCompaniesRequest& request,
                                   StubCallback<v1::DeleteCompaniesResponse> done) {
  Start(UpstreamMethod::kDeleteCompanies, &UserpilotStub::DeleteCompanies, options, request,
        std::move(done));
}

void RetryingStub::ImportFile(const CallOptions& options, const ImportFileRequest& request,
                              StubCallback<v1::Job> done) {
  Start(UpstreamMethod::kImportFile, &UserpilotStub::ImportFile, options, request, std::move(done));
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

}  // namespace userpilot::gateway
