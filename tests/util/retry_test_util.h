// Test-only helpers for service/retry tests: realistic upstream errors, made by the real
// status mapping (upstream/error_mapping.h) from scripted HTTP results, the gateway's own
// refusals, and what callers would see of them (wire_details.h).
#ifndef USERPILOT_GATEWAY_TESTS_UTIL_RETRY_TEST_UTIL_H_
#define USERPILOT_GATEWAY_TESTS_UTIL_RETRY_TEST_UTIL_H_

#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/upstream/error_mapping.h"
#include "tests/mocks/fake_http_client.h"
#include "tests/util/wire_details.h"

namespace userpilot::gateway::retry_testing {

inline constexpr absl::string_view kEndpoint = "POST /v1/identify";

// What Userpilot answering `http_status` maps to.
inline CallStatus HttpError(long http_status,  // NOLINT(runtime/int)
                            HttpHeaders headers = {}) {
  return MapHttpResult(FakeHttpClient::Response(http_status, "", std::move(headers)), kEndpoint);
}

// A transport failure that certainly never reached Userpilot (connection refused).
inline CallStatus NotSentError() {
  return MapHttpResult(
      FakeHttpClient::TransportFailure(absl::UnavailableError("connection refused"), false),
      kEndpoint);
}

// A transport failure after which the request may have reached Userpilot (connection reset).
inline CallStatus MaybeSentError() {
  return MapHttpResult(
      FakeHttpClient::TransportFailure(absl::UnavailableError("connection reset"), true),
      kEndpoint);
}

// No answer before the deadline.
inline CallStatus TransportDeadlineError() {
  return MapHttpResult(
      FakeHttpClient::TransportFailure(absl::DeadlineExceededError("timed out"), true), kEndpoint);
}

// The gateway's own rate-limit budget refused the call.
inline CallStatus BudgetExhaustedError(absl::Duration retry_after = absl::Seconds(1)) {
  CallFacts facts;
  facts.reason = ErrorReason::kBudgetExhausted;
  facts.budget_refusal = BudgetRefusal{"identify", "queue_full", ""};
  facts.retry_delay = RetryDelay{retry_after, RetryDelaySource::kGateway};
  return CallStatus(absl::ResourceExhaustedError("identify budget exhausted"), std::move(facts));
}

inline CallStatus CircuitOpenError() {
  CallFacts facts;
  facts.reason = ErrorReason::kCircuitOpen;
  facts.retry_delay = RetryDelay{absl::Seconds(5), RetryDelaySource::kGateway};
  return CallStatus(absl::UnavailableError("circuit open"), std::move(facts));
}

using wire::Info;
using wire::Metadata;
using wire::Reason;

}  // namespace userpilot::gateway::retry_testing

#endif  // USERPILOT_GATEWAY_TESTS_UTIL_RETRY_TEST_UTIL_H_
