// Error details inside the gateway.
//
// Inside the gateway every error is an absl::Status. The google.rpc error details that callers
// receive (BadRequest, ErrorInfo, RetryInfo, QuotaFailure) travel as absl::Status payloads keyed
// by their type URL, so any layer can attach one and the gRPC edge (server/grpc_status.h) turns
// them into `grpc-status-details-bin` in one place. One detail per message type per status.
//
// Thread-safety: free functions over values; safe from any thread.
#ifndef USERPILOT_GATEWAY_SERVICE_COMMON_STATUS_DETAILS_H_
#define USERPILOT_GATEWAY_SERVICE_COMMON_STATUS_DETAILS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/message.h"
#include "google/rpc/error_details.pb.h"

namespace userpilot::gateway {

// The ErrorInfo domain of every reason the gateway sets.
inline constexpr absl::string_view kErrorDomain = "userpilot-gateway";

// ErrorInfo reasons. These strings are part of the public contract.
// Userpilot rejected the gateway's own API key (upstream 401/403): an operator must fix the
// gateway's configuration; the caller did nothing wrong.
inline constexpr absl::string_view kReasonUpstreamCredentialsRejected =
    "UPSTREAM_CREDENTIALS_REJECTED";
// Userpilot already runs a job of this kind (upstream 409, or a second bulk job).
inline constexpr absl::string_view kReasonJobInProgress = "JOB_IN_PROGRESS";
// Userpilot answered 429.
inline constexpr absl::string_view kReasonUpstreamRateLimited = "UPSTREAM_RATE_LIMITED";
// The gateway's own budget refused the call (queue full, or the wait would outlast the
// caller's deadline): the request was never sent. Carries RetryInfo and QuotaFailure.
inline constexpr absl::string_view kReasonBudgetExhausted = "BUDGET_EXHAUSTED";
// The gateway's circuit breaker is open after repeated upstream failures: fail fast.
inline constexpr absl::string_view kReasonCircuitOpen = "CIRCUIT_OPEN";
// The gateway could not even build or send the request (a malformed upstream URL, a libcurl
// failure): an operator must look; retrying does not help.
inline constexpr absl::string_view kReasonGatewayInternal = "GATEWAY_INTERNAL_ERROR";
// Userpilot answered 5xx or could not be reached.
inline constexpr absl::string_view kReasonUpstreamUnavailable = "UPSTREAM_UNAVAILABLE";
// Userpilot answered something the gateway could not understand.
inline constexpr absl::string_view kReasonUpstreamBadResponse = "UPSTREAM_BAD_RESPONSE";

// Attaches `detail` to `status` (replacing a detail of the same type). No-op on an OK status.
void SetDetail(absl::Status& status, const google::protobuf::Message& detail);

// Every detail attached to `status`, packed as Any, in a stable order (by type URL).
std::vector<google::protobuf::Any> GetDetails(const absl::Status& status);

// The detail of type T attached to `status`, if any.
template <typename T>
std::optional<T> GetDetail(const absl::Status& status) {
  T detail;
  auto payload = status.GetPayload("type.googleapis.com/" + T::descriptor()->full_name());
  if (!payload.has_value() || !detail.ParseFromString(std::string(*payload))) return std::nullopt;
  return detail;
}

// One field violation of a request: `field` is a path such as `users[3].user_id`.
struct FieldViolation {
  std::string field;
  std::string description;
};

// INVALID_ARGUMENT naming every violation, with a google.rpc.BadRequest detail.
absl::Status InvalidArgumentError(const std::vector<FieldViolation>& violations);

// Builds a google.rpc.ErrorInfo in the gateway's domain.
google::rpc::ErrorInfo MakeErrorInfo(absl::string_view reason,
                                     std::vector<std::pair<std::string, std::string>> metadata = {});

// Builds a google.rpc.RetryInfo asking the caller to wait `delay`.
google::rpc::RetryInfo MakeRetryInfo(absl::Duration delay);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_COMMON_STATUS_DETAILS_H_
