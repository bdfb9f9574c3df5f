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
  RetryBudgetOptions options;  // 0.2, 1/s over 10 s
  RetryBudget budget(options);
  EXPECT_EQ(budget.Available(kT0), 10);
  EXPECT_EQ(RetriesGranted(budget, kT0, 1000), 10);
}

TEST(RetryBudgetTest, AQuietCallerCanRetryEveryFailure) {
  // One call a second, each failing once: the ratio alone would allow one retry in five calls;
  // the reserve lets every one of them retry, for as long as it goes on.
  RetryBudget with_reserve(RetryBudgetOptions{});
  RetryBudget ratio_only(RatioOnly(0.2));
  int retried = 0;
  int retried_by_ratio = 0;
  for (int i = 0; i < 60; ++i) {
    const absl::Time now = kT0 + absl::Seconds(i);
    with_reserve.RecordCall(now);
    ratio_only.RecordCall(now);
    retried += with_reserve.TryAcquireRetry(now) ? 1 : 0;
    retried_by_ratio += ratio_only.TryAcquireRetry(now) ? 1 : 0;
  }
  EXPECT_EQ(retried, 60);
  EXPECT_LE(retried_by_ratio, 13);
}

TEST(RetryBudgetTest, TheReserveStaysSmallBesideUserpilotsLimits) {
  // Without traffic, at most 10 retries in any 10 s: a failing trickle cannot multiply itself.
  RetryBudget budget(RetryBudgetOptions{});
  int granted = 0;
  for (int i = 0; i < 100; ++i) {
    granted += RetriesGranted(budget, kT0 + absl::Milliseconds(100 * i), 10);
  }
  EXPECT_EQ(granted, 10);  // The reserve of the window, taken at once and not renewed in it.
}

TEST(RetryBudgetTest, ReserveAndRatioAdd) {
  RetryBudget budget(RetryBudgetOptions{});
  for (int i = 0; i < 1000; ++i) budget.RecordCall(kT0);
  EXPECT_EQ(RetriesGranted(budget, kT0, 3000), 210);
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
