// The one place where an internal absl::Status becomes the grpc::Status a caller receives.
//
// Codes map one to one (absl and gRPC share google.rpc.Code numbering). Details attached with
// common/status_details.h become a google.rpc.Status in `grpc-status-details-bin`, which every
// gRPC language decodes (grpcio-status in Python, grpc::ExtractErrorDetails in C++).
//
// Thread-safety: pure functions; safe from any thread.
#ifndef USERPILOT_GATEWAY_SERVICE_SERVER_GRPC_STATUS_H_
#define USERPILOT_GATEWAY_SERVICE_SERVER_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/support/status.h"

namespace userpilot::gateway {

// The google.rpc.Status equivalent of `status`, details included.
google::rpc::Status ToRpcStatus(const absl::Status& status);

// The grpc::Status to finish a call with. OK stays OK (with no details).
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_SERVER_GRPC_STATUS_H_
