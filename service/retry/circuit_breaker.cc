#include "service/retry/circuit_breaker.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace userpilot::gateway {
namespace {
constexpr int kBuckets = 10;
}  // namespace

absl::string_view CircuitStateName(CircuitState state) {
  switch (state) {
    case CircuitState::kClosed:
      return "closed";
    case CircuitState::kOpen:
      return "open";
    case CircuitState::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

absl::Status CircuitBreakerOptions::Validate() const {
  if (!(failure_ratio > 0.0) || failure_ratio > 1.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("circuit breaker failure ratio must be in (0, 1], not ", failure_ratio));
  }
  if (min_calls_in_window < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("circuit breaker minimum calls in the window must be at least 1, not ",
                     min_calls_in_window));
  }
  if (window < absl::Seconds(1) || window > absl::Hours(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "circuit breaker window must be in [1s, 1h], not ", absl::FormatDuration(window)));
  }
  if (open_duration <= absl::ZeroDuration() || open_duration > absl::Hours(1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("circuit breaker open duration must be in (0, 1h], not ",
                     absl::FormatDuration(open_duration)));
  }
  if (!(half_open_share > 0.0) || half_open_share > 1.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("circuit breaker half-open share must be in (0, 1], not ", half_open_share));
  }
  if (half_open_probes < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "circuit breaker half-open probes must be at least 1, not ", half_open_probes));
  }
  return absl::OkStatus();
}

CircuitBreaker::CircuitBreaker(const CircuitBreakerOptions& options, std::string upstream)
    : options_(options),
      upstream_(std::move(upstream)),
      judged_(options.window, kBuckets),
      failed_(options.window, kBuckets) {}

CircuitState CircuitBreaker::StateLocked(absl::Time now) const {
  if (state_ == CircuitState::kOpen && now >= open_until_) return CircuitState::kHalfOpen;
  return state_;
}

bool CircuitBreaker::RatioReached(int64_t failed, int64_t judged) const {
  return static_cast<double>(failed) >= options_.failure_ratio * static_cast<double>(judged) - 1e-9;
}

CircuitBreaker::Permit CircuitBreaker::TryAcquire(absl::Time now) {
  Permit permit;
  if (!options_.enabled) {
    permit.allowed = true;
    return permit;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ == CircuitState::kClosed) {
    permit.allowed = true;
    permit.generation = generation_;
    return permit;
  }
  if (state_ == CircuitState::kOpen && now >= open_until_) {
    state_ = CircuitState::kHalfOpen;
    ++generation_;
    probe_credit_ = 1.0 - options_.half_open_share;  // The first call after it probes.
    probes_judged_ = 0;
    probes_failed_ = 0;
  }
  if (state_ == CircuitState::kHalfOpen) {
    // Every call earns `half_open_share` of a probe; a whole one goes (1 call in 10 at 0.1).
    probe_credit_ += options_.half_open_share;
    if (probe_credit_ >= 1.0 - 1e-9) {
      probe_credit_ -= 1.0;
      permit.allowed = true;
      permit.probe = true;
      permit.generation = generation_;
      return permit;
    }
  }
  ++rejected_;
  permit.retry_after = state_ == CircuitState::kOpen
                           ? open_until_ - now
                           : std::min(options_.open_duration, absl::Seconds(1));
  return permit;
}

bool CircuitBreaker::AllowsRetry(absl::Time now) const {
  if (!options_.enabled) return true;
  std::lock_guard<std::mutex> lock(mu_);
  return StateLocked(now) != CircuitState::kOpen;
}

void CircuitBreaker::Record(const Permit& permit, UpstreamHealth health, absl::Time now) {
  if (!options_.enabled || !permit.allowed || health == UpstreamHealth::kUnknown) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (permit.generation != generation_) return;  // Admitted before the last transition.
  const bool failed = health == UpstreamHealth::kUnhealthy;
  if (permit.probe) {
    if (state_ != CircuitState::kHalfOpen) return;
    ++probes_judged_;
    if (failed) ++probes_failed_;
    // Open again as soon as the probes' ratio can no longer stay below the threshold.
    if (RatioReached(probes_failed_, options_.half_open_probes)) return OpenLocked(now);
    if (probes_judged_ >= options_.half_open_probes) CloseLocked();
    return;
  }
  if (state_ != CircuitState::kClosed) return;
  judged_.Add(now);
  if (!failed) return;
  failed_.Add(now);
  const int64_t judged = judged_.Sum(now);
  if (judged >= options_.min_calls_in_window && RatioReached(failed_.Sum(now), judged)) {
    OpenLocked(now);
  }
}

void CircuitBreaker::OpenLocked(absl::Time now) {
  state_ = CircuitState::kOpen;
  ++generation_;
  ++times_opened_;
  open_until_ = now + options_.open_duration;
  judged_.Clear();
  failed_.Clear();
}

void CircuitBreaker::CloseLocked() {
  state_ = CircuitState::kClosed;
  ++generation_;
  judged_.Clear();
  failed_.Clear();
}

CircuitState CircuitBreaker::State(absl::Time now) const {
  std::lock_guard<std::mutex> lock(mu_);
  return StateLocked(now);
}

CircuitBreaker::Snapshot CircuitBreaker::GetSnapshot(absl::Time now) const {
  std::lock_guard<std::mutex> lock(mu_);
  Snapshot snapshot;
  snapshot.state = StateLocked(now);
  snapshot.times_opened = times_opened_;
  snapshot.rejected = rejected_;
  if (state_ == CircuitState::kClosed) {
    snapshot.judged_calls = judged_.Sum(now);
    snapshot.failed_calls = failed_.Sum(now);
  } else if (state_ == CircuitState::kHalfOpen) {
    snapshot.judged_calls = probes_judged_;
    snapshot.failed_calls = probes_failed_;
  }
  return snapshot;
}

CallStatus CircuitBreaker::RefusedError(const Permit& permit) const {
  CallFacts facts;
  facts.reason = ErrorReason::kCircuitOpen;
  facts.circuit_upstream = upstream_;
  facts.retry_delay = RetryDelay{permit.retry_after, RetryDelaySource::kGateway};
  return CallStatus(absl::UnavailableError(absl::StrCat(
                        "Userpilot (", upstream_,
                        ") failed repeatedly, so the gateway's circuit breaker is failing calls "
                        "fast; retry in ",
                        absl::FormatDuration(permit.retry_after))),
                    std::move(facts));
}

}  // namespace userpilot::gateway
