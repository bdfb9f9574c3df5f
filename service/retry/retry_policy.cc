#include "service/retry/retry_policy.h"

#include <algorithm>
#include <utility>

namespace userpilot::gateway {

LimitedAttemptsRetryPolicy::LimitedAttemptsRetryPolicy(int max_attempts)
    : max_attempts_(std::max(max_attempts, 1)) {}

std::unique_ptr<RetryPolicy> LimitedAttemptsRetryPolicy::Clone() const {
  return std::make_unique<LimitedAttemptsRetryPolicy>(max_attempts_);
}

bool LimitedAttemptsRetryPolicy::OnFailure(absl::Time now) {
  if (attempts_ >= max_attempts_) return false;
  ++attempts_;
  return true;
}

LimitedTimeRetryPolicy::LimitedTimeRetryPolicy(absl::Duration max_duration)
    : max_duration_(max_duration) {}

std::unique_ptr<RetryPolicy> LimitedTimeRetryPolicy::Clone() const {
  return std::make_unique<LimitedTimeRetryPolicy>(max_duration_);
}

AllOfRetryPolicy::AllOfRetryPolicy(std::vector<std::unique_ptr<RetryPolicy>> policies)
    : policies_(std::move(policies)) {}

std::unique_ptr<RetryPolicy> AllOfRetryPolicy::Clone() const {
  std::vector<std::unique_ptr<RetryPolicy>> clones;
  clones.reserve(policies_.size());
  for (const auto& policy : policies_) clones.push_back(policy->Clone());
  return std::make_unique<AllOfRetryPolicy>(std::move(clones));
}

void AllOfRetryPolicy::OnCallStart(absl::Time now) {
  for (auto& policy : policies_) policy->OnCallStart(now);
}

bool AllOfRetryPolicy::OnFailure(absl::Time now) {
  bool allowed = true;
  for (auto& policy : policies_) allowed = policy->OnFailure(now) && allowed;  // Tell each.
  return allowed;
}

}  // namespace userpilot::gateway
