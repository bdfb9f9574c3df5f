#include "service/retry/backoff_policy.h"

#include <algorithm>
#include <mutex>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"

namespace userpilot::gateway {
namespace {

class Mt19937JitterSource final : public JitterSource {
 public:
  explicit Mt19937JitterSource(uint64_t seed) : engine_(seed) {}

  double Uniform() override {
    std::lock_guard<std::mutex> lock(mu_);
    return distribution_(engine_);
  }

 private:
  std::mutex mu_;
  std::mt19937_64 engine_;                               // guarded by mu_
  std::uniform_real_distribution<double> distribution_;  // guarded by mu_; [0, 1)
};

}  // namespace

std::shared_ptr<JitterSource> MakeRandomJitterSource() {
  std::random_device device;
  const uint64_t seed = (static_cast<uint64_t>(device()) << 32) ^ device();
  return std::make_shared<Mt19937JitterSource>(seed);
}

std::shared_ptr<JitterSource> MakeSeededJitterSource(uint64_t seed) {
  return std::make_shared<Mt19937JitterSource>(seed);
}

ExponentialBackoffPolicy::ExponentialBackoffPolicy(absl::Duration initial, absl::Duration maximum,
                                                   double multiplier,
                                                   std::shared_ptr<JitterSource> jitter)
    : initial_(initial),
      maximum_(maximum),
      multiplier_(multiplier),
      jitter_(std::move(jitter)),
      ceiling_(std::min(initial, maximum)) {}

absl::Status ExponentialBackoffPolicy::Validate(absl::Duration initial, absl::Duration maximum,
                                                double multiplier) {
  if (initial <= absl::ZeroDuration() || initial == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "initial backoff must be positive and finite, not ", absl::FormatDuration(initial)));
  }
  if (maximum < initial || maximum == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("maximum backoff must be finite and at least the initial backoff (",
                     absl::FormatDuration(initial), "), not ", absl::FormatDuration(maximum)));
  }
  if (!(multiplier >= 1.0) || multiplier > 1000.0) {  // Also rejects NaN.
    return absl::InvalidArgumentError(
        absl::StrCat("backoff multiplier must be in [1, 1000], not ", multiplier));
  }
  return absl::OkStatus();
}

std::unique_ptr<BackoffPolicy> ExponentialBackoffPolicy::Clone() const {
  return std::make_unique<ExponentialBackoffPolicy>(initial_, maximum_, multiplier_, jitter_);
}

absl::Duration ExponentialBackoffPolicy::OnCompletion() {
  const absl::Duration ceiling = ceiling_;
  // Grow in the Duration domain and clamp at once, so nothing overflows however many retries.
  ceiling_ = std::min(maximum_, ceiling_ * multiplier_);
  const double u = std::clamp(jitter_->Uniform(), 0.0, 1.0);
  return ceiling * u;
}

}  // namespace userpilot::gateway
