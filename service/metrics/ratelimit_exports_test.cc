#include "gtest/gtest.h"
#include "service/metrics/component_exports.h"
#include "service/ratelimit/budgets.h"
#include "service/ratelimit/fair_limiter.h"
#include "service/ratelimit/job_lane.h"
#include "tests/mocks/fake_scheduler.h"
#include "tests/mocks/mock_userpilot_stub.h"

namespace userpilot::gateway {
namespace {

TEST(ToBudgetSnapshotTest, MapsEveryField) {
  FairLimiterStats stats;
  stats.budget = "delete";
  stats.configured_limit = 1;
  stats.window = absl::Seconds(2);
  stats.current_limit = 0.5;
  stats.queued = 3;
  stats.callers_waiting = 2;
  stats.paused = true;
  stats.admitted_without_wait = 10;
  stats.admitted_after_wait = 4;
  stats.rejected_queue_full = 1;
  stats.rejected_caller_cap = 2;
  stats.rejected_wait_exceeds_deadline = 3;
  stats.pushed_out = 4;
  stats.deadline_exceeded = 5;
  stats.source_errors = 6;
  stats.cancelled_by_shutdown = 7;
  stats.upstream_rate_limited = 8;
  stats.displaced = 9;
  stats.upstream_pauses_capped = 10;
  const BudgetSnapshot s = ToBudgetSnapshot(stats);
  EXPECT_EQ(s.budget, "delete");
  EXPECT_DOUBLE_EQ(s.limit_per_second, 0.5);
  EXPECT_DOUBLE_EQ(s.effective_limit_per_second, 0.25);
  EXPECT_LT(s.tokens_available, 0);
  EXPECT_EQ(s.queued, 3u);
  EXPECT_EQ(s.callers_waiting, 2u);
  EXPECT_TRUE(s.paused);
  EXPECT_EQ(s.admitted_immediately, 10u);
  EXPECT_EQ(s.admitted_after_wait, 4u);
  const std::vector<std::pair<std::string, uint64_t>> want = {
      {"queue_full", 1}, {"caller_queue_full", 2}, {"wait_exceeds_deadline", 3}, {"pushed_out", 4},
      {"displaced", 9},  {"deadline_reached", 5},  {"source_error", 6},          {"shutdown", 7}};
  EXPECT_EQ(s.rejections, want);
  EXPECT_EQ(s.upstream_rate_limited, 8u);
  EXPECT_EQ(s.upstream_pauses_capped, 10u);
  for (const auto& [reason, count] : s.rejections) {
    EXPECT_NE(std::find(std::begin(kBudgetRejectReasons), std::end(kBudgetRejectReasons), reason),
              std::end(kBudgetRejectReasons))
        << reason;
  }
}

TEST(ExportBudgetsTest, EveryBudgetAppearsAtScrape) {
  FakeScheduler scheduler;
  auto budgets = MakeBudgets(RateLimitOptions(), scheduler);
  ASSERT_TRUE(budgets.ok()) << budgets.status();
  MetricsRegistry registry;
  BudgetMetrics metrics(registry.registry());
  {
    MetricsRegistry::CollectHook hook = ExportBudgets(registry, metrics, *budgets);
    const auto families = registry.Collect();
    for (const char* budget : {"identify", "track", "delete", "job_read"}) {
      const auto limit =
          FindMetric(families, "userpilot_gateway_budget_limit_per_second", {{"budget", budget}});
      ASSERT_TRUE(limit.has_value()) << budget;
      EXPECT_GT(limit->gauge.value, 0) << budget;
      EXPECT_TRUE(FindMetric(families, "userpilot_gateway_budget_queued", {{"budget", budget}})
                      .has_value());
    }
  }
  budgets->Shutdown();
}

TEST(ToJobLaneSnapshotTest, MapsEveryField) {
  JobLaneStats stats;
  stats.lane = "imports";
  stats.waiting = 3;
  stats.max_waiting = 4;
  stats.remembered_job = "import:jobs:1";
  stats.sent = 10;
  stats.waited = 4;
  stats.refused_lane_full = 1;
  stats.refused_deadline = 2;
  stats.refused_job_unfinished = 3;
  stats.conflicts = 5;
  JobLaneSnapshot s = ToJobLaneSnapshot(stats);
  EXPECT_EQ(s.lane, "imports");
  EXPECT_EQ(s.waiting, 3u);
  EXPECT_EQ(s.max_waiting, 4u);
  EXPECT_TRUE(s.job_running);
  EXPECT_EQ(s.admitted_immediately, 6u);
  EXPECT_EQ(s.admitted_after_wait, 4u);
  const std::vector<std::pair<std::string, uint64_t>> want = {
      {"queue_full", 1}, {"deadline_reached", 2}, {"wait_exceeds_deadline", 3}};
  EXPECT_EQ(s.rejections, want);
  EXPECT_EQ(s.conflicts, 5u);
  for (const auto& [reason, count] : s.rejections) {
    EXPECT_NE(std::find(std::begin(kJobLaneRejectReasons), std::end(kJobLaneRejectReasons), reason),
              std::end(kJobLaneRejectReasons))
        << reason;
  }
  stats.remembered_job.clear();
  EXPECT_FALSE(ToJobLaneSnapshot(stats).job_running);
}

TEST(ExportJobLanesTest, BothLanesAppearAtScrape) {
  FakeScheduler scheduler;
  auto mock = std::make_shared<::testing::NiceMock<MockUserpilotStub>>();
  JobLaneOptions options;
  options.max_waiting = 7;
  JobLaneStub lanes(mock, scheduler, options);
  MetricsRegistry registry;
  JobLaneMetrics metrics(registry.registry());
  MetricsRegistry::CollectHook hook = ExportJobLanes(registry, metrics, lanes);
  const auto families = registry.Collect();
  for (const char* lane : {"bulk", "imports"}) {
    const auto bound =
        FindMetric(families, "userpilot_gateway_job_lane_max_waiting", {{"lane", lane}});
    ASSERT_TRUE(bound.has_value()) << lane;
    EXPECT_EQ(bound->gauge.value, 7) << lane;
    const auto waiting =
        FindMetric(families, "userpilot_gateway_job_lane_waiting", {{"lane", lane}});
    ASSERT_TRUE(waiting.has_value()) << lane;
    EXPECT_EQ(waiting->gauge.value, 0) << lane;
    EXPECT_TRUE(FindMetric(families, "userpilot_gateway_job_lane_rejections_total",
                           {{"lane", lane}, {"reason", "queue_full"}})
                    .has_value())
        << lane;
  }
}

}  // namespace
}  // namespace userpilot::gateway
