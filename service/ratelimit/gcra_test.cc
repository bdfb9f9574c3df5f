#include "service/ratelimit/gcra.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/util/ratelimit_test_util.h"

namespace userpilot::gateway {
namespace {

using ::userpilot::gateway::testing::MaxInAnyWindow;

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

TEST(GcraTest, IntervalRoundsUpSoLimitIntervalsCoverTheWindow) {
  EXPECT_EQ(Gcra::IntervalFor(absl::Minutes(1), 600), absl::Milliseconds(100));
  EXPECT_EQ(Gcra::IntervalFor(absl::Seconds(2), 1), absl::Seconds(2));
  for (int64_t limit : {3, 7, 9, 11, 13, 599, 601, 997}) {
    for (absl::Duration window : {absl::Seconds(1), absl::Milliseconds(997), absl::Minutes(1)}) {
      const absl::Duration interval = Gcra::IntervalFor(window, limit);
      EXPECT_GE(interval * limit, window) << limit << " per " << window;
      EXPECT_LT(interval * limit, window + absl::Nanoseconds(limit)) << limit << " per " << window;
    }
  }
  // A burst is paid for with sustained rate: b back to back, then limit - b + 1 per window.
  EXPECT_EQ(Gcra::IntervalFor(absl::Seconds(10), 10, 3), absl::Seconds(10) / 8);
}

TEST(GcraTest, SpacesRequestsAndNamesTheRetryTime) {
  Gcra gcra(absl::Milliseconds(100));
  absl::Time retry_at;
  EXPECT_TRUE(gcra.TryTake(kT0));
  EXPECT_FALSE(gcra.TryTake(kT0 + absl::Milliseconds(99), &retry_at));
  EXPECT_EQ(retry_at, kT0 + absl::Milliseconds(100));
  EXPECT_TRUE(gcra.TryTake(kT0 + absl::Milliseconds(100)));
  // Idle time is not banked: after a long pause, still one at a time.
  EXPECT_TRUE(gcra.TryTake(kT0 + absl::Seconds(10)));
  EXPECT_FALSE(gcra.TryTake(kT0 + absl::Seconds(10)));
}

TEST(GcraTest, BurstLetsSeveralThroughBackToBack) {
  Gcra gcra(absl::Milliseconds(100), /*burst=*/3);
  EXPECT_TRUE(gcra.TryTake(kT0));
  EXPECT_TRUE(gcra.TryTake(kT0));
  EXPECT_TRUE(gcra.TryTake(kT0));
  absl::Time retry_at;
  EXPECT_FALSE(gcra.TryTake(kT0, &retry_at));
  EXPECT_EQ(retry_at, kT0 + absl::Milliseconds(100));
}

TEST(GcraTest, AvailableCountsWhatWouldConformNow) {
  Gcra single(absl::Milliseconds(100));
  EXPECT_EQ(single.Available(kT0), 1);
  ASSERT_TRUE(single.TryTake(kT0));
  EXPECT_EQ(single.Available(kT0 + absl::Milliseconds(99)), 0);
  EXPECT_EQ(single.Available(kT0 + absl::Milliseconds(100)), 1);
  EXPECT_EQ(single.Available(kT0 + absl::Seconds(10)), 1);  // Idle time is not banked.
  Gcra burst(absl::Milliseconds(100), /*burst=*/3);
  EXPECT_EQ(burst.Available(kT0), 3);
  ASSERT_TRUE(burst.TryTake(kT0));
  EXPECT_EQ(burst.Available(kT0), 2);
  ASSERT_TRUE(burst.TryTake(kT0));
  ASSERT_TRUE(burst.TryTake(kT0));
  EXPECT_EQ(burst.Available(kT0), 0);
  EXPECT_EQ(burst.Available(kT0 + absl::Milliseconds(250)), 2);
}

// The property the header proves: for random arrival patterns, any window holds at most
// `limit` granted requests, with and without burst, across slower interval changes.
TEST(GcraTest, NeverMoreThanLimitInAnyWindowForRandomArrivals) {
  std::mt19937_64 rng(12345);
  struct Case {
    int64_t limit;
    absl::Duration window;
    int64_t burst;
  };
  const std::vector<Case> cases = {{1, absl::Seconds(2), 1},    {3, absl::Seconds(1), 1},
                                   {3, absl::Seconds(1), 2},    {7, absl::Milliseconds(997), 1},
                                   {10, absl::Seconds(1), 4},   {600, absl::Minutes(1), 1},
                                   {600, absl::Minutes(1), 20}, {13, absl::Seconds(3), 13}};
  for (const Case& c : cases) {
    for (int pattern = 0; pattern < 12; ++pattern) {
      const absl::Duration interval = Gcra::IntervalFor(c.window, c.limit, c.burst);
      Gcra gcra(interval, c.burst);
      // Mean gap between arrivals: from 1/20 of the interval (overload) to 3 intervals.
      std::exponential_distribution<double> gap(
          1.0 / (absl::ToDoubleNanoseconds(interval) * (0.05 + 0.15 * pattern)));
      std::bernoulli_distribution same_instant(0.2), retry_exactly(0.5), slow_down(0.01);
      std::vector<absl::Time> granted;
      absl::Time now = kT0;
      for (int i = 0; i < 2500; ++i) {
        if (!same_instant(rng)) now += absl::Nanoseconds(static_cast<int64_t>(gap(rng)));
        absl::Time retry_at;
        if (gcra.TryTake(now, &retry_at)) {
          granted.push_back(now);
        } else if (retry_exactly(rng)) {
          now = retry_at;  // A waiter asking again exactly when told: the tightest packing.
          ASSERT_TRUE(gcra.TryTake(now));
          granted.push_back(now);
        }
        // Adaptive control only ever slows a budget from its safe interval.
        if (slow_down(rng)) gcra.SetInterval(interval * (1 + pattern % 3));
      }
      ASSERT_GT(granted.size(), 10u);
      EXPECT_LE(MaxInAnyWindow(granted, c.window), c.limit)
          << c.limit << " per " << c.window << " burst " << c.burst << " pattern " << pattern;
    }
  }
}

TEST(GcraTest, SaturatedBudgetIsUsedToTheLastRequest) {
  for (int64_t limit : {1, 3, 7, 600}) {
    const absl::Duration window = absl::Seconds(limit == 1 ? 2 : 60);
    Gcra gcra(Gcra::IntervalFor(window, limit));
    std::vector<absl::Time> granted;
    absl::Time now = kT0;
    while (now < kT0 + 10 * window) {
      absl::Time retry_at;
      if (gcra.TryTake(now, &retry_at)) {
        granted.push_back(now);
      } else {
        now = retry_at;
      }
    }
    EXPECT_EQ(MaxInAnyWindow(granted, window), limit);
    // Within one nanosecond per request of the ideal: 10 windows hold 10 * limit.
    EXPECT_GE(static_cast<int64_t>(granted.size()), 10 * limit - 1) << limit;
  }
}

}  // namespace
}  // namespace userpilot::gateway
