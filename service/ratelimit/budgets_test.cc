// The gateway's budgets: defaults, the specs their sources get, and start-up errors.
#include "service/ratelimit/budgets.h"

#include <memory>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "service/ratelimit/local_token_source.h"
#include "tests/mocks/fake_scheduler.h"

namespace userpilot::gateway {
namespace {

TEST(BudgetsTest, DefaultsAreUserpilotsDocumentedLimits) {
  const RateLimitOptions options;
  EXPECT_EQ(options.identify.rate.name, "identify");
  EXPECT_EQ(options.identify.rate.limit, 600);
  EXPECT_EQ(options.identify.rate.window, absl::Minutes(1));
  EXPECT_EQ(options.track.rate.limit, 600);
  EXPECT_EQ(options.track.rate.window, absl::Minutes(1));
  EXPECT_EQ(options.deletes.rate.limit, 1);
  EXPECT_EQ(options.deletes.rate.window, absl::Seconds(2));
  EXPECT_EQ(options.job_reads.rate.limit, 120);
  EXPECT_EQ(options.job_lanes.max_waiting, 4u);
  EXPECT_EQ(options.limiter.max_upstream_pause, absl::Minutes(5));
  EXPECT_TRUE(options.Validate().ok());
}

TEST(BudgetsTest, FactoryGetsEachSpecWithTheSpacingMarginAndThePacingSlack) {
  FakeScheduler scheduler;
  std::vector<RateSpec> specs;
  auto budgets = MakeBudgets(RateLimitOptions(), scheduler, [&](const RateSpec& spec) {
    specs.push_back(spec);
    return std::make_unique<LocalTokenSource>(spec);
  });
  ASSERT_TRUE(budgets.ok()) << budgets.status();
  ASSERT_EQ(specs.size(), 4u);
  EXPECT_EQ(specs[0].name, "identify");
  EXPECT_EQ(specs[0].window, absl::Minutes(1) + absl::Milliseconds(100));
  EXPECT_EQ(specs[0].tolerance, kPacingSlack);
  EXPECT_EQ(specs[2].name, "delete");
  EXPECT_EQ(specs[2].window, absl::Milliseconds(2100));
  EXPECT_EQ(budgets->identify->name(), "identify");
  EXPECT_EQ(budgets->deletes->Stats().configured_limit, 1);
  EXPECT_EQ(budgets->For(BudgetId::kJobRead)->name(), "job_read");
  // Bulk identify and imports are job lanes, not rates.
  EXPECT_EQ(budgets->For(BudgetId::kBulk), nullptr);
  EXPECT_EQ(budgets->For(BudgetId::kImports), nullptr);
}

TEST(BudgetsTest, PacingSlackIsAtMostAQuarterOfThePace) {
  FakeScheduler scheduler;
  RateLimitOptions options;
  options.spacing_margin = absl::ZeroDuration();
  options.identify.rate = {"identify", 100, absl::Milliseconds(1000)};  // Pace 10 ms.
  std::vector<RateSpec> specs;
  ASSERT_TRUE(MakeBudgets(options, scheduler, [&](const RateSpec& spec) {
                specs.push_back(spec);
                return std::make_unique<LocalTokenSource>(spec);
              }).ok());
  EXPECT_EQ(specs[0].tolerance, absl::Microseconds(2500));
  EXPECT_EQ(specs[1].tolerance, kPacingSlack);  // track: 600/1m, a pace of 100 ms.
}

TEST(BudgetsTest, InvalidOptionsAndNullSourcesAreStartupErrors) {
  FakeScheduler scheduler;
  RateLimitOptions options;
  options.track.rate.limit = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(MakeBudgets(options, scheduler).status()));
  options = RateLimitOptions();
  options.job_reads.max_queue = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(options.Validate()));
  options = RateLimitOptions();
  options.job_lanes.max_waiting = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(options.Validate()));
  options = RateLimitOptions();
  options.limiter.decrease_factor = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(options.Validate()));
  options = RateLimitOptions();
  options.limiter.max_upstream_pause = absl::InfiniteDuration();
  EXPECT_TRUE(absl::IsInvalidArgument(options.Validate()));
  options = RateLimitOptions();
  options.spacing_margin = -absl::Seconds(1);
  EXPECT_TRUE(absl::IsInvalidArgument(options.Validate()));
  EXPECT_TRUE(absl::IsInternal(MakeBudgets(RateLimitOptions(), scheduler, [](const RateSpec&) {
                                 return std::unique_ptr<TokenSource>();
                               }).status()));
}

TEST(BudgetsTest, ShutdownAnswersEveryBudgetsWaitingCalls) {
  FakeScheduler scheduler;
  RateLimitOptions options;
  options.spacing_margin = absl::ZeroDuration();
  auto budgets = MakeBudgets(options, scheduler);
  ASSERT_TRUE(budgets.ok());
  int admitted = 0;
  int unavailable = 0;
  for (const auto& budget : budgets->All()) {
    // Spend the window (admitted inside Acquire()), then two calls that wait.
    const int64_t limit = budget->Stats().configured_limit;
    for (int64_t i = 0; i < limit + 2; ++i) {
      budget->Acquire("a", absl::InfiniteFuture(), [&](CallStatus status) {
        if (status.ok()) ++admitted;
        if (absl::IsUnavailable(status.status())) ++unavailable;
      });
    }
  }
  EXPECT_EQ(admitted, 600 + 600 + 1 + 120);
  budgets->Shutdown();
  EXPECT_EQ(unavailable, 8);
}

}  // namespace
}  // namespace userpilot::gateway
