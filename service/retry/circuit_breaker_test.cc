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
  // One call at `now` with final outcome `health`; false when the breaker refused it.
  bool Call(absl::Time now, UpstreamHealth health) {
    const CircuitBreaker::Permit permit = breaker_.TryAcquire(now);
    if (!permit.allowed) return false;
    breaker_.Record(permit, health, now);
    return true;
  }

  // 50 failed calls: the minimum judged, all failed.
  void Open(absl::Time now) {
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(Call(now, kFail));
    ASSERT_EQ(breaker_.State(now), CircuitState::kOpen);
  }

  // Calls at `now` until one is admitted as a probe; returns how many were refused first.
  int RefusedBeforeProbe(absl::Time now, CircuitBreaker::Permit& probe) {
    for (int refused = 0; refused < 1000; ++refused) {
      probe = breaker_.TryAcquire(now);
      if (probe.allowed) {
        EXPECT_TRUE(probe.probe);
        return refused;
      }
    }
    ADD_FAILURE() << "no probe in 1000 calls";
    return -1;
  }

  CircuitBreakerOptions options_;  // >= 80% of >= 50 calls in 10 s; open 5 s; 10% probe, 10
  CircuitBreaker breaker_{options_, "api.userpilot.test"};
};

TEST_F(CircuitBreakerTest, OpensOnTheFailureRatioOnlyOnceEnoughCallsWereJudged) {
  for (int i = 0; i < 49; ++i) ASSERT_TRUE(Call(kT0, kFail));
  EXPECT_EQ(breaker_.State(kT0), CircuitState::kClosed);  // 49 of 49, below the minimum
  EXPECT_EQ(breaker_.GetSnapshot(kT0).judged_calls, 49);
  EXPECT_EQ(breaker_.GetSnapshot(kT0).failed_calls, 49);
  ASSERT_TRUE(Call(kT0, kFail));
  EXPECT_EQ(breaker_.State(kT0), CircuitState::kOpen);
  EXPECT_FALSE(Call(kT0, kOk));
  EXPECT_EQ(breaker_.GetSnapshot(kT0).times_opened, 1);
  EXPECT_EQ(breaker_.GetSnapshot(kT0).rejected, 1);
}

TEST_F(CircuitBreakerTest, PartialFailureBelowTheRatioNeverOpens) {
  // 3 calls in 4 fail (75% < 80%), for a long time, in long runs of failures.
  for (int i = 0; i < 4000; ++i) {
    const absl::Time now = kT0 + absl::Milliseconds(5 * i);
    ASSERT_TRUE(Call(now, i % 4 == 3 ? kOk : kFail)) << i;
  }
  EXPECT_EQ(breaker_.GetSnapshot(kT0 + absl::Seconds(20)).times_opened, 0);
}

TEST_F(CircuitBreakerTest, TheRatioIsOverTheWindowAndOnlyAFailureOpens) {
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Call(kT0, kOk));
  for (int i = 0; i < 39; ++i) ASSERT_TRUE(Call(kT0, kFail));
  EXPECT_EQ(breaker_.State(kT0), CircuitState::kClosed);  // 39 of 49
  ASSERT_TRUE(Call(kT0, kFail));                          // 40 of 50: 80%
  EXPECT_EQ(breaker_.State(kT0), CircuitState::kOpen);
}

TEST_F(CircuitBreakerTest, OldOutcomesLeaveTheWindow) {
  for (int i = 0; i < 45; ++i) ASSERT_TRUE(Call(kT0, kFail));
  const absl::Time later = kT0 + absl::Seconds(10);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(Call(later, kFail));
  EXPECT_EQ(breaker_.State(later), CircuitState::kClosed);  // Only 10 judged in the window.
  EXPECT_EQ(breaker_.GetSnapshot(later).judged_calls, 10);
}

TEST_F(CircuitBreakerTest, OpenRefusesWithTheTimeUntilHalfOpen) {
  Open(kT0);
  const CircuitBreaker::Permit permit = breaker_.TryAcquire(kT0 + absl::Seconds(2));
  EXPECT_FALSE(permit.allowed);
  EXPECT_EQ(permit.retry_after, absl::Seconds(3));
  EXPECT_FALSE(breaker_.AllowsRetry(kT0 + absl::Seconds(2)));
  const CallStatus error = breaker_.RefusedError(permit);
  EXPECT_EQ(error.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(error.message(),
            "Userpilot (api.userpilot.test) failed repeatedly, so the gateway's circuit breaker "
            "is failing calls fast; retry in 3s");
  EXPECT_EQ(Reason(error), "CIRCUIT_OPEN");
  EXPECT_EQ(Metadata(error)["upstream"], "api.userpilot.test");
  EXPECT_EQ(wire::RetryDelay(error), absl::Seconds(3));
}

TEST_F(CircuitBreakerTest, HalfOpenLetsAShareOfCallsProbe) {
  Open(kT0);
  const absl::Time t = kT0 + absl::Seconds(5);
  EXPECT_EQ(breaker_.State(t), CircuitState::kHalfOpen);
  EXPECT_TRUE(breaker_.AllowsRetry(t));
  int admitted = 0;
  for (int i = 0; i < 100; ++i) {
    const CircuitBreaker::Permit permit = breaker_.TryAcquire(t);
    if (!permit.allowed) {
      EXPECT_EQ(Reason(breaker_.RefusedError(permit)), "CIRCUIT_OPEN");
      continue;
    }
    EXPECT_TRUE(permit.probe);
    ++admitted;  // Probes still in flight: none has reported back.
  }
  EXPECT_EQ(admitted, 10);
  EXPECT_EQ(breaker_.State(t), CircuitState::kHalfOpen);
}

TEST_F(CircuitBreakerTest, HalfOpenClosesOnceEnoughProbesMostlySucceeded) {
  Open(kT0);
  const absl::Time t = kT0 + absl::Seconds(5);
  for (int i = 0; i < 10; ++i) {
    CircuitBreaker::Permit probe;
    ASSERT_GE(RefusedBeforeProbe(t, probe), 0);
    // 7 of 10 fail: 70%, below the 80% that opens.
    breaker_.Record(probe, i < 7 ? kFail : kOk, t);
    if (i < 9) {
      ASSERT_EQ(breaker_.State(t), CircuitState::kHalfOpen) << i;
    }
  }
  EXPECT_EQ(breaker_.State(t), CircuitState::kClosed);
  EXPECT_TRUE(Call(t, kOk));
}

TEST_F(CircuitBreakerTest, HalfOpenReopensForTheSameFixedTimeAsSoonAsProbesCannotPass) {
  Open(kT0);
  absl::Time t = kT0;
  for (int round = 0; round < 3; ++round) {
    t += absl::Seconds(5);
    ASSERT_EQ(breaker_.State(t), CircuitState::kHalfOpen);
    for (int i = 0; i < 8; ++i) {
      CircuitBreaker::Permit probe;
      ASSERT_GE(RefusedBeforeProbe(t, probe), 0);
      breaker_.Record(probe, kFail, t);
    }
    // 8 failed of the 10 that decide: 80% whatever the other two do.
    ASSERT_EQ(breaker_.State(t), CircuitState::kOpen);
    EXPECT_EQ(breaker_.TryAcquire(t).retry_after, absl::Seconds(5)) << "never grows";
  }
  EXPECT_EQ(breaker_.GetSnapshot(t).times_opened, 4);
}

TEST_F(CircuitBreakerTest, OutcomesOfCallsAdmittedBeforeATransitionAreIgnored) {
  const CircuitBreaker::Permit early = breaker_.TryAcquire(kT0);
  ASSERT_TRUE(early.allowed);
  Open(kT0);
  const absl::Time t = kT0 + absl::Seconds(5);
  CircuitBreaker::Permit probe;
  ASSERT_GE(RefusedBeforeProbe(t, probe), 0);
  for (int i = 0; i < 20; ++i) breaker_.Record(early, kFail, t);  // Stale: not a probe.
  EXPECT_EQ(breaker_.State(t), CircuitState::kHalfOpen);
  EXPECT_EQ(breaker_.GetSnapshot(t).failed_calls, 0);
}

TEST_F(CircuitBreakerTest, UnknownOutcomesDoNotCount) {
  // The caller's own deadline, cancellations and the gateway's refusals teach nothing.
  for (int i = 0; i < 500; ++i) ASSERT_TRUE(Call(kT0, kUnknown));
  EXPECT_EQ(breaker_.State(kT0), CircuitState::kClosed);
  EXPECT_EQ(breaker_.GetSnapshot(kT0).judged_calls, 0);
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
  bad.failure_ratio = 1.5;
  EXPECT_EQ(bad.Validate().message(), "circuit breaker failure ratio must be in (0, 1], not 1.5");
  bad = CircuitBreakerOptions();
  bad.min_calls_in_window = 0;
  EXPECT_EQ(bad.Validate().message(),
            "circuit breaker minimum calls in the window must be at least 1, not 0");
  bad = CircuitBreakerOptions();
  bad.open_duration = absl::ZeroDuration();
  EXPECT_EQ(bad.Validate().message(), "circuit breaker open duration must be in (0, 1h], not 0");
  bad = CircuitBreakerOptions();
  bad.half_open_share = 0;
  EXPECT_EQ(bad.Validate().message(), "circuit breaker half-open share must be in (0, 1], not 0");
  bad = CircuitBreakerOptions();
  bad.half_open_probes = 0;
  EXPECT_EQ(bad.Validate().message(), "circuit breaker half-open probes must be at least 1, not 0");
}

TEST(CircuitStateTest, Names) {
  EXPECT_EQ(CircuitStateName(CircuitState::kClosed), "closed");
  EXPECT_EQ(CircuitStateName(CircuitState::kOpen), "open");
  EXPECT_EQ(CircuitStateName(CircuitState::kHalfOpen), "half_open");
}

}  // namespace
}  // namespace userpilot::gateway
