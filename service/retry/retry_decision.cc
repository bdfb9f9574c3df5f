#include "service/retry/retry_decision.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

namespace userpilot::gateway {
absl::string_view RetryCauseName(RetryCause cause) {
  switch (cause) {
    case RetryCause::kUpstreamRateLimited:
      return "upstream_rate_limited";
    case RetryCause::kUpstreamUnavailable:
      return "upstream_unavailable";
    case RetryCause::kTransportFailure:
      return "transport_failure";
  }
  return "unknown";
}

FailureClassification ClassifyFailure(const CallStatus& status, Idempotency idempotency) {
  using C = FailureClassification;
  const CallFacts& facts = status.facts();
  switch (status.code()) {
    case absl::StatusCode::kResourceExhausted:
      // Only Userpilot's own 429: it refused the request without recording it. The gateway's
      // budget refusal (BUDGET_EXHAUSTED) already accounts for the caller's deadline.
      if (facts.reason == ErrorReason::kUpstreamRateLimited) {
        return {C::kRetryable, RetryCause::kUpstreamRateLimited};
      }
      return {C::kNonRetryable, RetryCause::kTransportFailure};
    case absl::StatusCode::kUnavailable: {
      if (facts.reason == ErrorReason::kCircuitOpen) {
        return {C::kNonRetryable, RetryCause::kTransportFailure};
      }
      const RetryCause cause = facts.upstream.http_status != 0 ? RetryCause::kUpstreamUnavailable
                                                               : RetryCause::kTransportFailure;
      if (MayRepeat(idempotency) || facts.upstream.reach == Reach::kNever) {
        return {C::kRetryable, cause};
      }
      return {C::kMayHaveReachedUpstream, cause};
    }
    default:
      return {C::kNonRetryable, RetryCause::kTransportFailure};
  }
}

std::optional<absl::Duration> RequestedRetryDelay(const CallStatus& status) {
  const std::optional<RetryDelay>& delay = status.facts().retry_delay;
  if (!delay.has_value()) return std::nullopt;
  return std::max(delay->delay, absl::ZeroDuration());
}

UpstreamHealth ClassifyHealth(const CallStatus& status) {
  if (status.ok()) return UpstreamHealth::kHealthy;
  // The caller's own deadline or cancellation says nothing about Userpilot.
  if (status.facts().upstream.transport == TransportFailure::kDeadline ||
      status.code() == absl::StatusCode::kCancelled) {
    return UpstreamHealth::kUnknown;
  }
  if (status.facts().reason == ErrorReason::kUpstreamUnavailable) return UpstreamHealth::kUnhealthy;
  if (status.facts().upstream.http_status != 0) return UpstreamHealth::kHealthy;
  return UpstreamHealth::kUnknown;
}

absl::string_view StopReasonText(StopReason reason) {
  switch (reason) {
    case StopReason::kRetryPolicyExhausted:
      return "retry policy exhausted";
    case StopReason::kDeadline:
      return "deadline would pass";
    case StopReason::kRetryBudgetExhausted:
      return "retry budget exhausted";
    case StopReason::kNotIdempotent:
      return "not idempotent and may have reached Userpilot";
    case StopReason::kNonRetryable:
      return "non-retryable error";
    case StopReason::kCircuitOpen:
      return "circuit breaker open";
    case StopReason::kShutdown:
      return "gateway shutting down";
  }
  return "unknown";
}

CallStatus AnnotateFinalError(CallStatus last, absl::string_view method, int attempts,
                              StopReason reason) {
  if (last.ok()) return last;
  last.set_message(
      absl::StrCat(last.message(), " (", method, " gave up after ", attempts,
                   attempts == 1 ? " attempt: " : " attempts: ", StopReasonText(reason), ")"));
  last.facts().retry.attempts = attempts;
  last.facts().retry.stopped = reason;
  return last;
}

}  // namespace userpilot::gateway
