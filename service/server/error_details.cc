#include "service/server/error_details.h"

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "google/protobuf/duration.pb.h"
#include "google/rpc/error_details.pb.h"

namespace userpilot::gateway {
namespace {

google::rpc::ErrorInfo MakeErrorInfo(const CallFacts& facts) {
  google::rpc::ErrorInfo info;
  info.set_reason(std::string(ErrorReasonName(facts.reason)));
  info.set_domain(std::string(kErrorDomain));
  auto& metadata = *info.mutable_metadata();
  auto put = [&metadata](absl::string_view key, absl::string_view value) {
    metadata[std::string(key)] = std::string(value);
  };
  const UpstreamFacts& upstream = facts.upstream;
  if (!upstream.endpoint.empty()) put(kMetadataEndpoint, upstream.endpoint);
  if (upstream.http_status != 0) put(kMetadataHttpStatus, absl::StrCat(upstream.http_status));
  if (!upstream.request_id.empty()) put(kMetadataUpstreamRequestId, upstream.request_id);
  if (!upstream.error_code.empty()) put(kMetadataUpstreamErrorCode, upstream.error_code);
  if (upstream.transport != TransportFailure::kNone) {
    put(kMetadataRequestMayHaveBeenSent, upstream.reach == Reach::kNever ? "false" : "true");
  }
  if (facts.retry_delay.has_value()) {
    const absl::string_view source = RetryDelaySourceName(facts.retry_delay->source);
    if (!source.empty()) put(kMetadataRetryDelaySource, source);
  }
  if (facts.budget_refusal.has_value()) {
    put(kMetadataBudget, facts.budget_refusal->budget);
    put(kMetadataBudgetCause, facts.budget_refusal->cause);
  }
  if (!facts.circuit_upstream.empty()) put(kMetadataUpstream, facts.circuit_upstream);
  if (!facts.job_id.empty()) put(kMetadataJobId, facts.job_id);
  if (facts.access_refusal.has_value()) {
    put(kMetadataCaller, facts.access_refusal->caller);
    put(kMetadataRpc, facts.access_refusal->rpc);
  }
  if (facts.retry.stopped.has_value()) {
    put(kMetadataAttempts, absl::StrCat(facts.retry.attempts));
    put(kMetadataRetryStoppedBecause, StopReasonName(*facts.retry.stopped));
  }
  return info;
}

google::rpc::RetryInfo MakeRetryInfo(absl::Duration delay) {
  google::rpc::RetryInfo info;
  if (delay < absl::ZeroDuration()) delay = absl::ZeroDuration();
  const int64_t nanos = absl::ToInt64Nanoseconds(delay);
  info.mutable_retry_delay()->set_seconds(nanos / 1000000000);
  info.mutable_retry_delay()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return info;
}

}  // namespace

google::rpc::Status ToRpcStatus(const absl::Status& status, const CallFacts& facts) {
  google::rpc::Status rpc_status;
  rpc_status.set_code(static_cast<int>(status.code()));
  rpc_status.set_message(std::string(status.message()));
  if (status.ok()) return rpc_status;
  if (!facts.violations.empty()) {
    google::rpc::BadRequest bad_request;
    for (const FieldViolation& v : facts.violations) {
      auto* violation = bad_request.add_field_violations();
      violation->set_field(v.field);
      violation->set_description(v.description);
    }
    rpc_status.add_details()->PackFrom(bad_request);
  }
  if (facts.reason != ErrorReason::kNone) rpc_status.add_details()->PackFrom(MakeErrorInfo(facts));
  if (facts.budget_refusal.has_value() && !facts.budget_refusal->quota.empty()) {
    google::rpc::QuotaFailure quota;
    auto* violation = quota.add_violations();
    violation->set_subject(facts.budget_refusal->budget);
    violation->set_description(facts.budget_refusal->quota);
    rpc_status.add_details()->PackFrom(quota);
  }
  if (facts.retry_delay.has_value()) {
    rpc_status.add_details()->PackFrom(MakeRetryInfo(facts.retry_delay->delay));
  }
  return rpc_status;
}

}  // namespace userpilot::gateway
