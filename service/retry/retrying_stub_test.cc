#include "service/retry/retrying_stub.h"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/mocks/fake_scheduler.h"
#include "tests/mocks/mock_userpilot_stub.h"
#include "tests/util/retry_test_util.h"

namespace userpilot::gateway {
namespace {

using namespace retry_testing;  // NOLINT(build/namespaces): test helpers.
using ::testing::_;
using ::testing::StrictMock;

// Jitter that always picks the middle of the interval, so delays are exact: 50 ms, 100 ms,
// 200 ms, ... for the default 100 ms initial backoff.
class HalfJitter final : public JitterSource {
 public:
  double Uniform() override { return 0.5; }
};

std::string Describe(const google::protobuf::Message& request) {
  return request.ShortDebugString();
}
std::string Describe(const ImportFileRequest& request) { return "filename: " + request.filename; }

// The answers the mocked upstream gives, in order, and when each attempt arrived. Answers are
// delivered from the FakeScheduler (never inside the call), as the stub contract requires.
class Upstream {
 public:
  explicit Upstream(FakeScheduler& scheduler) : scheduler_(scheduler) {}

  // Queues answers; when they run out, every further attempt gets `otherwise`.
  void Script(std::vector<CallStatus> answers, CallStatus otherwise = absl::OkStatus()) {
    std::lock_guard<std::mutex> lock(mu_);
    script_.assign(answers.begin(), answers.end());
    otherwise_ = std::move(otherwise);
  }

  // An action for EXPECT_CALL(...).WillRepeatedly(...) on a method answering `Response`.
  template <typename Response>
  auto Answer() {
    return [this](const CallOptions& options, const auto& request, StubCallback<Response> done) {
      CallStatus status;
      {
        std::lock_guard<std::mutex> lock(mu_);
        attempt_times_.push_back(scheduler_.Now());
        deadlines_.push_back(options.deadline);
        requests_.push_back(Describe(request));
        if (!script_.empty()) {
          status = script_.front();
          script_.pop_front();
        } else {
          status = otherwise_;
        }
      }
      scheduler_.RunAt(scheduler_.Now(), [status, done = std::move(done)]() mutable {
        if (status.ok()) {
          std::move(done)(Response());
        } else {
          std::move(done)(status);
        }
      });
    };
  }

  // Attempts as offsets from `start`.
  std::vector<absl::Duration> AttemptOffsets(absl::Time start) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<absl::Duration> offsets;
    for (absl::Time t : attempt_times_) offsets.push_back(t - start);
    return offsets;
  }
  size_t attempts() {
    std::lock_guard<std::mutex> lock(mu_);
    return attempt_times_.size();
  }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  std::vector<absl::Time> deadlines() {
    std::lock_guard<std::mutex> lock(mu_);
    return deadlines_;
  }

 private:
  FakeScheduler& scheduler_;
  std::mutex mu_;
  std::deque<CallStatus> script_;
  CallStatus otherwise_;
  std::vector<absl::Time> attempt_times_;
  std::vector<absl::Time> deadlines_;
  std::vector<std::string> requests_;
};

// Where a call's single answer lands.
struct Outcome {
  int answers = 0;
  CallStatus status;
};

template <typename Response>
StubCallback<Response> Capture(Outcome& outcome) {
  return [&outcome](Result<Response> result) {
    ++outcome.answers;
    outcome.status = std::move(result).error();
  };
}

class RetryingStubTest : public ::testing::Test {
 protected:
  RetryingStubTest() {
    options_.jitter = std::make_shared<HalfJitter>();
    options_.upstream_host = "api.userpilot.test";
  }

  RetryingStub& stub() {
    if (stub_ == nullptr) stub_ = std::make_unique<RetryingStub>(mock_, scheduler_, options_);
    return *stub_;
  }

  // Expects any number of calls of `method` on the mock, answered by upstream_.
  void ExpectUpstream(RpcId method) { ExpectUpstreamWith(method, upstream_); }

  // Expects any number of calls of `method` on the mock, answered by `upstream`.
  void ExpectUpstreamWith(RpcId method, Upstream& upstream) {
    switch (method) {
      case RpcId::kIdentifyUser:
        EXPECT_CALL(*mock_, IdentifyUser(_, _, _))
            .WillRepeatedly(upstream.Answer<v1::IdentifyUserResponse>());
        break;
      case RpcId::kIdentifyCompany:
        EXPECT_CALL(*mock_, IdentifyCompany(_, _, _))
            .WillRepeatedly(upstream.Answer<v1::IdentifyCompanyResponse>());
        break;
      case RpcId::kBulkIdentifyUsers:
        EXPECT_CALL(*mock_, BulkIdentifyUsers(_, _, _)).WillRepeatedly(upstream.Answer<v1::Job>());
        break;
      case RpcId::kBulkIdentifyCompanies:
        EXPECT_CALL(*mock_, BulkIdentifyCompanies(_, _, _))
            .WillRepeatedly(upstream.Answer<v1::Job>());
        break;
      case RpcId::kTrackEvent:
        EXPECT_CALL(*mock_, TrackEvent(_, _, _))
            .WillRepeatedly(upstream.Answer<v1::TrackEventResponse>());
        break;
      case RpcId::kListJobs:
        EXPECT_CALL(*mock_, ListJobs(_, _, _))
            .WillRepeatedly(upstream.Answer<v1::ListJobsResponse>());
        break;
      case RpcId::kGetJob:
        EXPECT_CALL(*mock_, GetJob(_, _, _)).WillRepeatedly(upstream.Answer<v1::Job>());
        break;
      case RpcId::kDeleteUsers:
        EXPECT_CALL(*mock_, DeleteUsers(_, _, _))
            .WillRepeatedly(upstream.Answer<v1::DeleteUsersResponse>());
        break;
      case RpcId::kDeleteCompanies:
        EXPECT_CALL(*mock_, DeleteCompanies(_, _, _))
            .WillRepeatedly(upstream.Answer<v1::DeleteCompaniesResponse>());
        break;
      case RpcId::kImportFile:
        EXPECT_CALL(*mock_, ImportFile(_, _, _)).WillRepeatedly(upstream.Answer<v1::Job>());
        break;
    }
  }

  // Calls `method` on the retrying stub with a default request.
  void Invoke(RpcId method, const CallOptions& options, Outcome& outcome) {
    switch (method) {
      case RpcId::kIdentifyUser:
        return stub().IdentifyUser(options, {}, Capture<v1::IdentifyUserResponse>(outcome));
      case RpcId::kIdentifyCompany:
        return stub().IdentifyCompany(options, {}, Capture<v1::IdentifyCompanyResponse>(outcome));
      case RpcId::kBulkIdentifyUsers:
        return stub().BulkIdentifyUsers(options, {}, Capture<v1::Job>(outcome));
      case RpcId::kBulkIdentifyCompanies:
        return stub().BulkIdentifyCompanies(options, {}, Capture<v1::Job>(outcome));
      case RpcId::kTrackEvent:
        return stub().TrackEvent(options, {}, Capture<v1::TrackEventResponse>(outcome));
      case RpcId::kListJobs:
        return stub().ListJobs(options, {}, Capture<v1::ListJobsResponse>(outcome));
      case RpcId::kGetJob:
        return stub().GetJob(options, {}, Capture<v1::Job>(outcome));
      case RpcId::kDeleteUsers:
        return stub().DeleteUsers(options, {}, Capture<v1::DeleteUsersResponse>(outcome));
      case RpcId::kDeleteCompanies:
        return stub().DeleteCompanies(options, {}, Capture<v1::DeleteCompaniesResponse>(outcome));
      case RpcId::kImportFile: {
        ImportFileRequest request;
        request.filename = "users.csv";
        return stub().ImportFile(options, request, Capture<v1::Job>(outcome));
      }
    }
  }

  // Runs every timer, however far ahead, until none is left (bounded, to catch loops).
  void RunUntilIdle() {
    for (int i = 0; i < 100000 && scheduler_.pending() > 0; ++i) {
      scheduler_.AdvanceTo(scheduler_.next_due());
    }
    ASSERT_EQ(scheduler_.pending(), 0u);
  }

  CallOptions Deadline(absl::Duration from_now) {
    CallOptions options;
    options.deadline = scheduler_.Now() + from_now;
    return options;
  }

  FakeScheduler scheduler_;
  const absl::Time start_ = scheduler_.Now();
  std::shared_ptr<StrictMock<MockUserpilotStub>> mock_ =
      std::make_shared<StrictMock<MockUserpilotStub>>();
  Upstream upstream_{scheduler_};
  RetryOptions options_;
  std::unique_ptr<RetryingStub> stub_;
};

// ----- Retryable or not, per method x error, through the whole decorator -----

struct StubCase {
  std::string name;
  CallStatus first;
  bool idempotent_retried;  // Calls that may repeat.
  bool track_retried;       // Default-level calls (TrackEvent, bulk identifies, ImportFile).
};

TEST_F(RetryingStubTest, RetriesPerMethodAndError) {
  const std::vector<StubCase> cases = {
      {"429", HttpError(429, {{"retry-after", "0"}}), true, true},
      {"503", HttpError(503), true, false},
      {"500", HttpError(500), true, false},
      {"408", HttpError(408), true, false},
      {"transport not sent", NotSentError(), true, true},
      {"transport may have been sent", MaybeSentError(), true, false},
      {"transport deadline", TransportDeadlineError(), false, false},
      {"400", HttpError(400), false, false},
      {"404", HttpError(404), false, false},
      {"409", HttpError(409), false, false},
      {"401", HttpError(401), false, false},
      {"budget exhausted", BudgetExhaustedError(), false, false},
  };
  for (const RpcInfo& rpc : AllRpcs()) {
    const RpcId method = rpc.id;
    for (const StubCase& c : cases) {
      SCOPED_TRACE(std::string(RpcInfoOf(method).name) + " / " + c.name);
      mock_ = std::make_shared<StrictMock<MockUserpilotStub>>();
      stub_ = nullptr;
      Upstream upstream(scheduler_);
      ExpectUpstreamWith(method, upstream);
      upstream.Script({c.first}, absl::OkStatus());
      Outcome outcome;
      Invoke(method, CallOptions(), outcome);
      RunUntilIdle();
      const bool retried =
          MayRepeat(IdempotencyOf(method)) ? c.idempotent_retried : c.track_retried;
      ASSERT_EQ(outcome.answers, 1);
      EXPECT_EQ(upstream.attempts(), retried ? 2u : 1u);
      if (retried) {
        EXPECT_TRUE(outcome.status.ok()) << outcome.status;
      } else {
        EXPECT_EQ(outcome.status.code(), c.first.code());
        EXPECT_EQ(Reason(outcome.status), Reason(c.first));
        EXPECT_EQ(Metadata(outcome.status)["attempts"], "1");
      }
      stub_ = nullptr;
      ::testing::Mock::VerifyAndClearExpectations(mock_.get());
    }
  }
}

// ----- Backoff and RetryInfo -----

TEST_F(RetryingStubTest, BacksOffExponentiallyThenGivesUpWithTheLastError) {
  ExpectUpstream(RpcId::kIdentifyUser);
  upstream_.Script({}, HttpError(503));
  Outcome outcome;
  Invoke(RpcId::kIdentifyUser, CallOptions(), outcome);
  EXPECT_EQ(outcome.answers, 0);  // Never inside the call.
  RunUntilIdle();
  // Half jitter: 50, 100, 200 ms between the 4 attempts.
  EXPECT_EQ(upstream_.AttemptOffsets(start_),
            (std::vector<absl::Duration>{absl::ZeroDuration(), absl::Milliseconds(50),
                                         absl::Milliseconds(150), absl::Milliseconds(350)}));
  ASSERT_EQ(outcome.answers, 1);
  EXPECT_EQ(outcome.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(outcome.status.message(),
            "Userpilot is unavailable (HTTP 503 on POST /v1/identify) (IdentifyUser gave up after "
            "4 attempts: retry policy exhausted)");
  EXPECT_EQ(Reason(outcome.status), "UPSTREAM_UNAVAILABLE");
  EXPECT_EQ(Metadata(outcome.status), (std::map<std::string, std::string>{
                                          {"attempts", "4"},
                                          {"endpoint", "POST /v1/identify"},
                                          {"http_status", "503"},
                                          {"retry_stopped_because", "retry_policy_exhausted"}}));
}

TEST_F(RetryingStubTest, WaitsAtLeastTheRetryInfoDelay) {
  ExpectUpstream(RpcId::kIdentifyUser);
  upstream_.Script({HttpError(429, {{"retry-after", "2"}}), HttpError(503)}, absl::OkStatus());
  Outcome outcome;
  Invoke(RpcId::kIdentifyUser, CallOptions(), outcome);
  RunUntilIdle();
  // 2 s (Retry-After beats 50 ms of backoff), then 100 ms of backoff (no RetryInfo on the 503).
  EXPECT_EQ(upstream_.AttemptOffsets(start_),
            (std::vector<absl::Duration>{absl::ZeroDuration(), absl::Seconds(2),
                                         absl::Milliseconds(2100)}));
  EXPECT_TRUE(outcome.status.ok());
  EXPECT_EQ(stub().stats().recovered, 1);
}

TEST_F(RetryingStubTest, BackoffBeatsAShorterRetryInfo) {
  options_.initial_backoff = absl::Seconds(2);
  options_.max_backoff = absl::Seconds(10);
  ExpectUpstream(RpcId::kGetJob);
  upstream_.Script({HttpError(429, {{"retry-after", "0"}})}, absl::OkStatus());
  Outcome outcome;
  Invoke(RpcId::kGetJob, CallOptions(), outcome);
  RunUntilIdle();
  EXPECT_EQ(upstream_.AttemptOffsets(start_),
            (std::vector<absl::Duration>{absl::ZeroDuration(), absl::Seconds(1)}));
}

// ----- The caller's deadline -----

TEST_F(RetryingStubTest, NeverRetriesPastTheDeadlineAndKeepsTheLastCode) {
  options_.max_attempts = 10;
  ExpectUpstream(RpcId::kIdentifyUser);
  // A 429 with a 300 ms RetryInfo (Retry-After has whole seconds only, so built by hand).
  CallStatus limited = HttpError(429);
  limited.facts().retry_delay = RetryDelay{absl::Milliseconds(300), RetryDelaySource::kRetryAfter};
  upstream_.Script({}, limited);
  Outcome outcome;
  const CallOptions options = Deadline(absl::Seconds(1));
  Invoke(RpcId::kIdentifyUser, options, outcome);
  RunUntilIdle();
  // Delays max(50|100|200 ms, 300 ms) = 300 ms; at 900 ms the next delay is max(400, 300) ms,
  // which would end at 1.3 s > the 1 s deadline: stop at once.
  EXPECT_EQ(upstream_.AttemptOffsets(start_),
            (std::vector<absl::Duration>{absl::ZeroDuration(), absl::Milliseconds(300),
                                         absl::Milliseconds(600), absl::Milliseconds(900)}));
  for (absl::Time deadline : upstream_.deadlines()) EXPECT_EQ(deadline, options.deadline);
  ASSERT_EQ(outcome.answers, 1);
  EXPECT_EQ(outcome.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Reason(outcome.status), "UPSTREAM_RATE_LIMITED");
  EXPECT_EQ(wire::RetryDelay(outcome.status), absl::Milliseconds(300));
  EXPECT_EQ(Metadata(outcome.status)["attempts"], "4");
  EXPECT_EQ(Metadata(outcome.status)["retry_stopped_because"], "deadline");
  EXPECT_THAT(std::string(outcome.status.message()),
              ::testing::EndsWith("(IdentifyUser gave up after 4 attempts: deadline would pass)"));
  // The answer came at the last failure, not at the deadline.
  EXPECT_EQ(scheduler_.Now(), start_ + absl::Milliseconds(900));
}

TEST_F(RetryingStubTest, ARetryInfoLongerThanTheDeadlineEndsTheCallAtOnce) {
  ExpectUpstream(RpcId::kDeleteUsers);
  upstream_.Script({HttpError(503, {{"retry-after", "5"}})}, absl::OkStatus());
  Outcome outcome;
  Invoke(RpcId::kDeleteUsers, Deadline(absl::Seconds(5)), outcome);
  RunUntilIdle();
  EXPECT_EQ(upstream_.attempts(), 1u);  // now + 5 s >= deadline: no attempt at the deadline.
  EXPECT_EQ(outcome.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(wire::RetryDelay(outcome.status), absl::Seconds(5));
  EXPECT_EQ(Metadata(outcome.status)["retry_stopped_because"], "deadline");
  EXPECT_EQ(scheduler_.Now(), start_);
}

TEST_F(RetryingStubTest, MaxRetryDurationBoundsACall) {
  options_.max_attempts = 100;
  options_.max_retry_duration = absl::Milliseconds(300);
  ExpectUpstream(RpcId::kGetJob);
  upstream_.Script({}, HttpError(500));
  Outcome outcome;
  Invoke(RpcId::kGetJob, CallOptions(), outcome);
  RunUntilIdle();
  EXPECT_EQ(upstream_.AttemptOffsets(start_),
            (std::vector<absl::Duration>{absl::ZeroDuration(), absl::Milliseconds(50),
                                         absl::Milliseconds(150), absl::Milliseconds(350)}));
  EXPECT_EQ(Metadata(outcome.status)["retry_stopped_because"], "retry_policy_exhausted");
}

// ----- TrackEvent -----

TEST_F(RetryingStubTest, TrackEventIsRetriedOnlyWhenUserpilotCertainlyDidNotRecordIt) {
  struct Case {
    std::string name;
    CallStatus first;
    bool retried;
  };
  const std::vector<Case> cases = {
      {"429", HttpError(429, {{"retry-after", "1"}}), true},
      {"connection refused", NotSentError(), true},
      {"connection reset", MaybeSentError(), false},
      {"503", HttpError(503), false},
      {"502", HttpError(502), false},
      {"408", HttpError(408), false},
      {"no answer in time", TransportDeadlineError(), false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    mock_ = std::make_shared<StrictMock<MockUserpilotStub>>();
    stub_ = nullptr;
    Upstream upstream(scheduler_);
    ExpectUpstreamWith(RpcId::kTrackEvent, upstream);
    upstream.Script({c.first}, absl::OkStatus());
    Outcome outcome;
    Invoke(RpcId::kTrackEvent, CallOptions(), outcome);
    RunUntilIdle();
    ASSERT_EQ(outcome.answers, 1);
    EXPECT_EQ(upstream.attempts(), c.retried ? 2u : 1u);
    if (c.retried) continue;
    EXPECT_EQ(outcome.status.code(), c.first.code());
    if (c.first.code() == absl::StatusCode::kUnavailable) {
      EXPECT_EQ(Metadata(outcome.status)["retry_stopped_because"], "not_idempotent");
      EXPECT_THAT(std::string(outcome.status.message()),
                  ::testing::EndsWith("(TrackEvent gave up after 1 attempt: not idempotent and "
                                      "may have reached Userpilot)"));
    }
    stub_ = nullptr;
  }
}

// ----- Retry budget -----

TEST_F(RetryingStubTest, TheRetryBudgetStopsARetryStorm) {
  options_.budget.retry_ratio = 0.2;
  options_.budget.min_retries_per_second = 0;
  options_.circuit_breaker.enabled = false;  // Let every call reach the failing upstream.
  ExpectUpstream(RpcId::kIdentifyUser);
  upstream_.Script({}, HttpError(503));
  std::vector<Outcome> outcomes(1000);
  for (Outcome& outcome : outcomes) Invoke(RpcId::kIdentifyUser, CallOptions(), outcome);
  RunUntilIdle();
  // 1000 calls with up to 3 retries each would make 4000 attempts; the budget allows 20%.
  EXPECT_EQ(upstream_.attempts(), 1200u);
  int budget_stops = 0;
  for (const Outcome& outcome : outcomes) {
    ASSERT_EQ(outcome.answers, 1);
    EXPECT_EQ(outcome.status.code(), absl::StatusCode::kUnavailable);
    if (Metadata(outcome.status)["retry_stopped_because"] == "retry_budget_exhausted") {
      ++budget_stops;
    }
  }
  EXPECT_EQ(budget_stops, 1000);
  const RetryStats stats = stub().stats();
  EXPECT_EQ(stats.calls, 1000);
  EXPECT_EQ(stats.attempts, 1200);
  EXPECT_EQ(stats.retries_by_cause[static_cast<size_t>(RetryCause::kUpstreamUnavailable)], 200);
  EXPECT_EQ(stats.failed_by_stop_reason[static_cast<size_t>(StopReason::kRetryBudgetExhausted)],
            1000);
}

TEST_F(RetryingStubTest, TheDefaultBudgetAddsItsReserve) {
  options_.circuit_breaker.enabled = false;
  ExpectUpstream(RpcId::kIdentifyUser);
  upstream_.Script({}, HttpError(503));
  std::vector<Outcome> outcomes(1000);
  for (Outcome& outcome : outcomes) Invoke(RpcId::kIdentifyUser, CallOptions(), outcome);
  RunUntilIdle();
  EXPECT_EQ(upstream_.attempts(), 1000u + 200u + 10u);  // ratio + 1/s over 10 s
}

// ----- Circuit breaker -----

TEST_F(RetryingStubTest, TheBreakerOpensFailsFastAndClosesAfterGoodProbes) {
  options_.max_attempts = 1;
  options_.circuit_breaker.min_calls_in_window = 5;
  options_.circuit_breaker.half_open_share = 1;
  options_.circuit_breaker.half_open_probes = 1;
  ExpectUpstream(RpcId::kIdentifyUser);
  upstream_.Script({HttpError(503), HttpError(502), HttpError(500), NotSentError(), HttpError(504)},
                   absl::OkStatus());
  for (int i = 0; i < 5; ++i) {
    Outcome outcome;
    Invoke(RpcId::kIdentifyUser, CallOptions(), outcome);
    RunUntilIdle();
    ASSERT_EQ(outcome.status.code(), absl::StatusCode::kUnavailable);
  }
  EXPECT_EQ(stub().circuit_breaker().State(scheduler_.Now()), CircuitState::kOpen);

  // Fails fast: the upstream sees nothing, the answer still never comes inside the call.
  scheduler_.AdvanceBy(absl::Seconds(1));
  Outcome fast;
  Invoke(RpcId::kTrackEvent, CallOptions(), fast);  // StrictMock: no TrackEvent call.
  EXPECT_EQ(fast.answers, 0);
  scheduler_.RunDue();
  ASSERT_EQ(fast.answers, 1);
  EXPECT_EQ(fast.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Reason(fast.status), "CIRCUIT_OPEN");
  EXPECT_EQ(wire::RetryDelay(fast.status), absl::Seconds(4));
  EXPECT_EQ(fast.status.message(),
            "Userpilot (api.userpilot.test) failed repeatedly, so the gateway's circuit breaker is "
            "failing calls fast; retry in 4s (TrackEvent gave up after 0 attempts: circuit "
            "breaker open)");
  EXPECT_EQ(Metadata(fast.status)["attempts"], "0");
  EXPECT_EQ(Metadata(fast.status)["retry_stopped_because"], "circuit_open");
  EXPECT_EQ(upstream_.attempts(), 5u);

  // After the open duration probes go; their success closes the breaker.
  scheduler_.AdvanceBy(absl::Seconds(4));
  Outcome probe;
  Invoke(RpcId::kIdentifyUser, CallOptions(), probe);
  RunUntilIdle();
  EXPECT_TRUE(probe.status.ok());
  EXPECT_EQ(stub().circuit_breaker().State(scheduler_.Now()), CircuitState::kClosed);
  Outcome after;
  Invoke(RpcId::kIdentifyUser, CallOptions(), after);
  RunUntilIdle();
  EXPECT_TRUE(after.status.ok());
  const RetryStats stats = stub().stats();
  EXPECT_EQ(stats.circuit.state, CircuitState::kClosed);
  EXPECT_EQ(stats.circuit.times_opened, 1);
  EXPECT_EQ(stats.circuit.rejected, 1);
  EXPECT_EQ(stats.failed_by_stop_reason[static_cast<size_t>(StopReason::kCircuitOpen)], 1);
}

TEST_F(RetryingStubTest, TheBreakerJudgesEachCallOnceWhateverItsAttempts) {
  ExpectUpstream(RpcId::kIdentifyUser);
  // A call recovered on its 4th attempt, then one that failed all 4.
  upstream_.Script({HttpError(503), HttpError(503), HttpError(503)}, absl::OkStatus());
  Outcome recovered;
  Invoke(RpcId::kIdentifyUser, CallOptions(), recovered);
  RunUntilIdle();
  ASSERT_TRUE(recovered.status.ok());
  EXPECT_EQ(stub().stats().circuit.judged_calls, 1);
  EXPECT_EQ(stub().stats().circuit.failed_calls, 0);
  upstream_.Script({}, HttpError(503));
  Outcome failed;
  Invoke(RpcId::kIdentifyUser, CallOptions(), failed);
  RunUntilIdle();
  EXPECT_EQ(Metadata(failed.status)["attempts"], "4");
  EXPECT_EQ(upstream_.attempts(), 8u);
  EXPECT_EQ(stub().stats().circuit.judged_calls, 2);
  EXPECT_EQ(stub().stats().circuit.failed_calls, 1);
}

TEST_F(RetryingStubTest, TheCallersOwnDeadlineNeverCountsAgainstUserpilot) {
  options_.circuit_breaker.min_calls_in_window = 1;
  ExpectUpstream(RpcId::kIdentifyUser);
  upstream_.Script({}, TransportDeadlineError());
  for (int i = 0; i < 100; ++i) {
    Outcome outcome;
    Invoke(RpcId::kIdentifyUser, Deadline(absl::Seconds(2)), outcome);
    RunUntilIdle();
    ASSERT_EQ(outcome.status.code(), absl::StatusCode::kDeadlineExceeded);
  }
  EXPECT_EQ(stub().circuit_breaker().State(scheduler_.Now()), CircuitState::kClosed);
  EXPECT_EQ(stub().stats().circuit.judged_calls, 0);
}

TEST_F(RetryingStubTest, ABreakerThatOpensMidCallStopsItsRetries) {
  options_.circuit_breaker.min_calls_in_window = 1;
  ExpectUpstream(RpcId::kIdentifyUser);
  ExpectUpstream(RpcId::kTrackEvent);
  upstream_.Script({HttpError(503), MaybeSentError()}, HttpError(503));
  Outcome waiting;
  Invoke(RpcId::kIdentifyUser, CallOptions(), waiting);
  scheduler_.RunDue();  // Its first attempt failed; its retry waits for the backoff.
  ASSERT_EQ(waiting.answers, 0);
  Outcome failed;
  Invoke(RpcId::kTrackEvent, CallOptions(), failed);  // Not repeatable: one attempt, failed.
  scheduler_.RunDue();
  ASSERT_EQ(failed.answers, 1);
  EXPECT_EQ(stub().circuit_breaker().State(scheduler_.Now()), CircuitState::kOpen);
  RunUntilIdle();
  EXPECT_EQ(upstream_.attempts(), 2u);
  // The caller sees Userpilot's own last error, and why the retries stopped.
  EXPECT_EQ(waiting.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Reason(waiting.status), "UPSTREAM_UNAVAILABLE");
  EXPECT_EQ(Metadata(waiting.status)["attempts"], "1");
  EXPECT_EQ(Metadata(waiting.status)["retry_stopped_because"], "circuit_open");
}

TEST_F(RetryingStubTest, GatewayRefusalsNeitherRetryNorTripTheBreaker) {
  ExpectUpstream(RpcId::kIdentifyUser);
  upstream_.Script({}, BudgetExhaustedError(absl::Seconds(2)));
  for (int i = 0; i < 20; ++i) {
    Outcome outcome;
    Invoke(RpcId::kIdentifyUser, CallOptions(), outcome);
    RunUntilIdle();
    ASSERT_EQ(outcome.status.code(), absl::StatusCode::kResourceExhausted);
    EXPECT_EQ(Reason(outcome.status), "BUDGET_EXHAUSTED");
    EXPECT_EQ(wire::RetryDelay(outcome.status), absl::Seconds(2));
    EXPECT_EQ(Metadata(outcome.status)["retry_stopped_because"], "non_retryable");
  }
  EXPECT_EQ(upstream_.attempts(), 20u);
  EXPECT_EQ(stub().circuit_breaker().State(scheduler_.Now()), CircuitState::kClosed);
}

// ----- Lifetimes -----

TEST_F(RetryingStubTest, RetriesSendACopyOfTheRequest) {
  ExpectUpstream(RpcId::kIdentifyUser);
  upstream_.Script({HttpError(503), HttpError(503)}, absl::OkStatus());
  Outcome outcome;
  {
    auto request = std::make_unique<v1::IdentifyUserRequest>();
    request->set_user_id("u-1");
    CallOptions options;
    options.caller = "svc-a";
    stub().IdentifyUser(options, *request, Capture<v1::IdentifyUserResponse>(outcome));
  }  // The caller's request and options are gone before the first answer.
  RunUntilIdle();
  EXPECT_TRUE(outcome.status.ok());
  EXPECT_EQ(upstream_.requests(),
            (std::vector<std::string>{"user_id: \"u-1\"", "user_id: \"u-1\"", "user_id: \"u-1\""}));
}

TEST_F(RetryingStubTest, TheFactsSayWhyRetryingStoppedAndSumEveryAttempt) {
  ExpectUpstream(RpcId::kIdentifyUser);
  // As the layers below would report them: one HTTP request each, after some budget wait.
  CallStatus unavailable = HttpError(503);
  unavailable.facts().http_attempts = 1;
  unavailable.facts().budget_wait = absl::Milliseconds(10);
  CallStatus rejected = HttpError(400);
  rejected.facts().http_attempts = 1;
  rejected.facts().budget_wait = absl::Milliseconds(5);
  upstream_.Script({unavailable, rejected});
  Outcome failed;
  Invoke(RpcId::kIdentifyUser, CallOptions(), failed);
  RunUntilIdle();
  const CallFacts& facts = failed.status.facts();
  EXPECT_EQ(facts.retry.stopped, StopReason::kNonRetryable);
  EXPECT_EQ(facts.retry.attempts, 2);
  EXPECT_EQ(facts.http_attempts, 2);
  EXPECT_EQ(facts.budget_wait, absl::Milliseconds(15));
  EXPECT_EQ(facts.upstream.http_status, 400);  // The last attempt's.

  Outcome ok;
  Invoke(RpcId::kIdentifyUser, CallOptions(), ok);
  RunUntilIdle();
  EXPECT_TRUE(ok.status.ok());
  EXPECT_FALSE(ok.status.facts().retry.stopped.has_value());
}

TEST_F(RetryingStubTest, ImportFileRetriesTheSameFileOnlyWhenCertainlyNotSent) {
  ExpectUpstream(RpcId::kImportFile);
  upstream_.Script({NotSentError(), HttpError(429, {{"retry-after", "1"}}), HttpError(502)});
  Outcome outcome;
  Invoke(RpcId::kImportFile, CallOptions(), outcome);
  RunUntilIdle();
  EXPECT_EQ(upstream_.requests(),
            (std::vector<std::string>{"filename: users.csv", "filename: users.csv",
                                      "filename: users.csv"}));
  EXPECT_EQ(outcome.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(outcome.status.message()),
              ::testing::EndsWith("(ImportFile gave up after 3 attempts: not idempotent and may "
                                  "have reached Userpilot)"));
}

TEST_F(RetryingStubTest, DestroyingTheStubAnswersCallsWaitingToRetry) {
  ExpectUpstream(RpcId::kIdentifyUser);
  upstream_.Script({}, HttpError(503, {{"retry-after", "30"}}));
  Outcome outcome;
  Invoke(RpcId::kIdentifyUser, CallOptions(), outcome);
  scheduler_.RunDue();  // First attempt fails; the retry waits 30 s.
  EXPECT_EQ(outcome.answers, 0);
  EXPECT_EQ(scheduler_.pending(), 1u);
  stub_ = nullptr;
  EXPECT_EQ(scheduler_.pending(), 0u);
  ASSERT_EQ(outcome.answers, 1);
  EXPECT_EQ(outcome.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Metadata(outcome.status)["retry_stopped_because"], "shutdown");
  EXPECT_EQ(upstream_.attempts(), 1u);
}

TEST_F(RetryingStubTest, AttemptsInFlightAtDestructionEndWithoutARetry) {
  StubCallback<v1::Job> held;
  EXPECT_CALL(*mock_, GetJob(_, _, _))
      .WillOnce([&held](const CallOptions&, const v1::GetJobRequest&, StubCallback<v1::Job> done) {
        held = std::move(done);
      });
  Outcome outcome;
  Invoke(RpcId::kGetJob, CallOptions(), outcome);
  stub_ = nullptr;
  std::move(held)(HttpError(503));  // The upstream answers after the decorator is gone.
  ASSERT_EQ(outcome.answers, 1);
  EXPECT_EQ(Metadata(outcome.status)["retry_stopped_because"], "shutdown");
  EXPECT_EQ(scheduler_.pending(), 0u);
}

TEST_F(RetryingStubTest, ADroppedUpstreamCallbackStillAnswersTheCaller) {
  EXPECT_CALL(*mock_, GetJob(_, _, _))
      .WillOnce([](const CallOptions&, const v1::GetJobRequest&, StubCallback<v1::Job> done) {
        // Dropped: a broken layer below. The caller must still get exactly one answer.
      });
  Outcome outcome;
  Invoke(RpcId::kGetJob, CallOptions(), outcome);
  ASSERT_EQ(outcome.answers, 1);
  EXPECT_EQ(outcome.status.code(), absl::StatusCode::kCancelled);
}

TEST(RetryOptionsTest, DefaultsAndValidate) {
  const RetryOptions options;
  EXPECT_TRUE(options.Validate().ok());
  EXPECT_EQ(options.max_attempts, 4);
  EXPECT_EQ(options.initial_backoff, absl::Milliseconds(100));
  EXPECT_EQ(options.max_backoff, absl::Seconds(5));
  EXPECT_EQ(options.backoff_multiplier, 2.0);
  EXPECT_EQ(options.budget.retry_ratio, 0.2);
  EXPECT_EQ(options.budget.min_retries_per_second, 1);
  EXPECT_EQ(options.circuit_breaker.failure_ratio, 0.8);
  EXPECT_EQ(options.circuit_breaker.min_calls_in_window, 50);
  RetryOptions bad;
  bad.max_attempts = 0;
  EXPECT_EQ(bad.Validate().message(), "retry max attempts must be in [1, 100], not 0");
  bad = RetryOptions();
  bad.max_backoff = absl::Milliseconds(10);
  EXPECT_EQ(bad.Validate().message(),
            "maximum backoff must be finite and at least the initial backoff (100ms), not 10ms");
  bad = RetryOptions();
  bad.circuit_breaker.failure_ratio = 0;
  EXPECT_FALSE(bad.Validate().ok());
}

TEST(RetryingStubDeathTest, InvalidOptionsAbortWithTheReason) {
  RetryOptions bad;
  bad.max_attempts = 0;
  FakeScheduler scheduler;
  EXPECT_DEATH(RetryingStub(std::make_shared<MockUserpilotStub>(), scheduler, bad),
               "retry max attempts must be in \\[1, 100\\], not 0");
}

// ----- Threads (meaningful under TSan) -----

TEST(RetryingStubThreadsTest, ConcurrentCallsEachGetOneAnswer) {
  ThreadScheduler scheduler;
  auto mock = std::make_shared<MockUserpilotStub>();
  std::atomic<int> attempts{0};
  // Odd attempts fail with 503, even ones succeed; answers come from the timer thread.
  EXPECT_CALL(*mock, IdentifyUser(_, _, _))
      .WillRepeatedly([&](const CallOptions&, const v1::IdentifyUserRequest&,
                          StubCallback<v1::IdentifyUserResponse> done) {
        const bool fail = attempts.fetch_add(1) % 2 == 0;
        scheduler.RunAfter(absl::ZeroDuration(), [fail, done = std::move(done)]() mutable {
          if (fail) {
            std::move(done)(HttpError(503));
          } else {
            std::move(done)(v1::IdentifyUserResponse());
          }
        });
      });
  RetryOptions options;
  options.initial_backoff = absl::Microseconds(100);
  options.max_backoff = absl::Milliseconds(1);
  constexpr int kThreads = 4;
  constexpr int kCallsPerThread = 200;
  std::mutex mu;
  std::condition_variable cv;
  int answered = 0;
  {
    RetryingStub stub(mock, scheduler, options);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < kCallsPerThread; ++i) {
          CallOptions call;
          call.deadline = absl::Now() + absl::Seconds(30);
          stub.IdentifyUser(call, {}, [&](Result<v1::IdentifyUserResponse>) {
            std::lock_guard<std::mutex> lock(mu);
            ++answered;
            cv.notify_all();
          });
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30),
                            [&] { return answered == kThreads * kCallsPerThread; }));
    const RetryStats stats = stub.stats();
    EXPECT_EQ(stats.calls, kThreads * kCallsPerThread);
    EXPECT_EQ(stats.attempts, attempts.load());
  }
  EXPECT_EQ(answered, kThreads * kCallsPerThread);
}

}  // namespace
}  // namespace userpilot::gateway
