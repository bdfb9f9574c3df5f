#include "service/retry/retry_budget.h"

#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

RetryBudgetOptions RatioOnly(double ratio) {
  RetryBudgetOptions options;
  options.retry_ratio = ratio;
  options.min_retries_per_second = 0;
  return options;
}

int RetriesGranted(RetryBudget& budget, absl::Time now, int wanted) {
  int granted = 0;
  for (int i = 0; i < wanted; ++i) granted += budget.TryAcquireRetry(now) ? 1 : 0;
  return granted;
}

TEST(RetryBudgetTest, RetriesAreARatioOfCalls) {
  RetryBudget budget(RatioOnly(0.2));
  for (int i = 0; i < 1000; ++i) budget.RecordCall(kT0);
  EXPECT_EQ(budget.Available(kT0), 200);
  EXPECT_EQ(RetriesGranted(budget, kT0, 3000), 200);
  EXPECT_EQ(budget.Available(kT0), 0);
  // Each new call earns a fifth of a retry.
  for (int i = 0; i < 4; ++i) budget.RecordCall(kT0);
  EXPECT_FALSE(budget.TryAcquireRetry(kT0));
  budget.RecordCall(kT0);
  EXPECT_TRUE(budget.TryAcquireRetry(kT0));
}

TEST(RetryBudgetTest, TheReserveAllowsAFewRetriesWithoutTraffic) {
  RetryBudgetOptions options;  // 0.2, 10/s over 10 s
  RetryBudget budget(options);
  EXPECT_EQ(budget.Available(kT0), 100);
  EXPECT_EQ(RetriesGranted(budget, kT0, 1000), 100);
}

TEST(RetryBudgetTest, ReserveAndRatioAdd) {
  RetryBudget budget(RetryBudgetOptions{});
  for (int i = 0; i < 1000; ++i) budget.RecordCall(kT0);
  EXPECT_EQ(RetriesGranted(budget, kT0, 3000), 300);
}

TEST(RetryBudgetTest, OldTrafficAndRetriesAgeOutOfTheWindow) {
  RetryBudget budget(RatioOnly(0.5));
  for (int i = 0; i < 10; ++i) budget.RecordCall(kT0);
  EXPECT_EQ(RetriesGranted(budget, kT0, 10), 5);
  // Still inside the window: nothing new.
  EXPECT_FALSE(budget.TryAcquireRetry(kT0 + absl::Seconds(8)));
  // Past the window, both the calls and the retries are forgotten.
  EXPECT_EQ(budget.Available(kT0 + absl::Seconds(10)), 0);
  for (int i = 0; i < 4; ++i) budget.RecordCall(kT0 + absl::Seconds(10));
  EXPECT_EQ(RetriesGranted(budget, kT0 + absl::Seconds(10), 10), 2);
}

TEST(RetryBudgetTest, ZeroRatioZeroReserveNeverRetries) {
  RetryBudget budget(RatioOnly(0));
  for (int i = 0; i < 100; ++i) budget.RecordCall(kT0);
  EXPECT_FALSE(budget.TryAcquireRetry(kT0));
}

TEST(RetryBudgetTest, Validate) {
  EXPECT_TRUE(RetryBudgetOptions().Validate().ok());
  RetryBudgetOptions bad;
  bad.retry_ratio = -0.1;
  EXPECT_EQ(bad.Validate().message(), "retry budget ratio must be in [0, 1000], not -0.1");
  bad = RetryBudgetOptions();
  bad.min_retries_per_second = -1;
  EXPECT_EQ(bad.Validate().message(),
            "retry budget minimum per second must be in [0, 1e6], not -1");
  bad = RetryBudgetOptions();
  bad.window = absl::Milliseconds(500);
  EXPECT_EQ(bad.Validate().message(), "retry budget window must be in [1s, 1h], not 500ms");
}

}  // namespace
}  // namespace userpilot::gateway
