#include <memory>

#include "gtest/gtest.h"
#include "service/metrics/component_exports.h"
#include "service/retry/retrying_stub.h"
#include "tests/mocks/fake_scheduler.h"
#include "tests/mocks/mock_userpilot_stub.h"

namespace userpilot::gateway {
namespace {

TEST(ToRetrySnapshotTest, MapsCausesStopReasonsAndTheCircuitScale) {
  RetryStats stats;
  stats.calls = 20;
  stats.retries_by_cause[static_cast<size_t>(RetryCause::kUpstreamRateLimited)] = 3;
  stats.failed_by_stop_reason[static_cast<size_t>(StopReason::kDeadline)] = 2;
  stats.recovered = 1;
  stats.circuit.times_opened = 4;
  stats.circuit.rejected = 9;
  for (auto [state, value] : {std::pair{CircuitState::kClosed, CircuitStateValue::kClosed},
                              std::pair{CircuitState::kHalfOpen, CircuitStateValue::kHalfOpen},
                              std::pair{CircuitState::kOpen, CircuitStateValue::kOpen}}) {
    stats.circuit.state = state;
    EXPECT_EQ(ToRetrySnapshot(stats).circuit_state, value);
  }
  const RetrySnapshot s = ToRetrySnapshot(stats);
  EXPECT_EQ(s.calls, 20u);
  EXPECT_EQ(s.recovered, 1u);
  EXPECT_EQ(s.circuit_opened, 4u);
  EXPECT_EQ(s.circuit_rejected, 9u);
  // Every name the retry layer uses is a known label value (none would fold into "other").
  ASSERT_EQ(s.retries_by_reason.size(), kRetryCauseCount);
  for (const auto& [reason, count] : s.retries_by_reason) {
    EXPECT_NE(std::find(std::begin(kRetryReasons), std::end(kRetryReasons), reason),
              std::end(kRetryReasons))
        << reason;
    EXPECT_EQ(count, reason == "upstream_rate_limited" ? 3u : 0u) << reason;
  }
  ASSERT_EQ(s.gave_up_by_reason.size(), kStopReasonCount);
  for (const auto& [reason, count] : s.gave_up_by_reason) {
    EXPECT_NE(std::find(std::begin(kRetryStopReasons), std::end(kRetryStopReasons), reason),
              std::end(kRetryStopReasons))
        << reason;
    EXPECT_EQ(count, reason == "deadline" ? 2u : 0u) << reason;
  }
}

TEST(ExportRetriesTest, ReadsTheStubAtScrape) {
  FakeScheduler scheduler;
  RetryingStub stub(std::make_shared<MockUserpilotStub>(), scheduler, RetryOptions());
  MetricsRegistry registry;
  RetryMetrics metrics(registry.registry());
  MetricsRegistry::CollectHook hook = ExportRetries(registry, metrics, stub);
  const auto families = registry.Collect();
  const auto state = FindMetric(families, "userpilot_gateway_circuit_state");
  ASSERT_TRUE(state.has_value());
  EXPECT_EQ(state->gauge.value, 0);
  EXPECT_TRUE(
      FindMetric(families, "userpilot_gateway_retries_total", {{"reason", "transport_failure"}})
          .has_value());
  hook.Reset();
}

}  // namespace
}  // namespace userpilot::gateway
