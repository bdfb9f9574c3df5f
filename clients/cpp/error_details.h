// Typed access to the google.rpc error details the gateway attaches to a failed call.
//
// The gateway sends a google.rpc.Status in the `grpc-status-details-bin` trailer, which gRPC C++
// exposes as grpc::Status::error_details(). ErrorDetails decodes it once:
//
//   userpilot::gateway::client::ErrorDetails details(status);
//   if (const google::rpc::BadRequest* bad = details.bad_request()) { ... field_violations ... }
//   if (auto delay = details.retry_delay()) { ... wait *delay ... }
//   details.reason();                                // ErrorInfo reason, e.g. "JOB_IN_PROGRESS"
//   details.metadata("upstream_request_id");         // ErrorInfo metadata
//
// Thread-safety: immutable after construction; safe to share.
#ifndef USERPILOT_GATEWAY_CLIENTS_CPP_ERROR_DETAILS_H_
#define USERPILOT_GATEWAY_CLIENTS_CPP_ERROR_DETAILS_H_

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "google/protobuf/any.pb.h"
#include "google/rpc/error_details.pb.h"
#include "grpcpp/support/status.h"

namespace userpilot::gateway::client {

// The domain of every ErrorInfo the gateway sends.
inline constexpr char kErrorDomain[] = "userpilot-gateway";

class ErrorDetails {
 public:
  // Decodes the details of `status`; an OK status, or one without (or with undecodable) details,
  // gives an empty ErrorDetails.
  explicit ErrorDetails(const grpc::Status& status);

  // Each detail, or nullptr when the status does not carry it.
  const google::rpc::BadRequest* bad_request() const { return Get(bad_request_); }
  const google::rpc::ErrorInfo* error_info() const { return Get(error_info_); }
  const google::rpc::RetryInfo* retry_info() const { return Get(retry_info_); }
  const google::rpc::QuotaFailure* quota_failure() const { return Get(quota_failure_); }

  // Every detail, in the order the server sent them, including types without an accessor here
  // (for printing them all, as userpilotctl does).
  const std::vector<google::protobuf::Any>& all() const { return all_; }
  // True when the status carries details that are not a google.rpc.Status (a server that is
  // not the gateway, or a corrupted trailer); the details are then empty.
  bool malformed() const { return malformed_; }

  // RetryInfo.retry_delay, when present.
  std::optional<std::chrono::nanoseconds> retry_delay() const;
  // ErrorInfo.reason ("UPSTREAM_RATE_LIMITED", ...), or "" without an ErrorInfo.
  std::string reason() const;
  // ErrorInfo.metadata[key] ("endpoint", "http_status", "upstream_request_id",
  // "upstream_error_code", "request_may_have_been_sent"), or "" when absent.
  std::string metadata(const std::string& key) const;
  // False only when the gateway says the request certainly never reached Userpilot
  // (ErrorInfo metadata request_may_have_been_sent == "false"). Non-idempotent calls
  // (TrackEvent, bulk identify) may be repeated only then.
  bool request_may_have_been_sent() const {
    return metadata("request_may_have_been_sent") != "false";
  }

  // One line for logs: "RESOURCE_EXHAUSTED: <message> [reason=UPSTREAM_RATE_LIMITED
  // retry_delay=1s upstream_request_id=...]"; field violations are listed as `field: why`.
  static std::string Describe(const grpc::Status& status);

 private:
  template <typename T>
  static const T* Get(const std::optional<T>& detail) {
    return detail.has_value() ? &*detail : nullptr;
  }

  std::optional<google::rpc::BadRequest> bad_request_;
  std::optional<google::rpc::ErrorInfo> error_info_;
  std::optional<google::rpc::RetryInfo> retry_info_;
  std::optional<google::rpc::QuotaFailure> quota_failure_;
  std::vector<google::protobuf::Any> all_;
  bool malformed_ = false;
};

// The name of a gRPC code: "OK", "INVALID_ARGUMENT", ...
std::string StatusCodeName(grpc::StatusCode code);

}  // namespace userpilot::gateway::client

#endif  // USERPILOT_GATEWAY_CLIENTS_CPP_ERROR_DETAILS_H_
