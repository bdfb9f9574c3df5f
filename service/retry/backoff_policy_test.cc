#include "service/retry/backoff_policy.h"

#include <memory>
#include <vector>

#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

// Always the same fraction of the ceiling.
class FixedJitter final : public JitterSource {
 public:
  explicit FixedJitter(double value) : value_(value) {}
  double Uniform() override { return value_; }

 private:
  double value_;
};

TEST(ExponentialBackoffPolicyTest, CeilingGrowsByTheMultiplierUpToTheMaximum) {
  ExponentialBackoffPolicy policy(absl::Milliseconds(100), absl::Seconds(5), 2.0,
                                  std::make_shared<FixedJitter>(0.5));
  std::vector<absl::Duration> got;
  for (int i = 0; i < 9; ++i) got.push_back(policy.OnCompletion());
  const std::vector<absl::Duration> want = {
      absl::Milliseconds(50),   absl::Milliseconds(100),  absl::Milliseconds(200),
      absl::Milliseconds(400),  absl::Milliseconds(800),  absl::Milliseconds(1600),
      absl::Milliseconds(2500), absl::Milliseconds(2500), absl::Milliseconds(2500)};
  EXPECT_EQ(got, want);
}

TEST(ExponentialBackoffPolicyTest, FullJitterStaysWithinZeroAndTheCeiling) {
  auto jitter = MakeSeededJitterSource(42);
  ExponentialBackoffPolicy prototype(absl::Milliseconds(100), absl::Seconds(5), 2.0, jitter);
  absl::Duration min_seen = absl::InfiniteDuration();
  absl::Duration max_seen = absl::ZeroDuration();
  for (int call = 0; call < 200; ++call) {
    auto policy = prototype.Clone();
    absl::Duration ceiling = absl::Milliseconds(100);
    for (int retry = 0; retry < 10; ++retry) {
      const absl::Duration delay = policy->OnCompletion();
      EXPECT_GE(delay, absl::ZeroDuration());
      EXPECT_LT(delay, ceiling);
      if (retry == 9) {
        min_seen = std::min(min_seen, delay);
        max_seen = std::max(max_seen, delay);
      }
      ceiling = std::min(absl::Seconds(5), ceiling * 2);
    }
  }
  // Full jitter really spreads over the whole interval, not just its top.
  EXPECT_LT(min_seen, absl::Milliseconds(500));
  EXPECT_GT(max_seen, absl::Milliseconds(4500));
}

TEST(ExponentialBackoffPolicyTest, SameSeedSameDelaysAndClonesStartOver) {
  ExponentialBackoffPolicy a(absl::Milliseconds(100), absl::Seconds(5), 2.0,
                             MakeSeededJitterSource(7));
  ExponentialBackoffPolicy b(absl::Milliseconds(100), absl::Seconds(5), 2.0,
                             MakeSeededJitterSource(7));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(a.OnCompletion(), b.OnCompletion());
  EXPECT_EQ(a.current_ceiling(), absl::Milliseconds(3200));
  auto clone = a.Clone();
  EXPECT_EQ(static_cast<ExponentialBackoffPolicy&>(*clone).current_ceiling(),
            absl::Milliseconds(100));
}

TEST(ExponentialBackoffPolicyTest, ManyRetriesNeverOverflow) {
  ExponentialBackoffPolicy policy(absl::Milliseconds(100), absl::Seconds(5), 1000.0,
                                  std::make_shared<FixedJitter>(0.999));
  for (int i = 0; i < 1000; ++i) policy.OnCompletion();
  EXPECT_EQ(policy.current_ceiling(), absl::Seconds(5));
  EXPECT_LT(policy.OnCompletion(), absl::Seconds(5));
}

TEST(ExponentialBackoffPolicyTest, Validate) {
  EXPECT_TRUE(
      ExponentialBackoffPolicy::Validate(absl::Milliseconds(100), absl::Seconds(5), 2).ok());
  EXPECT_EQ(ExponentialBackoffPolicy::Validate(absl::ZeroDuration(), absl::Seconds(5), 2).message(),
            "initial backoff must be positive and finite, not 0");
  EXPECT_EQ(ExponentialBackoffPolicy::Validate(absl::Seconds(2), absl::Seconds(1), 2).message(),
            "maximum backoff must be finite and at least the initial backoff (2s), not 1s");
  EXPECT_EQ(ExponentialBackoffPolicy::Validate(absl::Seconds(1), absl::Seconds(1), 0.5).message(),
            "backoff multiplier must be in [1, 1000], not 0.5");
}

}  // namespace
}  // namespace userpilot::gateway
