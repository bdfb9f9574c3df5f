// Test-only helpers for service/retry tests: realistic upstream errors, made by the real
// status mapping (upstream/error_mapping.h) from scripted HTTP results, and the gateway's own
// refusals.
#ifndef USERPILOT_GATEWAY_SERVICE_RETRY_RETRY_TEST_UTIL_H_
#define USERPILOT_GATEWAY_SERVICE_RETRY_RETRY_TEST_UTIL_H_

#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/common/status_details.h"
#include "service/upstream/error_mapping.h"
#include "tests/mocks/fake_http_client.h"

namespace userpilot::gateway::retry_testing {

inline constexpr absl::string_view kEndpoint = "POST /v1/identify";

// What Userpilot answering `http_status` maps to.
inline absl::Status HttpError(long http_status,  // NOLINT(runtime/int)
                              HttpHeaders headers = {}) {
  return MapHttpResult(FakeHttpClient::Response(http_status, "", std::move(headers)), kEndpoint);
}

// A transport failure that certainly never reached Userpilot (connection refused).
inline absl::Status NotSentError() {
  return MapHttpResult(
      FakeHttpClient::TransportFailure(absl::UnavailableError("connection refused"), false),
      kEndpoint);
}

// A transport failure after which the request may have reached Userpilot (connection reset).
inline absl::Status MaybeSentError() {
  return MapHttpResult(
      FakeHttpClient::TransportFailure(absl::UnavailableError("connection reset"), true),
      kEndpoint);
}

// No answer before the deadline.
inline absl::Status TransportDeadlineError() {
  return MapHttpResult(
      FakeHttpClient::TransportFailure(absl::DeadlineExceededError("timed out"), true), kEndpoint);
}

// The gateway's own rate-limit budget refused the call.
inline absl::Status BudgetExhaustedError(absl::Duration retry_after = absl::Seconds(1)) {
  absl::Status status = absl::ResourceExhaustedError("identify budget exhausted");
  SetDetail(status, MakeErrorInfo(kReasonBudgetExhausted, {{"budget", "identify"}}));
  SetDetail(status, MakeRetryInfo(retry_after));
  return status;
}

inline absl::Status CircuitOpenError() {
  absl::Status status = absl::UnavailableError("circuit open");
  SetDetail(status, MakeErrorInfo(kReasonCircuitOpen));
  SetDetail(status, MakeRetryInfo(absl::Seconds(5)));
  return status;
}

inline std::optional<google::rpc::ErrorInfo> Info(const absl::Status& status) {
  return GetDetail<google::rpc::ErrorInfo>(status);
}

inline std::map<std::string, std::string> Metadata(const absl::Status& status) {
  const auto info = Info(status);
  if (!info) return {};
  return {info->metadata().begin(), info->metadata().end()};
}

inline std::string Reason(const absl::Status& status) {
  const auto info = Info(status);
  return info ? info->reason() : "";
}

inline std::optional<absl::Duration> RetryDelay(const absl::Status& status) {
  const auto info = GetDetail<google::rpc::RetryInfo>(status);
  if (!info) return std::nullopt;
  return absl::Seconds(info->retry_delay().seconds()) +
         absl::Nanoseconds(info->retry_delay().nanos());
}

}  // namespace userpilot::gateway::retry_testing

#endif  // USERPILOT_GATEWAY_SERVICE_RETRY_RETRY_TEST_UTIL_H_
