#include "service/ratelimit/local_token_source.h"

#include <optional>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "tests/util/ratelimit_test_util.h"

namespace userpilot::gateway {
namespace {

using ::userpilot::gateway::testing::MaxInAnyWindow;

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

RateSpec Spec(int64_t limit, absl::Duration window) { return RateSpec{"test", limit, window}; }

TEST(LocalTokenSourceTest, ValidateNamesTheProblem) {
  EXPECT_TRUE(LocalTokenSource::Validate(Spec(600, absl::Minutes(1))).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(LocalTokenSource::Validate(Spec(0, absl::Minutes(1)))));
  EXPECT_TRUE(absl::IsInvalidArgument(LocalTokenSource::Validate(Spec(5, absl::ZeroDuration()))));
  EXPECT_TRUE(
      absl::IsInvalidArgument(LocalTokenSource::Validate(Spec(5, absl::InfiniteDuration()))));
  EXPECT_TRUE(absl::IsInvalidArgument(
      LocalTokenSource::Validate(Spec(1, absl::Seconds(2)), LocalTokenSourceOptions{2})));
  EXPECT_TRUE(absl::IsInvalidArgument(
      LocalTokenSource::Validate(Spec(5, absl::Seconds(2)), LocalTokenSourceOptions{0})));
  RateSpec negative_slack = Spec(5, absl::Seconds(2));
  negative_slack.tolerance = absl::Milliseconds(-1);
  EXPECT_TRUE(absl::IsInvalidArgument(LocalTokenSource::Validate(negative_slack)));
}

TEST(LocalTokenSourceTest, TakeCompletesInlineWithTheDecision) {
  LocalTokenSource source(Spec(10, absl::Seconds(1)));
  std::optional<absl::StatusOr<TakeResult>> got;
  source.Take(kT0, [&](absl::StatusOr<TakeResult> r) { got = r; });
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->ok());
  EXPECT_TRUE((*got)->granted);
  got.reset();
  source.Take(kT0 + absl::Milliseconds(30), [&](absl::StatusOr<TakeResult> r) { got = r; });
  ASSERT_TRUE(got.has_value() && got->ok());
  EXPECT_FALSE((*got)->granted);
  EXPECT_EQ((*got)->retry_at, kT0 + absl::Milliseconds(100));
  EXPECT_EQ(source.spec().limit, 10);
  EXPECT_EQ(source.interval(), absl::Milliseconds(100));
}

TEST(LocalTokenSourceTest, NeverMoreThanLimitInAnyWindowForRandomArrivals) {
  std::mt19937_64 rng(777);
  for (int64_t limit : {1, 2, 5, 9, 60, 600}) {
    for (int64_t burst : {int64_t{1}, std::max<int64_t>(1, limit / 3)}) {
      const absl::Duration window = limit == 1 ? absl::Seconds(2) : absl::Seconds(limit % 7 + 1);
      LocalTokenSource source(Spec(limit, window), LocalTokenSourceOptions{burst});
      std::exponential_distribution<double> gap(4.0 / absl::ToDoubleNanoseconds(source.interval()));
      std::bernoulli_distribution retry_exactly(0.6), pause(0.002);
      std::vector<absl::Time> granted;
      absl::Time now = kT0;
      for (int i = 0; i < 5000; ++i) {
        now += absl::Nanoseconds(static_cast<int64_t>(gap(rng)));
        if (pause(rng)) source.PauseUntil(now + source.interval() * 3);
        TakeResult result = source.TryTake(now);
        if (!result.granted && retry_exactly(rng)) {
          now = result.retry_at;
          result = source.TryTake(now);
          ASSERT_TRUE(result.granted);
        }
        if (result.granted) granted.push_back(now);
      }
      EXPECT_LE(MaxInAnyWindow(granted, window), limit) << limit << " burst " << burst;
      EXPECT_GT(granted.size(), 100u);
    }
  }
}

TEST(LocalTokenSourceTest, PauseStopsGrantsUntilItEndsWithoutACatchUpBurst) {
  LocalTokenSource source(Spec(10, absl::Seconds(1)));
  ASSERT_TRUE(source.TryTake(kT0).granted);
  source.PauseUntil(kT0 + absl::Seconds(5));
  TakeResult refused = source.TryTake(kT0 + absl::Seconds(1));
  EXPECT_FALSE(refused.granted);
  EXPECT_EQ(refused.retry_at, kT0 + absl::Seconds(5));
  // A shorter pause does not shorten a longer one.
  source.PauseUntil(kT0 + absl::Seconds(2));
  EXPECT_FALSE(source.TryTake(kT0 + absl::Seconds(3)).granted);
  EXPECT_TRUE(source.TryTake(kT0 + absl::Seconds(5)).granted);
  // Five idle seconds are not banked: the next one waits a full interval.
  refused = source.TryTake(kT0 + absl::Seconds(5));
  EXPECT_FALSE(refused.granted);
  EXPECT_EQ(refused.retry_at, kT0 + absl::Seconds(5) + absl::Milliseconds(100));
}

TEST(LocalTokenSourceTest, AvailableIsZeroWhilePausedOrSpaced) {
  LocalTokenSource source(Spec(10, absl::Seconds(1)));
  EXPECT_EQ(source.Available(kT0), 1);
  ASSERT_TRUE(source.TryTake(kT0).granted);
  EXPECT_EQ(source.Available(kT0), 0);
  EXPECT_EQ(source.Available(kT0 + absl::Milliseconds(100)), 1);
  source.PauseUntil(kT0 + absl::Seconds(5));
  EXPECT_EQ(source.Available(kT0 + absl::Seconds(1)), 0);
  EXPECT_EQ(source.Available(kT0 + absl::Seconds(5)), 1);
}

TEST(LocalTokenSourceTest, TimerSlackKeepsTheScheduleWhenTheAskerIsLate) {
  // A pump that always wakes up 5 ms after the time it was told. Without slack each lateness
  // is lost: grants come every 105 ms (191 in 20 s). With 10 ms of slack the 100 ms schedule
  // holds (the first wait ends 5 ms early, then every grant lands on the schedule).
  for (const absl::Duration slack : {absl::ZeroDuration(), absl::Milliseconds(10)}) {
    RateSpec spec = Spec(10, absl::Seconds(1));
    spec.tolerance = slack;
    LocalTokenSource source(spec);
    std::vector<absl::Time> granted;
    absl::Time now = kT0;
    while (now < kT0 + absl::Seconds(20)) {
      TakeResult result = source.TryTake(now);
      if (result.granted) {
        granted.push_back(now);
        now += absl::Microseconds(1);  // The next waiter asks at once ...
      } else {
        now = result.retry_at + absl::Milliseconds(5);  // ... and wakes up late.
      }
    }
    EXPECT_EQ(granted.size(), slack == absl::ZeroDuration() ? 191u : 201u) << slack;
    // Never more than the limit in any window shortened by the slack.
    EXPECT_LE(MaxInAnyWindow(granted, absl::Seconds(1) - slack), 10) << slack;
  }
}

TEST(LocalTokenSourceTest, NeverMoreThanLimitInAnyWindowLessTheSlackForRandomArrivals) {
  std::mt19937_64 rng(4242);
  RateSpec spec = Spec(60, absl::Seconds(6));
  spec.tolerance = absl::Milliseconds(30);
  LocalTokenSource source(spec);
  std::exponential_distribution<double> gap(4.0 / absl::ToDoubleNanoseconds(source.interval()));
  std::bernoulli_distribution retry_exactly(0.6);
  std::vector<absl::Time> granted;
  absl::Time now = kT0;
  for (int i = 0; i < 5000; ++i) {
    now += absl::Nanoseconds(static_cast<int64_t>(gap(rng)));
    TakeResult result = source.TryTake(now);
    if (!result.granted && retry_exactly(rng)) {
      now = result.retry_at;
      result = source.TryTake(now);
      ASSERT_TRUE(result.granted);
    }
    if (result.granted) granted.push_back(now);
  }
  EXPECT_LE(MaxInAnyWindow(granted, absl::Seconds(6) - absl::Milliseconds(30)), 60);
  EXPECT_GT(granted.size(), 100u);
}

TEST(LocalTokenSourceTest, BurstKeepsTheWindowByLoweringTheSustainedRate) {
  // 10 per second with burst 3: three at once, then 8 per second sustained.
  LocalTokenSource source(Spec(10, absl::Seconds(1)), LocalTokenSourceOptions{3});
  EXPECT_EQ(source.interval(), absl::Milliseconds(125));
  std::vector<absl::Time> granted;
  absl::Time now = kT0;
  while (now < kT0 + absl::Seconds(5)) {
    TakeResult result = source.TryTake(now);
    if (result.granted) {
      granted.push_back(now);
    } else {
      now = result.retry_at;
    }
  }
  EXPECT_EQ(granted[0], granted[2]);  // The burst.
  EXPECT_EQ(MaxInAnyWindow(granted, absl::Seconds(1)), 10);
}

}  // namespace
}  // namespace userpilot::gateway
