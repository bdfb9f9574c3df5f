#include "service/metrics/metrics_registry.h"

#include <memory>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;

class FixedCollectable : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::MetricFamily family;
    family.name = "fixed_value";
    family.help = "A fixed gauge.";
    family.type = prometheus::MetricType::Gauge;
    family.metric.emplace_back();
    family.metric.back().gauge.value = 7;
    return {family};
  }
};

TEST(MetricsRegistryTest, HooksRunAtEveryCollectUntilTheirHandleGoes) {
  MetricsRegistry registry;
  prometheus::Gauge& gauge =
      prometheus::BuildGauge().Name("hooked").Help("h").Register(registry.registry()).Add({});
  int calls = 0;
  {
    MetricsRegistry::CollectHook hook = registry.AddCollectHook([&] { gauge.Set(++calls); });
    EXPECT_TRUE(hook.active());
    auto first = registry.Collect();
    ASSERT_NE(FindMetric(first, "hooked"), std::nullopt);
    EXPECT_EQ(FindMetric(first, "hooked")->gauge.value, 1);
    EXPECT_EQ(FindMetric(registry.Collect(), "hooked")->gauge.value, 2);
  }
  registry.Collect();
  EXPECT_EQ(calls, 2);
}

TEST(MetricsRegistryTest, MovedHookStaysRegisteredAndResetIsIdempotent) {
  MetricsRegistry registry;
  int calls = 0;
  MetricsRegistry::CollectHook moved;
  {
    MetricsRegistry::CollectHook hook = registry.AddCollectHook([&] { ++calls; });
    moved = std::move(hook);
    EXPECT_FALSE(hook.active());  // NOLINT(bugprone-use-after-move): checking the moved-from.
  }
  registry.Collect();
  EXPECT_EQ(calls, 1);
  moved.Reset();
  moved.Reset();
  registry.Collect();
  EXPECT_EQ(calls, 1);
}

TEST(MetricsRegistryTest, HookOutlivingTheRegistryIsHarmless) {
  MetricsRegistry::CollectHook hook;
  {
    MetricsRegistry registry;
    hook = registry.AddCollectHook([] {});
  }
  hook.Reset();
  EXPECT_FALSE(hook.active());
}

TEST(MetricsRegistryTest, ExtraCollectablesAreAppendedAndSerialized) {
  MetricsRegistry registry;
  registry.AddCollectable(std::make_shared<FixedCollectable>());
  prometheus::BuildCounter()
      .Name("things_total")
      .Help("Things.")
      .Register(registry.registry())
      .Add({{"kind", "a"}})
      .Increment(3);
  auto families = registry.Collect();
  ASSERT_NE(FindMetric(families, "fixed_value"), std::nullopt);
  EXPECT_EQ(FindMetric(families, "fixed_value")->gauge.value, 7);
  ASSERT_NE(FindMetric(families, "things_total", {{"kind", "a"}}), std::nullopt);
  EXPECT_EQ(FindMetric(families, "things_total", {{"kind", "a"}})->counter.value, 3);
  const std::string text = registry.Serialize();
  EXPECT_THAT(text, HasSubstr("# TYPE things_total counter\n"));
  EXPECT_THAT(text, HasSubstr("things_total{kind=\"a\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("fixed_value 7\n"));
}

TEST(MetricsRegistryTest, FindMetricMatchesLabelsExactly) {
  MetricsRegistry registry;
  auto& family = prometheus::BuildCounter().Name("c_total").Help("c").Register(registry.registry());
  family.Add({{"a", "1"}, {"b", "2"}}).Increment();
  auto families = registry.Collect();
  EXPECT_NE(FindMetric(families, "c_total", {{"a", "1"}, {"b", "2"}}), std::nullopt);
  EXPECT_EQ(FindMetric(families, "c_total", {{"a", "1"}}), std::nullopt);
  EXPECT_EQ(FindMetric(families, "c_total", {{"a", "1"}, {"b", "3"}}), std::nullopt);
  EXPECT_EQ(FindMetric(families, "other_total", {{"a", "1"}, {"b", "2"}}), std::nullopt);
}

TEST(SetCounterToTest, MovesUpNeverDown) {
  prometheus::Counter counter;
  SetCounterTo(counter, 5);
  EXPECT_EQ(counter.Value(), 5);
  SetCounterTo(counter, 8);
  EXPECT_EQ(counter.Value(), 8);
  SetCounterTo(counter, 2);  // A component restarted its count: the counter stays.
  EXPECT_EQ(counter.Value(), 8);
}

}  // namespace
}  // namespace userpilot::gateway
