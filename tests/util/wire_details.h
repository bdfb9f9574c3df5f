// What a caller would receive for a CallStatus: its google.rpc details as the gRPC edge builds
// them (server/error_details.h), so that the tests of every layer assert the wire contract -
// reasons, metadata keys, RetryInfo, QuotaFailure, BadRequest - rather than internal fields.
// Link upgw_error_details.
//
//   EXPECT_EQ(Reason(status), "UPSTREAM_RATE_LIMITED");
//   EXPECT_EQ(Metadata(status)["retry_stopped_because"], "deadline");
//
// A bare absl::Status converts to a CallStatus without facts, so these accept both.
#ifndef USERPILOT_GATEWAY_TESTS_UTIL_WIRE_DETAILS_H_
#define USERPILOT_GATEWAY_TESTS_UTIL_WIRE_DETAILS_H_

#include <map>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "google/rpc/error_details.pb.h"
#include "service/common/call_result.h"
#include "service/server/error_details.h"

namespace userpilot::gateway::wire {

// The detail of type T that a caller would receive with `status`, if any.
template <typename T>
std::optional<T> Detail(const CallStatus& status) {
  const google::rpc::Status rpc = ToRpcStatus(status.status(), status.facts());
  for (const auto& any : rpc.details()) {
    T detail;
    if (any.UnpackTo(&detail)) return detail;
  }
  return std::nullopt;
}

inline std::optional<google::rpc::ErrorInfo> Info(const CallStatus& status) {
  return Detail<google::rpc::ErrorInfo>(status);
}

// The ErrorInfo reason; "" without one.
inline std::string Reason(const CallStatus& status) {
  const auto info = Info(status);
  return info ? info->reason() : "";
}

// The ErrorInfo metadata; empty without an ErrorInfo.
inline std::map<std::string, std::string> Metadata(const CallStatus& status) {
  const auto info = Info(status);
  if (!info) return {};
  return {info->metadata().begin(), info->metadata().end()};
}

// The RetryInfo delay, if any.
inline std::optional<absl::Duration> RetryDelay(const CallStatus& status) {
  const auto info = Detail<google::rpc::RetryInfo>(status);
  if (!info) return std::nullopt;
  return absl::Seconds(info->retry_delay().seconds()) +
         absl::Nanoseconds(info->retry_delay().nanos());
}

}  // namespace userpilot::gateway::wire

#endif  // USERPILOT_GATEWAY_TESTS_UTIL_WIRE_DETAILS_H_
