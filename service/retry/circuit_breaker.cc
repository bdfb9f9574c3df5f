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
  if (consecutive_failures < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "circuit breaker consecutive failures must be at least 1, not ", consecutive_failures));
  }
  if (!(failure_ratio > 0.0) || failure_ratio > 1.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("circuit breaker failure ratio must be in (0, 1], not ", failure_ratio));
  }
  if (min_outcomes_in_window < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("circuit breaker minimum outcomes in the window must be at least 1, not ",
                     min_outcomes_in_window));
  }
  if (window < absl::Seconds(1) || window > absl::Hours(1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "circuit breaker window must be in [1s, 1h], not ", absl::FormatDuration(window)));
  }
  if (initial_open_duration <= absl::ZeroDuration() ||
      initial_open_duration == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("circuit breaker open duration must be positive and finite, not ",
                     absl::FormatDuration(initial_open_duration)));
  }
  if (max_open_duration < initial_open_duration || max_open_duration == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "circuit breaker maximum open duration must be finite and at least the initial one (",
        absl::FormatDuration(initial_open_duration), "), not ",
        absl::FormatDuration(max_open_duration)));
  }
  if (!(open_duration_multiplier >= 1.0) || open_duration_multiplier > 1000.0) {
    return absl::InvalidArgumentError(
        absl::StrCat("circuit breaker open duration multiplier must be in [1, 1000], not ",
                     open_duration_multiplier));
  }
  return absl::OkStatus();
}

CircuitBreaker::CircuitBreaker(const CircuitBreakerOptions& options, std::string upstream)
    : options_(options),
      upstream_(std::move(upstream)),
      outcomes_(options.window, kBuckets),
      failures_(options.window, kBuckets),
      open_duration_(options.initial_open_duration) {}

CircuitState CircuitBreaker::StateLocked(absl::Time now) const {
  if (state_ == CircuitState::kOpen && now >= open_until_) return CircuitState::kHalfOpen;
  return state_;
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
    probe_in_flight_ = false;
  }
  if (state_ == CircuitState::kHalfOpen &&
      (!probe_in_flight_ || now - probe_started_ >= options_.max_open_duration)) {
    probe_in_flight_ = true;
    probe_started_ = now;
    permit.allowed = true;
    permit.probe = true;
    permit.generation = ++generation_;
    return permit;
  }
  ++rejected_;
  permit.retry_after =
      state_ == CircuitState::kOpen ? open_until_ - now : options_.initial_open_duration;
  return permit;
}

void CircuitBreaker::Record(const Permit& permit, UpstreamHealth health, absl::Time now) {
  if (!options_.enabled || !permit.allowed || health == UpstreamHealth::kUnknown) {
    if (options_.enabled && permit.probe) {  // The probe learned nothing: let another go.
      std::lock_guard<std::mutex> lock(mu_);
      if (state_ == CircuitState::kHalfOpen && permit.generation == generation_) {
        probe_in_flight_ = false;
      }
    }
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (permit.generation != generation_) return;  // Admitted before the last transition.
  const bool failed = health == UpstreamHealth::kUnhealthy;
  if (permit.probe) {
    if (state_ != CircuitState::kHalfOpen) return;
    if (failed) {
      OpenLocked(now, std::min(options_.max_open_duration,
                               open_duration_ * options_.open_duration_multiplier));
      return;
    }
    state_ = CircuitState::kClosed;
    ++generation_;
    probe_in_flight_ = false;
    open_duration_ = options_.initial_open_duration;
    consecutive_failures_ = 0;
    outcomes_.Clear();
    failures_.Clear();
    return;
  }
  if (state_ != CircuitState::kClosed) return;
  outcomes_.Add(now);
  if (!failed) {
    consecutive_failures_ = 0;
    return;
  }
  failures_.Add(now);
  ++consecutive_failures_;
  const int64_t outcomes = outcomes_.Sum(now);
  const bool ratio_reached =
      outcomes >= options_.min_outcomes_in_window &&
      static_cast<double>(failures_.Sum(now)) >= options_.failure_ratio * outcomes - 1e-9;
  if (consecutive_failures_ >= options_.consecutive_failures || ratio_reached) {
    OpenLocked(now, options_.initial_open_duration);
  }
}

void CircuitBreaker::OpenLocked(absl::Time now, absl::Duration duration) {
  state_ = CircuitState::kOpen;
  ++generation_;
  ++times_opened_;
  open_duration_ = duration;
  open_until_ = now + duration;
  probe_in_flight_ = false;
  consecutive_failures_ = 0;
  outcomes_.Clear();
  failures_.Clear();
}

CircuitState CircuitBreaker::State(absl::Time now) const {
  std::lock_guard<std::mutex> lock(mu_);
  return StateLocked(now);
}

CircuitBreaker::Snapshot CircuitBreaker::GetSnapshot(absl::Time now) const {
  std::lock_guard<std::mutex> lock(mu_);
  Snapshot snapshot;
  snapshot.state = StateLocked(now);
  snapshot.consecutive_failures = consecutive_failures_;
  snapshot.times_opened = times_opened_;
  snapshot.rejected = rejected_;
  snapshot.open_duration = open_duration_;
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
