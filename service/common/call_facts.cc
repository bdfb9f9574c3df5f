#include "service/common/call_facts.h"

namespace userpilot::gateway {

absl::string_view ErrorReasonName(ErrorReason reason) {
  switch (reason) {
    case ErrorReason::kNone:
      return "";
    case ErrorReason::kUpstreamRejectedRequest:
      return "UPSTREAM_REJECTED_REQUEST";
    case ErrorReason::kUpstreamCredentialsRejected:
      return "UPSTREAM_CREDENTIALS_REJECTED";
    case ErrorReason::kUpstreamNotFound:
      return "UPSTREAM_NOT_FOUND";
    case ErrorReason::kUpstreamUnavailable:
      return "UPSTREAM_UNAVAILABLE";
    case ErrorReason::kUpstreamRateLimited:
      return "UPSTREAM_RATE_LIMITED";
    case ErrorReason::kUpstreamBadResponse:
      return "UPSTREAM_BAD_RESPONSE";
    case ErrorReason::kJobInProgress:
      return "JOB_IN_PROGRESS";
    case ErrorReason::kBudgetExhausted:
      return "BUDGET_EXHAUSTED";
    case ErrorReason::kCircuitOpen:
      return "CIRCUIT_OPEN";
    case ErrorReason::kGatewayInternal:
      return "GATEWAY_INTERNAL_ERROR";
    case ErrorReason::kCallerUnauthenticated:
      return "CALLER_UNAUTHENTICATED";
    case ErrorReason::kCallerNotAllowed:
      return "CALLER_NOT_ALLOWED";
  }
  return "";
}

absl::string_view RetryDelaySourceName(RetryDelaySource source) {
  switch (source) {
    case RetryDelaySource::kRetryAfter:
      return "retry-after";
    case RetryDelaySource::kRateLimitReset:
      return "x-ratelimit-reset";
    case RetryDelaySource::kDefault:
      return "default";
    case RetryDelaySource::kGateway:
      return "";
  }
  return "";
}

absl::string_view StopReasonName(StopReason reason) {
  switch (reason) {
    case StopReason::kRetryPolicyExhausted:
      return "retry_policy_exhausted";
    case StopReason::kDeadline:
      return "deadline";
    case StopReason::kRetryBudgetExhausted:
      return "retry_budget_exhausted";
    case StopReason::kNotIdempotent:
      return "not_idempotent";
    case StopReason::kNonRetryable:
      return "non_retryable";
    case StopReason::kCircuitOpen:
      return "circuit_open";
    case StopReason::kShutdown:
      return "shutdown";
  }
  return "unknown";
}

}  // namespace userpilot::gateway
