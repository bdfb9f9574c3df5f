// The wire form of an error: the one place where CallFacts (common/call_facts.h) become the
// google.rpc details a caller receives. server/grpc_status.h puts the result into
// `grpc-status-details-bin`; tests use it to check exactly what callers will see.
//
// From the facts of a failed call:
//   BadRequest     one field violation per `violations` entry (validation)
//   ErrorInfo      when `reason` is set: domain "userpilot-gateway", the reason's name, and
//                  metadata from the facts present:
//                    endpoint                    upstream.endpoint
//                    http_status                 upstream.http_status, when an answer came
//                    upstream_request_id         upstream.request_id
//                    upstream_error_code         upstream.error_code
//                    request_may_have_been_sent  on transport failures: "false" only when the
//                                                request certainly never reached Userpilot
//                    retry_delay_source          "retry-after", "x-ratelimit-reset" or
//                                                "default" (upstream delays only)
//                    budget, cause               budget_refusal
//                    upstream                    circuit_upstream
//                    job_id                      job_id
//                    attempts,                   retry (when the retry layer stopped)
//                    retry_stopped_because
//                    caller, rpc                 access_refusal
//   QuotaFailure   budget_refusal with a quota description (subject: the budget)
//   RetryInfo      retry_delay
// in that order (by type URL). An OK status has no details. The keys and reasons are part of
// the public contract (README "Errors").
//
// Thread-safety: pure functions.
#ifndef USERPILOT_GATEWAY_SERVICE_SERVER_ERROR_DETAILS_H_
#define USERPILOT_GATEWAY_SERVICE_SERVER_ERROR_DETAILS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/rpc/status.pb.h"
#include "service/common/call_facts.h"

namespace userpilot::gateway {

// The ErrorInfo domain of every reason the gateway sets.
inline constexpr absl::string_view kErrorDomain = "userpilot-gateway";

// ErrorInfo metadata keys.
inline constexpr absl::string_view kMetadataEndpoint = "endpoint";       // "POST /v1/track"
inline constexpr absl::string_view kMetadataHttpStatus = "http_status";  // "429"
inline constexpr absl::string_view kMetadataUpstreamRequestId = "upstream_request_id";
inline constexpr absl::string_view kMetadataUpstreamErrorCode = "upstream_error_code";
inline constexpr absl::string_view kMetadataRequestMayHaveBeenSent = "request_may_have_been_sent";
inline constexpr absl::string_view kMetadataRetryDelaySource = "retry_delay_source";
inline constexpr absl::string_view kMetadataBudget = "budget";  // "identify"
inline constexpr absl::string_view kMetadataBudgetCause = "cause";
inline constexpr absl::string_view kMetadataUpstream = "upstream";  // the breaker's host
inline constexpr absl::string_view kMetadataJobId = "job_id";
inline constexpr absl::string_view kMetadataAttempts = "attempts";
inline constexpr absl::string_view kMetadataRetryStoppedBecause = "retry_stopped_because";
inline constexpr absl::string_view kMetadataCaller = "caller";  // CALLER_NOT_ALLOWED
inline constexpr absl::string_view kMetadataRpc = "rpc";        // "DeleteUsers"

// The google.rpc.Status of `status` (code and message) with the details of `facts`.
google::rpc::Status ToRpcStatus(const absl::Status& status, const CallFacts& facts);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_SERVER_ERROR_DETAILS_H_
