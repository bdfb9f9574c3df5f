#include "gtest/gtest.h"
#include "service/delivery/delivery_store.h"
#include "service/metrics/component_exports.h"
#include "service/metrics/metrics_registry.h"

namespace userpilot::gateway {
namespace {

TEST(ToDeliverySnapshotTest, MapsTheBacklogAndWhatReplayDropped) {
  const absl::Time now = absl::FromUnixSeconds(1000);
  DeliveryStoreStats stats;
  stats.pending = 3;
  stats.oldest_pending_enqueue_time = now - absl::Seconds(90);
  stats.dead = 2;
  stats.torn_tail_bytes = 57;
  stats.corrupt_regions = 1;
  stats.corrupt_bytes = 300;
  const DeliverySnapshot s = ToDeliverySnapshot(stats, now);
  EXPECT_EQ(s.backlog, 3u);
  EXPECT_EQ(s.backlog_age_seconds, 90);
  EXPECT_EQ(s.dead_letters, 2u);
  EXPECT_EQ(s.replay_torn_tail_bytes, 57u);
  EXPECT_EQ(s.replay_corrupt_bytes, 300u);
}

TEST(DeliveryMetricsTest, ReplayDamageIsExportedByKind) {
  MetricsRegistry registry;
  DeliveryMetrics metrics(registry.registry());
  metrics.Enable();
  DeliverySnapshot s;
  metrics.Update(s);
  // Opened clean: both series at zero, so an alert can compare.
  for (const char* damage : {"torn_tail", "corrupt"}) {
    auto metric = FindMetric(registry.Collect(), "userpilot_gateway_delivery_replay_dropped_bytes",
                             {{"damage", damage}});
    ASSERT_NE(metric, std::nullopt) << damage;
    EXPECT_EQ(metric->gauge.value, 0) << damage;
  }
  s.replay_torn_tail_bytes = 57;
  s.replay_corrupt_bytes = 300;
  metrics.Update(s);
  EXPECT_EQ(FindMetric(registry.Collect(), "userpilot_gateway_delivery_replay_dropped_bytes",
                       {{"damage", "torn_tail"}})
                ->gauge.value,
            57);
  EXPECT_EQ(FindMetric(registry.Collect(), "userpilot_gateway_delivery_replay_dropped_bytes",
                       {{"damage", "corrupt"}})
                ->gauge.value,
            300);
}

TEST(DeliveryMetricsTest, TheBulkCheckIsExportedByResultAndRelease) {
  MetricsRegistry registry;
  DeliveryMetrics metrics(registry.registry());
  metrics.Enable();
  DeliverySnapshot s;
  s.bulk_gate_calls = 7;
  metrics.Update(s);
  EXPECT_EQ(
      FindMetric(registry.Collect(), "userpilot_gateway_delivery_bulk_gate_calls", {})->gauge.value,
      7);
  // Every series from the start, at zero.
  for (const char* result : {"no_job", "job_running", "failed"}) {
    auto metric = FindMetric(registry.Collect(), "userpilot_gateway_delivery_bulk_checks_total",
                             {{"result", result}});
    ASSERT_NE(metric, std::nullopt) << result;
    EXPECT_EQ(metric->counter.value, 0) << result;
  }
  metrics.RecordBulkCheck("job_running");
  metrics.RecordBulkCheck("job_running");
  metrics.RecordGateReleased("deadline", 3);
  EXPECT_EQ(FindMetric(registry.Collect(), "userpilot_gateway_delivery_bulk_checks_total",
                       {{"result", "job_running"}})
                ->counter.value,
            2);
  EXPECT_EQ(FindMetric(registry.Collect(), "userpilot_gateway_delivery_bulk_gate_released_total",
                       {{"why", "deadline"}})
                ->counter.value,
            3);
  EXPECT_EQ(FindMetric(registry.Collect(), "userpilot_gateway_delivery_bulk_gate_released_total",
                       {{"why", "no_job"}})
                ->counter.value,
            0);
}

}  // namespace
}  // namespace userpilot::gateway
