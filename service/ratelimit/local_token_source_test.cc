#include "service/ratelimit/local_token_source.h"

#include <optional>
#include <vector>

#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

RateSpec Spec(int64_t limit, absl::Duration window) { return {"identify", limit, window}; }

TEST(LocalTokenSourceTest, ValidateNamesTheProblem) {
  EXPECT_TRUE(LocalTokenSource::Validate(Spec(600, absl::Minutes(1))).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(LocalTokenSource::Validate(Spec(0, absl::Seconds(1)))));
  EXPECT_TRUE(absl::IsInvalidArgument(LocalTokenSource::Validate(Spec(10, absl::ZeroDuration()))));
  EXPECT_TRUE(
      absl::IsInvalidArgument(LocalTokenSource::Validate(Spec(10, absl::InfiniteDuration()))));
  RateSpec slack = Spec(10, absl::Seconds(1));
  slack.tolerance = absl::Seconds(1);
  const absl::Status bad = LocalTokenSource::Validate(slack);
  EXPECT_TRUE(absl::IsInvalidArgument(bad));
  EXPECT_NE(bad.message().find("tolerance"), absl::string_view::npos) << bad;
}

TEST(LocalTokenSourceTest, TakeCompletesInlineWithUpToTheWantedPermits) {
  LocalTokenSource source(Spec(10, absl::Seconds(1)));
  std::optional<absl::StatusOr<TakeResult>> got;
  source.Take(kT0, TakeKind::kImmediate, 6, [&](absl::StatusOr<TakeResult> r) { got = r; });
  ASSERT_TRUE(got.has_value());  // Inline.
  ASSERT_TRUE(got->ok());
  EXPECT_EQ((*got)->granted, 6);
  got.reset();
  source.Take(kT0, TakeKind::kImmediate, 6, [&](absl::StatusOr<TakeResult> r) { got = r; });
  ASSERT_TRUE(got.has_value() && got->ok());
  EXPECT_EQ((*got)->granted, 4);  // What the window had left.
  EXPECT_EQ((*got)->retry_at, kT0 + absl::Seconds(1));
}

TEST(LocalTokenSourceTest, DecidesOnTheCallersThreadAndPlansExactly) {
  LocalTokenSource source(Spec(10, absl::Seconds(1)));
  std::optional<TakeResult> now = source.TryTakeNow(kT0, TakeKind::kImmediate);
  ASSERT_TRUE(now.has_value());
  EXPECT_EQ(now->granted, 1);
  std::vector<absl::Time> plan;
  ASSERT_TRUE(source.Plan(kT0, 3, kT0, absl::ZeroDuration(), &plan));
  ASSERT_EQ(plan.size(), 3u);
  // The idle spell before the first ask earned credit: the three go at once.
  EXPECT_EQ(plan, (std::vector<absl::Time>{kT0, kT0, kT0}));
  EXPECT_EQ(source.Available(kT0), 9);
}

TEST(LocalTokenSourceTest, PauseStopsGrantsAndPlansUntilItEnds) {
  LocalTokenSource source(Spec(10, absl::Seconds(1)));
  source.PauseUntil(kT0 + absl::Seconds(3));
  source.PauseUntil(kT0 + absl::Seconds(2));  // An earlier end does not shorten it.
  const TakeResult paused = source.TryTake(kT0 + absl::Seconds(1));
  EXPECT_EQ(paused.granted, 0);
  EXPECT_EQ(paused.retry_at, kT0 + absl::Seconds(3));
  EXPECT_EQ(source.Available(kT0 + absl::Seconds(1)), 0);
  std::vector<absl::Time> plan;
  ASSERT_TRUE(source.Plan(kT0, 1, kT0, absl::ZeroDuration(), &plan));
  EXPECT_EQ(plan.front(), kT0 + absl::Seconds(3));
  EXPECT_EQ(source.TryTake(kT0 + absl::Seconds(3)).granted, 1);
}

TEST(LocalTokenSourceTest, SpecIsTheConfiguredOneAndIntervalThePace) {
  RateSpec spec = Spec(600, absl::Minutes(1));
  spec.tolerance = absl::Milliseconds(10);
  LocalTokenSource source(spec);
  EXPECT_EQ(source.spec().limit, 600);
  EXPECT_EQ(source.spec().tolerance, absl::Milliseconds(10));
  EXPECT_EQ(source.interval(), absl::Milliseconds(100));
}

}  // namespace
}  // namespace userpilot::gateway
