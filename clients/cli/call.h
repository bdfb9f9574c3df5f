// One blocking unary call of any method of the gateway, by descriptor.
//
// Uses gRPC's generic stub, so the request and response are plain protobuf messages whose types
// come from the method descriptor: userpilotctl needs no per-method code.
//
// Thread-safety: CallUnary may be called from any thread; it blocks until the call ends.
#ifndef USERPILOT_GATEWAY_CLIENTS_CLI_CALL_H_
#define USERPILOT_GATEWAY_CLIENTS_CLI_CALL_H_

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "grpcpp/channel.h"
#include "grpcpp/support/status.h"

namespace userpilot::gateway::cli {

// Calls `method` (unary only) on `channel` with `request`, waiting at most `deadline`
// (InfiniteDuration: no deadline) and sending `caller` as the `x-caller` metadata. On OK,
// `response` (of the method's response type) holds the answer. The status is the server's, or
// gRPC's own (UNAVAILABLE when the gateway cannot be reached, DEADLINE_EXCEEDED, ...);
// INTERNAL if the answer does not parse; UNIMPLEMENTED for a streaming method.
grpc::Status CallUnary(const std::shared_ptr<grpc::Channel>& channel,
                       const google::protobuf::MethodDescriptor& method,
                       const google::protobuf::Message& request,
                       google::protobuf::Message& response, absl::Duration deadline,
                       const std::string& caller);

}  // namespace userpilot::gateway::cli

#endif  // USERPILOT_GATEWAY_CLIENTS_CLI_CALL_H_
