#include "service/ratelimit/redis_fallback_token_source.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace userpilot::gateway {

absl::StatusOr<RedisFallbackMode> ParseRedisFallbackMode(absl::string_view text) {
  const std::string lower = absl::AsciiStrToLower(text);
  if (lower == "local") return RedisFallbackMode::kLocal;
  if (lower == "refuse") return RedisFallbackMode::kRefuse;
  return absl::InvalidArgumentError(
      absl::StrCat("redis fallback '", text, "': expected 'local' or 'refuse'"));
}

absl::string_view RedisFallbackModeName(RedisFallbackMode mode) {
  return mode == RedisFallbackMode::kLocal ? "local" : "refuse";
}

RedisFallbackCounters::Snapshot RedisFallbackCounters::Read() const {
  Snapshot s;
  s.redis_decisions = redis_decisions.load(std::memory_order_relaxed);
  s.local_decisions = local_decisions.load(std::memory_order_relaxed);
  s.redis_errors = redis_errors.load(std::memory_order_relaxed);
  s.refused = refused.load(std::memory_order_relaxed);
  return s;
}

RateSpec FallbackTokenSource::LocalShare(const RateSpec& spec, int replicas) {
  const int64_t n = std::max(1, replicas);
  RateSpec share = spec;
  if (spec.limit >= n) {
    share.limit = spec.limit / n;
  } else {
    share.limit = 1;
    share.window = spec.window * ((n + spec.limit - 1) / spec.limit);
  }
  return share;
}

FallbackTokenSource::FallbackTokenSource(std::unique_ptr<RedisTokenSource> redis,
                                         std::unique_ptr<TokenSource> local, RedisFallbackMode mode,
                                         RedisClockFn clock,
                                         std::shared_ptr<RedisFallbackCounters> counters)
    : redis_(std::move(redis)),
      local_(mode == RedisFallbackMode::kLocal ? std::shared_ptr<TokenSource>(std::move(local))
                                               : nullptr),
      mode_(mode),
      clock_(std::move(clock)),
      counters_(counters ? std::move(counters) : std::make_shared<RedisFallbackCounters>()) {
  if (redis_ == nullptr || (mode_ == RedisFallbackMode::kLocal && local_ == nullptr) || !clock_) {
    std::fprintf(stderr, "FallbackTokenSource: missing redis source, local source or clock\n");
    std::abort();
  }
}

bool FallbackTokenSource::LocalDecides() const {
  return mode_ == RedisFallbackMode::kLocal && !redis_->available();
}

void FallbackTokenSource::Take(absl::Time now, TakeKind kind, int64_t want, Done done) {
  if (LocalDecides()) {
    counters_->local_decisions.fetch_add(1, std::memory_order_relaxed);
    local_->Take(now, kind, want, std::move(done));
    return;
  }
  const absl::Time asked = clock_();
  redis_->Take(now, kind, want,
               [done = std::move(done), now, kind, want, asked, mode = mode_, local = local_,
                clock = clock_, counters = counters_](absl::StatusOr<TakeResult> result) mutable {
                 if (result.ok()) {
                   counters->redis_decisions.fetch_add(1, std::memory_order_relaxed);
                   std::move(done)(std::move(result));
                   return;
                 }
                 counters->redis_errors.fetch_add(1, std::memory_order_relaxed);
                 if (mode == RedisFallbackMode::kRefuse) {
                   counters->refused.fetch_add(1, std::memory_order_relaxed);
                   std::move(done)(std::move(result));
                   return;
                 }
                 counters->local_decisions.fetch_add(1, std::memory_order_relaxed);
                 // Decide at the time the error arrived, on the caller's clock.
                 local->Take(now + std::max(absl::ZeroDuration(), clock() - asked), kind, want,
                             std::move(done));
               });
}

std::optional<TakeResult> FallbackTokenSource::TryTakeNow(absl::Time now, TakeKind kind) {
  if (!LocalDecides()) return std::nullopt;
  std::optional<TakeResult> result = local_->TryTakeNow(now, kind);
  if (result.has_value()) counters_->local_decisions.fetch_add(1, std::memory_order_relaxed);
  return result;
}

bool FallbackTokenSource::Plan(absl::Time now, int64_t count, absl::Time start,
                               absl::Duration min_spacing, std::vector<absl::Time>* times) const {
  return LocalDecides() && local_->Plan(now, count, start, min_spacing, times);
}

std::optional<int64_t> FallbackTokenSource::Available(absl::Time now) const {
  if (!LocalDecides()) return std::nullopt;
  return local_->Available(now);
}

void FallbackTokenSource::PauseUntil(absl::Time until) {
  redis_->PauseUntil(until);
  if (local_ != nullptr) local_->PauseUntil(until);
}

}  // namespace userpilot::gateway
