#include "service/ratelimit/local_token_source.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"

namespace userpilot::gateway {
namespace {

const RateSpec& Checked(const RateSpec& spec, const LocalTokenSourceOptions& options) {
  if (absl::Status status = LocalTokenSource::Validate(spec, options); !status.ok()) {
    std::fprintf(stderr, "LocalTokenSource: %s\n", status.ToString().c_str());
    std::abort();
  }
  return spec;
}

}  // namespace

absl::Status LocalTokenSource::Validate(const RateSpec& spec,
                                        const LocalTokenSourceOptions& options) {
  if (spec.limit <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("budget '", spec.name, "': limit must be positive, got ", spec.limit));
  }
  if (spec.window <= absl::ZeroDuration() || spec.window == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("budget '", spec.name,
                                                   "': window must be positive and finite, got ",
                                                   absl::FormatDuration(spec.window)));
  }
  if (spec.tolerance < absl::ZeroDuration() || spec.tolerance >= spec.window) {
    return absl::InvalidArgumentError(absl::StrCat("budget '", spec.name,
                                                   "': tolerance must be in [0, window), got ",
                                                   absl::FormatDuration(spec.tolerance)));
  }
  if (options.burst < 1 || options.burst > spec.limit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "budget '", spec.name, "': burst must be in [1, ", spec.limit, "], got ", options.burst));
  }
  return absl::OkStatus();
}

LocalTokenSource::LocalTokenSource(RateSpec spec, LocalTokenSourceOptions options)
    : spec_(Checked(spec, options)),
      interval_(Gcra::IntervalFor(spec_.window, spec_.limit, options.burst)),
      gcra_(interval_, options.burst, spec_.tolerance) {}

TakeResult LocalTokenSource::TryTake(absl::Time now) {
  std::lock_guard<std::mutex> lock(mu_);
  TakeResult result;
  if (now < paused_until_) {
    result.retry_at = std::max(paused_until_, gcra_.NextAllowed());
    return result;
  }
  result.granted = gcra_.TryTake(now, &result.retry_at);
  return result;
}

std::optional<int64_t> LocalTokenSource::Available(absl::Time now) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (now < paused_until_) return 0;
  return gcra_.Available(now);
}

void LocalTokenSource::Take(absl::Time now, Done done) { std::move(done)(TryTake(now)); }

void LocalTokenSource::PauseUntil(absl::Time until) {
  std::lock_guard<std::mutex> lock(mu_);
  paused_until_ = std::max(paused_until_, until);
}

}  // namespace userpilot::gateway
