// Fault injection through the whole upstream stack, built by the composition the gateway uses
// (service/app/upstream_stack.h MakeUpstreamStack), without metrics:
//
//     RetryingStub -> RateLimitedStub (budgets) -> HttpUserpilotStub -> HttpClient
//
// on a FakeScheduler (every timer: budget spacing and pauses, backoff, the breaker's clock) and a
// FakeHttpClient that holds each request until the test answers it as Userpilot (or libcurl)
// would: 5xx bursts, a hang that only the per-attempt timeout ends, dropped connections, 429 with
// and without Retry-After. Time is exact, so the assertions name exact instants.
//
// The unit tests of each layer (service/retry, service/ratelimit) cover their decisions one by
// one against mocks; these show the layers together: retries spend the budget, a 429 pauses the
// budget for every call while the retry waits it out, the breaker refuses before the budget is
// touched, and the HTTP layer's per-attempt timeout turns a hang into a retryable failure.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/app/upstream_stack.h"
#include "service/ratelimit/budgets.h"
#include "service/retry/retrying_stub.h"
#include "tests/mocks/fake_http_client.h"
#include "tests/mocks/fake_scheduler.h"
#include "tests/util/wire_details.h"

namespace userpilot::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::Duration kInterval = absl::Milliseconds(100);  // The scaled budgets: 10/s.
constexpr absl::Duration kAttemptTimeout = absl::Seconds(1);   // --upstream_timeout

// Full jitter at its midpoint: retry n waits exactly half its ceiling (50, 100, 200 ms, ...).
class HalfJitter final : public JitterSource {
 public:
  double Uniform() override { return 0.5; }
};

// One call's answer and when it came (fake time).
struct Answer {
  std::optional<CallStatus> status;
  absl::Time at = absl::InfinitePast();
  int count = 0;
};

using wire::Metadata;
using wire::Reason;

absl::Duration RetryDelay(const CallStatus& status) {
  return wire::RetryDelay(status).value_or(absl::InfiniteDuration());
}

HttpResult Accepted() { return FakeHttpClient::Response(202, "{}"); }
HttpResult Status(long code, HttpHeaders headers = {}) {  // NOLINT(runtime/int)
  return FakeHttpClient::Response(code, "", std::move(headers));
}
// libcurl gave up at the request's deadline with nothing back.
HttpResult TimedOut() {
  return FakeHttpClient::TransportFailure(absl::DeadlineExceededError("Operation timed out"), true);
}
// The connection closed without an answer after the request went out.
HttpResult Dropped() {
  return FakeHttpClient::TransportFailure(
      absl::UnavailableError("Empty reply from server (connection closed)"), true);
}
HttpResult Refused() {
  return FakeHttpClient::TransportFailure(absl::UnavailableError("Connection refused"), false);
}

class TrafficStackTest : public ::testing::Test {
 protected:
  void Build(RetryOptions retry = {}) {
    RateLimitOptions limits;
    limits.identify.rate = {"identify", 10, absl::Seconds(1)};
    limits.track.rate = {"track", 10, absl::Seconds(1)};
    limits.spacing_margin = absl::ZeroDuration();  // Windows of exactly 1 s; a 100 ms pace.
    auto budgets = MakeBudgets(limits, scheduler_);
    ASSERT_TRUE(budgets.ok()) << budgets.status();
    budgets_ = *std::move(budgets);
    UpstreamStackOptions stack;
    stack.upstream.base_url = "https://api.userpilot.test";
    stack.upstream.api_key = "stack-test-key";
    stack.upstream.request_timeout = kAttemptTimeout;
    retry.jitter = std::make_shared<HalfJitter>();
    stack.retry = std::move(retry);
    UpstreamStack built = MakeUpstreamStack(std::move(stack), http_, scheduler_, &budgets_);
    retrying_ = built.retrying;
    stub_ = std::move(built.stub);
  }

  void TearDown() override {
    stub_.reset();
    budgets_.Shutdown();
  }

  // Starts an IdentifyUser (or TrackEvent) call that gives up `deadline` from now.
  void Identify(Answer& answer, absl::Duration deadline = absl::Seconds(30)) {
    CallOptions options;
    options.deadline = scheduler_.Now() + deadline;
    options.caller = "svc";
    v1::IdentifyUserRequest request;
    request.set_user_id("u1");
    stub_->IdentifyUser(options, request, Capture<v1::IdentifyUserResponse>(answer));
  }
  void Track(Answer& answer, absl::Duration deadline = absl::Seconds(30)) {
    CallOptions options;
    options.deadline = scheduler_.Now() + deadline;
    options.caller = "svc";
    v1::TrackEventRequest request;
    request.set_user_id("u1");
    request.set_event_name("e");
    stub_->TrackEvent(options, request, Capture<v1::TrackEventResponse>(answer));
  }

  template <typename T>
  StubCallback<T> Capture(Answer& answer) {
    return [this, &answer](Result<T> result) {
      answer.status = std::move(result).error();
      answer.at = scheduler_.Now();
      ++answer.count;
    };
  }

  // Moves the clock until `n` requests in total have reached the HTTP client (or `limit`).
  // Returns false if that did not happen by then.
  bool AdvanceUntilRequests(size_t n, absl::Duration limit = absl::Seconds(60)) {
    const absl::Time end = scheduler_.Now() + limit;
    scheduler_.RunDue();
    while (http_.requests().size() < n) {
      const absl::Time next = scheduler_.next_due();
      if (next > end) return false;
      scheduler_.AdvanceTo(next);
    }
    return true;
  }

  // Answers the oldest waiting request at the current (fake) time.
  void Respond(HttpResult result) { ASSERT_TRUE(http_.CompleteNext(std::move(result))); }

  // When each request reached the HTTP client, relative to `t0_`. The fake clock stands still
  // between a timer and the Send() it causes, so this is the instant of admission.
  void RecordSends() {
    for (size_t i = sent_at_.size(); i < http_.requests().size(); ++i) {
      sent_at_.push_back(scheduler_.Now() - t0_);
    }
  }

  // Runs the call's steps: wait for request n, answer it with results[n], until all are used.
  // Records when each request was sent.
  void Script(std::vector<HttpResult> results) {
    for (HttpResult& result : results) {
      ASSERT_TRUE(AdvanceUntilRequests(sent_at_.size() + 1))
          << "no request #" << sent_at_.size() + 1;
      RecordSends();
      Respond(std::move(result));
    }
    scheduler_.RunDue();  // Answers the layers post rather than give inside a callback.
  }

  FakeScheduler scheduler_;
  const absl::Time t0_ = scheduler_.Now();
  FakeHttpClient http_;
  Budgets budgets_;
  std::shared_ptr<UserpilotStub> stub_;
  RetryingStub* retrying_ = nullptr;
  std::vector<absl::Duration> sent_at_;
};

// ----- 5xx bursts -----

TEST_F(TrafficStackTest, A5xxBurstIsRetriedWithExponentialBackoffAndEveryRetrySpendsTheBudget) {
  Build();
  Answer answer;
  Identify(answer);
  Script({Status(503), Status(502), Status(500), Accepted()});
  ASSERT_TRUE(answer.status.has_value());
  EXPECT_TRUE(answer.status->ok()) << *answer.status;
  // Backoff 50, 100, 200 ms (half of 100, 200, 400); the budget's window has room for all four
  // attempts, so none waits for it.
  EXPECT_THAT(sent_at_, ElementsAre(absl::ZeroDuration(), absl::Milliseconds(50),
                                    absl::Milliseconds(150), absl::Milliseconds(350)));
  const FairLimiterStats budget = budgets_.identify->Stats();
  EXPECT_EQ(budget.admitted_without_wait + budget.admitted_after_wait, 4u);
  EXPECT_EQ(retrying_->stats().attempts, 4);
  EXPECT_EQ(retrying_->stats().recovered, 1);
}

TEST_F(TrafficStackTest, ALonger5xxBurstEndsWithTheLastErrorAttemptsAndWhy) {
  Build();
  Answer answer;
  Identify(answer);
  Script({Status(503), Status(503), Status(503), Status(503)});
  scheduler_.RunDue();
  ASSERT_TRUE(answer.status.has_value());
  EXPECT_EQ(answer.status->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Reason(*answer.status), "UPSTREAM_UNAVAILABLE");
  EXPECT_EQ(Metadata(*answer.status)["attempts"], "4");
  EXPECT_EQ(Metadata(*answer.status)["retry_stopped_because"], "retry_policy_exhausted");
  EXPECT_EQ(Metadata(*answer.status)["http_status"], "503");
  EXPECT_THAT(std::string(answer.status->message()), HasSubstr("after 4 attempts"));
  EXPECT_EQ(http_.requests().size(), 4u);
}

TEST_F(TrafficStackTest, A5xxIsNotRetriedForTrackBecauseUserpilotMayHaveRecordedIt) {
  Build();
  Answer answer;
  Track(answer);
  Script({Status(503)});
  scheduler_.AdvanceBy(absl::Seconds(5));
  ASSERT_TRUE(answer.status.has_value());
  EXPECT_EQ(answer.status->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Metadata(*answer.status)["attempts"], "1");
  EXPECT_EQ(Metadata(*answer.status)["retry_stopped_because"], "not_idempotent");
  EXPECT_EQ(http_.requests().size(), 1u);
}

// ----- Hangs: Userpilot never answers -----

TEST_F(TrafficStackTest, AHangIsCutByThePerAttemptTimeoutAndRetried) {
  Build();
  Answer answer;
  Identify(answer, absl::Seconds(10));
  ASSERT_TRUE(AdvanceUntilRequests(1));
  // The HTTP layer caps the attempt at --upstream_timeout, well before the caller's deadline.
  EXPECT_EQ(http_.requests()[0].deadline, t0_ + kAttemptTimeout);
  scheduler_.AdvanceTo(http_.requests()[0].deadline);
  Respond(TimedOut());  // What libcurl reports at that deadline.
  ASSERT_TRUE(AdvanceUntilRequests(2));
  EXPECT_EQ(scheduler_.Now(), t0_ + kAttemptTimeout + absl::Milliseconds(50));
  Respond(Accepted());
  ASSERT_TRUE(answer.status.has_value());
  EXPECT_TRUE(answer.status->ok()) << *answer.status;
  EXPECT_EQ(retrying_->stats().attempts, 2);
}

TEST_F(TrafficStackTest, AHangThatOutlastsTheCallersDeadlineEndsExactlyAtIt) {
  Build();
  Answer answer;
  Identify(answer, absl::Milliseconds(1500));
  ASSERT_TRUE(AdvanceUntilRequests(1));
  scheduler_.AdvanceTo(http_.requests()[0].deadline);  // Capped: 1 s.
  Respond(TimedOut());
  ASSERT_TRUE(AdvanceUntilRequests(2));
  // The retry's own deadline is the caller's, not another full attempt timeout.
  EXPECT_EQ(http_.requests()[1].deadline, t0_ + absl::Milliseconds(1500));
  scheduler_.AdvanceTo(http_.requests()[1].deadline);
  Respond(TimedOut());
  ASSERT_TRUE(answer.status.has_value());
  EXPECT_EQ(answer.at, t0_ + absl::Milliseconds(1500));
  EXPECT_EQ(answer.status->code(), absl::StatusCode::kDeadlineExceeded) << *answer.status;
  EXPECT_EQ(Metadata(*answer.status)["attempts"], "2");
  scheduler_.AdvanceBy(absl::Seconds(10));
  EXPECT_EQ(http_.requests().size(), 2u);  // Nothing after the caller gave up.
  EXPECT_EQ(answer.count, 1);
}

TEST_F(TrafficStackTest, AHungTrackIsNotRetried) {
  Build();
  Answer answer;
  Track(answer, absl::Seconds(10));
  ASSERT_TRUE(AdvanceUntilRequests(1));
  scheduler_.AdvanceTo(http_.requests()[0].deadline);
  Respond(TimedOut());
  scheduler_.AdvanceBy(absl::Seconds(10));
  ASSERT_TRUE(answer.status.has_value());
  EXPECT_EQ(answer.status->code(), absl::StatusCode::kUnavailable) << *answer.status;
  EXPECT_EQ(Metadata(*answer.status)["request_may_have_been_sent"], "true");
  EXPECT_EQ(Metadata(*answer.status)["retry_stopped_because"], "not_idempotent");
  EXPECT_EQ(http_.requests().size(), 1u);
}

// ----- Dropped and refused connections -----

TEST_F(TrafficStackTest, DroppedConnectionsAreRetriedOnlyForIdempotentCalls) {
  Build();
  Answer identify;
  Identify(identify);
  Script({Dropped(), Accepted()});
  ASSERT_TRUE(identify.status.has_value());
  EXPECT_TRUE(identify.status->ok()) << *identify.status;

  Answer track;
  Track(track);
  Script({Dropped()});
  scheduler_.AdvanceBy(absl::Seconds(5));
  ASSERT_TRUE(track.status.has_value());
  EXPECT_EQ(track.status->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Metadata(*track.status)["retry_stopped_because"], "not_idempotent");
  EXPECT_EQ(http_.requests().size(), 3u);
}

TEST_F(TrafficStackTest, ARefusedConnectionIsRetriedEvenForTrack) {
  Build();
  Answer track;
  Track(track);
  Script({Refused(), Refused(), Accepted()});
  ASSERT_TRUE(track.status.has_value());
  EXPECT_TRUE(track.status->ok()) << *track.status;
  // Backoff only (50, 100 ms): the budget's window has room.
  EXPECT_THAT(sent_at_,
              ElementsAre(absl::ZeroDuration(), absl::Milliseconds(50), absl::Milliseconds(150)));
}

// ----- 429 with and without Retry-After -----

TEST_F(TrafficStackTest, A429WithoutRetryAfterPausesTheBudgetWithExponentialBackoff) {
  Build();
  Answer answer;
  Identify(answer);
  Script({Status(429), Status(429), Accepted()});
  ASSERT_TRUE(answer.status.has_value());
  EXPECT_TRUE(answer.status->ok()) << *answer.status;
  // First 429: the budget pauses 1 s (its backoff then doubles) and the retry waits at least
  // the 1 s RetryInfo. Second 429: the budget pauses 2 s, so the retry - due after 1 s - waits
  // for the budget and goes at 1 s + 2 s.
  EXPECT_THAT(sent_at_, ElementsAre(absl::ZeroDuration(), absl::Seconds(1), absl::Seconds(3)));
  const FairLimiterStats budget = budgets_.identify->Stats();
  EXPECT_EQ(budget.rate_decreases, 2u);
  EXPECT_EQ(budget.backoff, absl::Seconds(1));  // The success reset it.
  EXPECT_LT(budget.current_limit, 10 * 0.7);    // Lowered twice, barely recovered.
}

TEST_F(TrafficStackTest, A429WithRetryAfterPausesTheWholeBudgetForExactlyThatLong) {
  Build();
  Answer first;
  Identify(first);
  ASSERT_TRUE(AdvanceUntilRequests(1));
  Respond(Status(429, {{"retry-after", "3"}}));
  FairLimiterStats budget = budgets_.identify->Stats();
  EXPECT_EQ(budget.paused_until, t0_ + absl::Seconds(3));
  EXPECT_EQ(budget.backoff, absl::Seconds(1));  // Retry-After given: no backoff step taken.
  // Another identify call half a second later waits out the pause with the retry; a track call
  // (another budget) goes at once.
  scheduler_.AdvanceBy(absl::Milliseconds(500));
  Answer second;
  Identify(second);
  Answer track;
  Track(track);
  ASSERT_TRUE(AdvanceUntilRequests(2));
  EXPECT_EQ(scheduler_.Now(), t0_ + absl::Milliseconds(500));
  EXPECT_THAT(http_.requests()[1].url, HasSubstr("/v1/track"));
  Respond(Accepted());
  ASSERT_TRUE(AdvanceUntilRequests(3));
  EXPECT_EQ(scheduler_.Now(), t0_ + absl::Seconds(3));  // Not a moment before Retry-After.
  Respond(Accepted());
  ASSERT_TRUE(AdvanceUntilRequests(4));
  // After the pause the budget runs at its lowered rate: 10 * 0.7 per second.
  EXPECT_EQ(scheduler_.Now(), t0_ + absl::Seconds(3) + kInterval / 0.7);
  Respond(Accepted());
  scheduler_.RunDue();
  ASSERT_TRUE(first.status.has_value() && second.status.has_value());
  EXPECT_TRUE(first.status->ok()) << *first.status;
  EXPECT_TRUE(second.status->ok()) << *second.status;
  EXPECT_EQ(budgets_.identify->Stats().rate_decreases, 1u);
}

TEST_F(TrafficStackTest, TheRateAdaptsDownAfter429sAndBackUpWithSuccesses) {
  Build();
  Answer limited;
  Identify(limited);
  Script({Status(429), Status(429), Accepted()});
  ASSERT_TRUE(limited.status.has_value() && limited.status->ok());
  // Two decreases (x 0.7 each), then the first success's small step back up.
  double previous = budgets_.identify->Stats().current_limit;
  EXPECT_GT(previous, 10 * 0.7 * 0.7);
  EXPECT_LT(previous, 10 * 0.7 * 0.7 + 0.5);
  // Successes give the rate back, a little at a time, up to the configured 10/s.
  int calls = 0;
  while (budgets_.identify->Stats().current_limit < 10 && calls < 200) {
    Answer answer;
    Identify(answer);
    Script({Accepted()});
    ASSERT_TRUE(answer.status.has_value() && answer.status->ok());
    const double now_limit = budgets_.identify->Stats().current_limit;
    EXPECT_GE(now_limit, previous);
    previous = now_limit;
    ++calls;
  }
  EXPECT_EQ(budgets_.identify->Stats().current_limit, 10);
  EXPECT_GT(calls, 10);  // Additive increase: not all at once.
  EXPECT_LT(calls, 200);
}

TEST_F(TrafficStackTest, A429RetryThatCannotFitTheDeadlineEndsTheCallAtOnce) {
  Build();
  Answer answer;
  Identify(answer, absl::Seconds(2));
  Script({Status(429, {{"retry-after", "5"}})});
  ASSERT_TRUE(answer.status.has_value());
  EXPECT_EQ(answer.at, t0_);  // No point waiting 5 s for a call that ends in 2.
  EXPECT_EQ(answer.status->code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Reason(*answer.status), "UPSTREAM_RATE_LIMITED");
  EXPECT_EQ(RetryDelay(*answer.status), absl::Seconds(5));
  EXPECT_EQ(Metadata(*answer.status)["retry_stopped_because"], "deadline");
}

// ----- Circuit breaker -----

TEST_F(TrafficStackTest, TheBreakerOpensFailsFastWithoutTouchingTheBudgetThenProbesAndCloses) {
  RetryOptions retry;
  retry.max_attempts = 1;  // One failure per call, so the count is plain.
  retry.circuit_breaker.min_calls_in_window = 5;
  retry.circuit_breaker.half_open_share = 0.5;
  retry.circuit_breaker.half_open_probes = 1;
  Build(retry);
  for (int i = 0; i < 5; ++i) {  // 5 of 5 calls failed: over the ratio, at the minimum.
    Answer answer;
    Identify(answer);
    Script({Status(503)});
    ASSERT_TRUE(answer.status.has_value());
  }
  const uint64_t admitted_before = budgets_.identify->Stats().admitted_without_wait +
                                   budgets_.identify->Stats().admitted_after_wait;
  const absl::Time opened_at = scheduler_.Now();

  Answer refused;
  Identify(refused);
  scheduler_.RunDue();
  ASSERT_TRUE(refused.status.has_value());
  EXPECT_EQ(refused.at, opened_at);  // At once.
  EXPECT_EQ(refused.status->code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Reason(*refused.status), "CIRCUIT_OPEN");
  EXPECT_EQ(RetryDelay(*refused.status), absl::Seconds(5));
  EXPECT_EQ(http_.requests().size(), 5u);
  EXPECT_EQ(budgets_.identify->Stats().admitted_without_wait +
                budgets_.identify->Stats().admitted_after_wait,
            admitted_before);  // The budget was never asked.

  // After the open duration half the calls probe; one good probe closes the breaker.
  scheduler_.AdvanceTo(opened_at + absl::Seconds(5));
  Answer probe;
  Identify(probe);
  Answer during_probe;
  Identify(during_probe);
  scheduler_.RunDue();
  ASSERT_TRUE(during_probe.status.has_value());  // Not in the probing share: refused.
  EXPECT_EQ(Reason(*during_probe.status), "CIRCUIT_OPEN");
  Script({Accepted()});
  ASSERT_TRUE(probe.status.has_value());
  EXPECT_TRUE(probe.status->ok()) << *probe.status;
  EXPECT_EQ(retrying_->circuit_breaker().State(scheduler_.Now()), CircuitState::kClosed);
  Answer after;
  Identify(after);
  Script({Accepted()});
  ASSERT_TRUE(after.status.has_value());
  EXPECT_TRUE(after.status->ok());
}

TEST_F(TrafficStackTest, AFailedProbeReopensTheBreakerForTheSameFixedTime) {
  RetryOptions retry;
  retry.max_attempts = 1;
  retry.circuit_breaker.min_calls_in_window = 5;
  retry.circuit_breaker.half_open_probes = 1;
  Build(retry);
  for (int i = 0; i < 5; ++i) {
    Answer answer;
    Identify(answer);
    Script({Dropped()});
  }
  scheduler_.AdvanceBy(absl::Seconds(5));
  Answer probe;
  Identify(probe);
  Script({Status(503)});
  const absl::Time reopened_at = scheduler_.Now();
  Answer refused;
  Identify(refused);
  scheduler_.RunDue();
  ASSERT_TRUE(refused.status.has_value());
  EXPECT_EQ(Reason(*refused.status), "CIRCUIT_OPEN");
  EXPECT_EQ(RetryDelay(*refused.status), absl::Seconds(5));  // Never grows.
  scheduler_.AdvanceTo(reopened_at + absl::Seconds(5));
  Answer second_probe;
  Identify(second_probe);
  Script({Accepted()});
  ASSERT_TRUE(second_probe.status.has_value());
  EXPECT_TRUE(second_probe.status->ok());
}

}  // namespace
}  // namespace userpilot::gateway
