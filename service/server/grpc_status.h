// The one place where an internal status and its facts become the grpc::Status a caller
// receives.
//
// Codes map one to one (absl and gRPC share google.rpc.Code numbering). The facts become
// google.rpc details (error_details.h) in a google.rpc.Status in `grpc-status-details-bin`,
// which every gRPC language decodes (grpcio-status in Python, grpc::ExtractErrorDetails in C++).
//
// Thread-safety: pure functions; safe from any thread.
#ifndef USERPILOT_GATEWAY_SERVICE_SERVER_GRPC_STATUS_H_
#define USERPILOT_GATEWAY_SERVICE_SERVER_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"
#include "service/common/call_result.h"

namespace userpilot::gateway {

// The grpc::Status to finish a call with. OK stays OK (with no details).
grpc::Status ToGrpcStatus(const absl::Status& status, const CallFacts& facts);
inline grpc::Status ToGrpcStatus(const CallStatus& status) {
  return ToGrpcStatus(status.status(), status.facts());
}

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_SERVER_GRPC_STATUS_H_
