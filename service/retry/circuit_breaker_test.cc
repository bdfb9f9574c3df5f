#include "service/retry/circuit_breaker.h"

#include "gtest/gtest.h"
#include "tests/util/retry_test_util.h"

namespace userpilot::gateway {
namespace {

using namespace retry_testing;  // NOLINT(build/namespaces): test helpers.

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);
constexpr UpstreamHealth kOk = UpstreamHealth::kHealthy;
constexpr UpstreamHealth kFail = UpstreamHealth::kUnhealthy;
constexpr UpstreamHealth kUnknown = UpstreamHealth::kUnknown;

class CircuitBreakerTest : public ::testing::Test {
 protected:
  // One attempt at `now` with outcome `health`; false when the breaker refused it.
  bool Attempt(absl::Time now, UpstreamHealth health) {
    const CircuitBreaker::Permit permit = breaker_.TryAcquire(now);
    if (!permit.allowed) return false;
    breaker_.Record(permit, health, now);
    return true;
  }

  void Open(absl::Time now) {
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(Attempt(now, kFail));
    ASSERT_EQ(breaker_.State(now), CircuitState::kOpen);
  }

  CircuitBreakerOptions options_;  // 5 in a row, or 50% of >= 20 in 10 s; open 5 s .. 60 s
  CircuitBreaker breaker_{options_, "api.userpilot.test"};
};

TEST_F(CircuitBreakerTest, OpensAfterConsecutiveFailures) {
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(Attempt(kT0, kFail));
  EXPECT_EQ(breaker_.State(kT0), CircuitState::kClosed);
  ASSERT_TRUE(Attempt(kT0, kFail));
  EXPECT_EQ(breaker_.State(kT0), CircuitState::kOpen);
  EXPECT_FALSE(Attempt(kT0, kOk));
  EXPECT_EQ(breaker_.GetSnapshot(kT0).times_opened, 1);
  EXPECT_EQ(breaker_.GetSnapshot(kT0).rejected, 1);
}

TEST_F(CircuitBreakerTest, AnAnswerResetsTheRun) {
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(Attempt(kT0, kFail));
    ASSERT_TRUE(Attempt(kT0, kOk));  // A 4xx or 429 counts: Userpilot answered.
  }
  EXPECT_EQ(breaker_.State(kT0), CircuitState::kClosed);
}

TEST_F(CircuitBreakerTest, OpensOnTheFailureRatioOverTheWindow) {
  // Alternate, so never 5 in a row: 50% of 20 outcomes opens it on the 20th.
  for (int i = 0; i < 19; ++i) {
    ASSERT_TRUE(Attempt(kT0, i % 2 == 0 ? kFail : kOk));
  }
  EXPECT_EQ(breaker_.State(kT0), CircuitState::kClosed);  // 10 of 19
  ASSERT_TRUE(Attempt(kT0, kOk));                         // 10 of 20: 50%
  EXPECT_EQ(breaker_.State(kT0), CircuitState::kClosed);  // Only a failure can open it.
  ASSERT_TRUE(Attempt(kT0, kFail));                       // 11 of 21
  EXPECT_EQ(breaker_.State(kT0), CircuitState::kOpen);
}

TEST_F(CircuitBreakerTest, OldOutcomesLeaveTheWindow) {
  for (int i = 0; i < 18; ++i) ASSERT_TRUE(Attempt(kT0, i % 2 == 0 ? kFail : kOk));
  const absl::Time later = kT0 + absl::Seconds(10);
  ASSERT_TRUE(Attempt(later, kFail));
  ASSERT_TRUE(Attempt(later, kOk));
  ASSERT_TRUE(Attempt(later, kFail));
  EXPECT_EQ(breaker_.State(later), CircuitState::kClosed);
}

TEST_F(CircuitBreakerTest, OpenRefusesWithTheTimeUntilTheProbe) {
  Open(kT0);
  const CircuitBreaker::Permit permit = breaker_.TryAcquire(kT0 + absl::Seconds(2));
  EXPECT_FALSE(permit.allowed);
  EXPECT_EQ(permit.retry_after, absl::Seconds(3));
  const CallStatus error = breaker_.RefusedError(permit);
  EXPECT_EQ(error.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(error.message(),
            "Userpilot (api.userpilot.test) failed repeatedly, so the gateway's circuit breaker "
            "is failing calls fast; retry in 3s");
  EXPECT_EQ(Reason(error), "CIRCUIT_OPEN");
  EXPECT_EQ(Metadata(error)["upstream"], "api.userpilot.test");
  EXPECT_EQ(wire::RetryDelay(error), absl::Seconds(3));
}

TEST_F(CircuitBreakerTest, HalfOpenLetsOneProbeThroughAndItsSuccessCloses) {
  Open(kT0);
  const absl::Time t = kT0 + absl::Seconds(5);
  EXPECT_EQ(breaker_.State(t), CircuitState::kHalfOpen);
  const CircuitBreaker::Permit probe = breaker_.TryAcquire(t);
  ASSERT_TRUE(probe.allowed);
  EXPECT_TRUE(probe.probe);
  const CircuitBreaker::Permit second = breaker_.TryAcquire(t);
  EXPECT_FALSE(second.allowed);
  EXPECT_EQ(second.retry_after, absl::Seconds(5));
  breaker_.Record(probe, kOk, t);
  EXPECT_EQ(breaker_.State(t), CircuitState::kClosed);
  EXPECT_TRUE(Attempt(t, kOk));
  // Closed again with a clean slate: it takes 5 more failures to open.
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(Attempt(t, kFail));
  EXPECT_EQ(breaker_.State(t), CircuitState::kClosed);
}

TEST_F(CircuitBreakerTest, AFailedProbeReopensForLongerUpToTheCap) {
  Open(kT0);
  absl::Time t = kT0;
  const absl::Duration want[] = {absl::Seconds(10), absl::Seconds(20), absl::Seconds(40),
                                 absl::Seconds(60), absl::Seconds(60)};
  absl::Duration open_for = absl::Seconds(5);
  for (absl::Duration next : want) {
    t += open_for;
    const CircuitBreaker::Permit probe = breaker_.TryAcquire(t);
    ASSERT_TRUE(probe.probe);
    breaker_.Record(probe, kFail, t);
    EXPECT_EQ(breaker_.State(t), CircuitState::kOpen);
    EXPECT_EQ(breaker_.TryAcquire(t).retry_after, next);
    EXPECT_EQ(breaker_.State(t + next - absl::Nanoseconds(1)), CircuitState::kOpen);
    open_for = next;
  }
  // A success resets the open duration.
  t += open_for;
  breaker_.Record(breaker_.TryAcquire(t), kOk, t);
  Open(t);
  EXPECT_EQ(breaker_.TryAcquire(t).retry_after, absl::Seconds(5));
}

TEST_F(CircuitBreakerTest, AProbeThatLearnedNothingLetsAnotherGo) {
  Open(kT0);
  const absl::Time t = kT0 + absl::Seconds(5);
  const CircuitBreaker::Permit probe = breaker_.TryAcquire(t);
  ASSERT_TRUE(probe.probe);
  breaker_.Record(probe, kUnknown, t);  // e.g. the rate limiter refused it
  EXPECT_EQ(breaker_.State(t), CircuitState::kHalfOpen);
  const CircuitBreaker::Permit again = breaker_.TryAcquire(t);
  EXPECT_TRUE(again.probe);
}

TEST_F(CircuitBreakerTest, ALostProbeIsReplacedAfterTheMaximumOpenDuration) {
  Open(kT0);
  const absl::Time t = kT0 + absl::Seconds(5);
  const CircuitBreaker::Permit lost = breaker_.TryAcquire(t);
  ASSERT_TRUE(lost.probe);
  EXPECT_FALSE(breaker_.TryAcquire(t + absl::Seconds(59)).allowed);
  const CircuitBreaker::Permit replacement = breaker_.TryAcquire(t + absl::Seconds(60));
  ASSERT_TRUE(replacement.probe);
  breaker_.Record(lost, kOk, t + absl::Seconds(61));  // Too late: ignored.
  EXPECT_EQ(breaker_.State(t + absl::Seconds(61)), CircuitState::kHalfOpen);
  breaker_.Record(replacement, kOk, t + absl::Seconds(61));
  EXPECT_EQ(breaker_.State(t + absl::Seconds(61)), CircuitState::kClosed);
}

TEST_F(CircuitBreakerTest, OutcomesOfAttemptsAdmittedBeforeOpeningAreIgnored) {
  const CircuitBreaker::Permit early = breaker_.TryAcquire(kT0);
  Open(kT0);
  breaker_.Record(early, kOk, kT0);
  EXPECT_EQ(breaker_.State(kT0), CircuitState::kOpen);
  // And a late failure does not count against the next closed period.
  const absl::Time t = kT0 + absl::Seconds(5);
  breaker_.Record(breaker_.TryAcquire(t), kOk, t);
  const CircuitBreaker::Permit stale = early;
  for (int i = 0; i < 10; ++i) breaker_.Record(stale, kFail, t);
  EXPECT_EQ(breaker_.State(t), CircuitState::kClosed);
}

TEST_F(CircuitBreakerTest, UnknownOutcomesDoNotCount) {
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(Attempt(kT0, kUnknown));
  EXPECT_EQ(breaker_.State(kT0), CircuitState::kClosed);
}

TEST(CircuitBreakerDisabledTest, AlwaysAllows) {
  CircuitBreakerOptions options;
  options.enabled = false;
  CircuitBreaker breaker(options, "u");
  for (int i = 0; i < 100; ++i) {
    const auto permit = breaker.TryAcquire(kT0);
    ASSERT_TRUE(permit.allowed);
    breaker.Record(permit, kFail, kT0);
  }
  EXPECT_EQ(breaker.State(kT0), CircuitState::kClosed);
}

TEST(CircuitBreakerOptionsTest, Validate) {
  EXPECT_TRUE(CircuitBreakerOptions().Validate().ok());
  CircuitBreakerOptions bad;
  bad.consecutive_failures = 0;
  EXPECT_EQ(bad.Validate().message(),
            "circuit breaker consecutive failures must be at least 1, not 0");
  bad = CircuitBreakerOptions();
  bad.failure_ratio = 1.5;
  EXPECT_EQ(bad.Validate().message(), "circuit breaker failure ratio must be in (0, 1], not 1.5");
  bad = CircuitBreakerOptions();
  bad.max_open_duration = absl::Seconds(1);
  EXPECT_EQ(bad.Validate().message(),
            "circuit breaker maximum open duration must be finite and at least the initial one "
            "(5s), not 1s");
}

TEST(CircuitStateTest, Names) {
  EXPECT_EQ(CircuitStateName(CircuitState::kClosed), "closed");
  EXPECT_EQ(CircuitStateName(CircuitState::kOpen), "open");
  EXPECT_EQ(CircuitStateName(CircuitState::kHalfOpen), "half_open");
}

}  // namespace
}  // namespace userpilot::gateway
