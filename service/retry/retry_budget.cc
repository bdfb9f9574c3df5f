#include "service/retry/retry_budget.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace userpilot::gateway {
namespace {
constexpr int kBuckets = 10;
}  // namespace

absl::Status RetryBudgetOptions::Validate() const {
  if (!(retry_ratio >= 0.0) || retry_ratio > 1000.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("retry budget ratio must be in [0, 1000], not ", retry_ratio));
  }
  if (!(min_retries_per_second >= 0.0) || min_retries_per_second > 1e6) {
    return absl::InvalidArgumentError(absl::StrCat(
        "retry budget minimum per second must be in [0, 1e6], not ", min_retries_per_second));
  }
  if (window < absl::Seconds(1) || window > absl::Hours(1)) {
    return absl::InvalidArgumentError(absl::StrCat("retry budget window must be in [1s, 1h], not ",
                                                   absl::FormatDuration(window)));
  }
  return absl::OkStatus();
}

RetryBudget::RetryBudget(const RetryBudgetOptions& options)
    : options_(options),
      reserve_(options.min_retries_per_second * absl::ToDoubleSeconds(options.window)),
      calls_(options.window, kBuckets),
      retries_(options.window, kBuckets) {}

void RetryBudget::RecordCall(absl::Time now) {
  std::lock_guard<std::mutex> lock(mu_);
  calls_.Add(now);
}

double RetryBudget::AllowanceLocked(absl::Time now) const {
  return reserve_ + options_.retry_ratio * static_cast<double>(calls_.Sum(now)) -
         static_cast<double>(retries_.Sum(now));
}

bool RetryBudget::TryAcquireRetry(absl::Time now) {
  std::lock_guard<std::mutex> lock(mu_);
  // A small epsilon so that 0.2 * 1000 allows exactly 200 despite binary rounding.
  if (AllowanceLocked(now) < 1.0 - 1e-9) return false;
  retries_.Add(now);
  return true;
}

int64_t RetryBudget::Available(absl::Time now) const {
  std::lock_guard<std::mutex> lock(mu_);
  return std::max<int64_t>(0, static_cast<int64_t>(std::floor(AllowanceLocked(now) + 1e-9)));
}

}  // namespace userpilot::gateway
