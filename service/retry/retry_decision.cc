#include "service/retry/retry_decision.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/rpc/error_details.pb.h"
#include "service/common/status_details.h"
#include "service/upstream/error_mapping.h"

namespace userpilot::gateway {
namespace {

// The gateway's ErrorInfo reason of `status`, or "" when it has none (or another domain's).
std::string GatewayReason(const absl::Status& status) {
  const auto info = GetDetail<google::rpc::ErrorInfo>(status);
  if (!info || info->domain() != kErrorDomain) return "";
  return info->reason();
}

bool HasHttpStatus(const absl::Status& status) {
  const auto info = GetDetail<google::rpc::ErrorInfo>(status);
  return info && info->metadata().count(std::string(kMetadataHttpStatus)) > 0;
}

}  // namespace

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

FailureClassification ClassifyFailure(const absl::Status& status, Idempotency idempotency) {
  using C = FailureClassification;
  const std::string reason = GatewayReason(status);
  switch (status.code()) {
    case absl::StatusCode::kResourceExhausted:
      // Only Userpilot's own 429: it refused the request without recording it. The gateway's
      // budget refusal (BUDGET_EXHAUSTED) already accounts for the caller's deadline.
      if (reason == kReasonUpstreamRateLimited) {
        return {C::kRetryable, RetryCause::kUpstreamRateLimited};
      }
      return {C::kNonRetryable, RetryCause::kTransportFailure};
    case absl::StatusCode::kUnavailable: {
      if (reason == kReasonCircuitOpen) return {C::kNonRetryable, RetryCause::kTransportFailure};
      const RetryCause cause =
          HasHttpStatus(status) ? RetryCause::kUpstreamUnavailable : RetryCause::kTransportFailure;
      if (idempotency == Idempotency::kIdempotent || RequestCertainlyNotSent(status)) {
        return {C::kRetryable, cause};
      }
      return {C::kMayHaveReachedUpstream, cause};
    }
    default:
      return {C::kNonRetryable, RetryCause::kTransportFailure};
  }
}

std::optional<absl::Duration> RequestedRetryDelay(const absl::Status& status) {
  const auto info = GetDetail<google::rpc::RetryInfo>(status);
  if (!info || !info->has_retry_delay()) return std::nullopt;
  const absl::Duration delay =
      absl::Seconds(info->retry_delay().seconds()) + absl::Nanoseconds(info->retry_delay().nanos());
  return std::max(delay, absl::ZeroDuration());
}

UpstreamHealth ClassifyHealth(const absl::Status& status) {
  if (status.ok()) return UpstreamHealth::kHealthy;
  if (GatewayReason(status) == kReasonUpstreamUnavailable) return UpstreamHealth::kUnhealthy;
  if (HasHttpStatus(status)) return UpstreamHealth::kHealthy;
  return UpstreamHealth::kUnknown;
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

absl::Status AnnotateFinalError(const absl::Status& last, UpstreamMethod method, int attempts,
                                StopReason reason) {
  if (last.ok()) return last;
  absl::Status annotated(
      last.code(),
      absl::StrCat(last.message(), " (", UpstreamMethodName(method), " gave up after ", attempts,
                   attempts == 1 ? " attempt: " : " attempts: ", StopReasonText(reason), ")"));
  last.ForEachPayload([&annotated](absl::string_view type_url, const absl::Cord& payload) {
    annotated.SetPayload(type_url, payload);
  });
  if (auto info = GetDetail<google::rpc::ErrorInfo>(last)) {
    auto& metadata = *info->mutable_metadata();
    metadata[std::string(kMetadataAttempts)] = absl::StrCat(attempts);
    metadata[std::string(kMetadataRetryStoppedBecause)] = std::string(StopReasonName(reason));
    SetDetail(annotated, *info);
  }
  return annotated;
}

}  // namespace userpilot::gateway
