#include "service/ratelimit/local_token_source.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"

namespace userpilot::gateway {
namespace {

const RateSpec& Checked(const RateSpec& spec) {
  if (absl::Status status = LocalTokenSource::Validate(spec); !status.ok()) {
    std::fprintf(stderr, "LocalTokenSource: %s\n", status.ToString().c_str());
    std::abort();
  }
  return spec;
}

}  // namespace

absl::Status LocalTokenSource::Validate(const RateSpec& spec) {
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
  return absl::OkStatus();
}

LocalTokenSource::LocalTokenSource(RateSpec spec)
    : spec_(Checked(spec)),
      interval_(ExactWindow::IntervalFor(spec_.window, spec_.limit)),
      window_(spec_.limit, spec_.window, spec_.tolerance) {}

TakeResult LocalTokenSource::TryTake(absl::Time now, TakeKind kind) {
  std::lock_guard<std::mutex> lock(mu_);
  if (now < paused_until_) {
    TakeResult result;
    result.retry_at = paused_until_;
    return result;
  }
  return window_.Take(now, kind);
}

void LocalTokenSource::Take(absl::Time now, TakeKind kind, int64_t want, Done done) {
  TakeResult total;
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (total.granted < want) {
      if (now < paused_until_) {
        total.retry_at = paused_until_;
        break;
      }
      const TakeResult one = window_.Take(now, kind);
      total.granted += one.granted;
      total.retry_at = one.retry_at;
      if (one.granted == 0) break;
    }
  }
  std::move(done)(total);
}

std::optional<TakeResult> LocalTokenSource::TryTakeNow(absl::Time now, TakeKind kind) {
  return TryTake(now, kind);
}

bool LocalTokenSource::Plan(absl::Time now, int64_t count, absl::Time start,
                            absl::Duration min_spacing, std::vector<absl::Time>* times) const {
  std::lock_guard<std::mutex> lock(mu_);
  window_.Plan(now, count, std::max(start, paused_until_), min_spacing, times);
  return true;
}

std::optional<int64_t> LocalTokenSource::Available(absl::Time now) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (now < paused_until_) return 0;
  return window_.Room(now);
}

void LocalTokenSource::PauseUntil(absl::Time until) {
  std::lock_guard<std::mutex> lock(mu_);
  paused_until_ = std::max(paused_until_, until);
}

}  // namespace userpilot::gateway
