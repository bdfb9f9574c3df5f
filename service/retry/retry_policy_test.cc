#include "service/retry/retry_policy.h"

#include <memory>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

TEST(LimitedAttemptsRetryPolicyTest, CountsTheFirstAttempt) {
  LimitedAttemptsRetryPolicy prototype(4);
  auto policy = prototype.Clone();
  policy->OnCallStart(kT0);
  EXPECT_TRUE(policy->OnFailure(kT0));   // 1 failed -> attempt 2
  EXPECT_TRUE(policy->OnFailure(kT0));   // 2 failed -> attempt 3
  EXPECT_TRUE(policy->OnFailure(kT0));   // 3 failed -> attempt 4
  EXPECT_FALSE(policy->OnFailure(kT0));  // 4 failed: done
  EXPECT_FALSE(policy->OnFailure(kT0));

  auto fresh = prototype.Clone();  // Clones share no history.
  fresh->OnCallStart(kT0);
  EXPECT_TRUE(fresh->OnFailure(kT0));
}

TEST(LimitedAttemptsRetryPolicyTest, OneAttemptNeverRetries) {
  auto policy = LimitedAttemptsRetryPolicy(1).Clone();
  policy->OnCallStart(kT0);
  EXPECT_FALSE(policy->OnFailure(kT0));
}

TEST(LimitedTimeRetryPolicyTest, StopsOnceTheDurationHasPassed) {
  auto policy = LimitedTimeRetryPolicy(absl::Seconds(2)).Clone();
  policy->OnCallStart(kT0);
  EXPECT_TRUE(policy->OnFailure(kT0 + absl::Milliseconds(1999)));
  EXPECT_FALSE(policy->OnFailure(kT0 + absl::Seconds(2)));
}

TEST(AllOfRetryPolicyTest, StopsWhenEitherStops) {
  std::vector<std::unique_ptr<RetryPolicy>> both;
  both.push_back(std::make_unique<LimitedAttemptsRetryPolicy>(3));
  both.push_back(std::make_unique<LimitedTimeRetryPolicy>(absl::Seconds(10)));
  AllOfRetryPolicy prototype(std::move(both));

  auto by_count = prototype.Clone();
  by_count->OnCallStart(kT0);
  EXPECT_TRUE(by_count->OnFailure(kT0));
  EXPECT_TRUE(by_count->OnFailure(kT0));
  EXPECT_FALSE(by_count->OnFailure(kT0));

  auto by_time = prototype.Clone();
  by_time->OnCallStart(kT0);
  EXPECT_FALSE(by_time->OnFailure(kT0 + absl::Seconds(11)));
}

}  // namespace
}  // namespace userpilot::gateway
