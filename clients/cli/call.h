// userpilotctl's unary calls, made through the C++ client library (clients/cpp): the library
// sets the deadline, sends `x-caller`, retries UNAVAILABLE and RESOURCE_EXHAUSTED by its rules
// (RetryInfo delays, idempotency) and decodes the error details; userpilotctl only turns JSON
// into messages and back.
//
// Thread-safety: every function may be called from any thread; CallUnary blocks until the call
// (retries included) ends.
#ifndef USERPILOT_GATEWAY_CLIENTS_CLI_CALL_H_
#define USERPILOT_GATEWAY_CLIENTS_CLI_CALL_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "clients/cpp/client.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "grpcpp/channel.h"
#include "grpcpp/support/status.h"

namespace userpilot::gateway::cli {

// userpilotctl is the C++ client library's first user.
using client::CallOptions;
using client::Client;
using client::ClientOptions;
using client::Result;

// The library's options for userpilotctl: `caller` as x-caller, the library's retry defaults.
ClientOptions CliClientOptions(const std::string& caller);

// A library client over `channel` (build the channel with Client::ChannelArgumentsFor).
Client MakeClient(const std::shared_ptr<grpc::Channel>& channel, const std::string& caller);

// Per-call options ending at `deadline`; InfiniteFuture() means no deadline at all.
CallOptions CallOptionsFor(absl::Time deadline);

// Calls `method` (unary only) on `channel` with `request`, waiting at most `deadline`
// (InfiniteDuration: no deadline) and sending `caller` as the `x-caller` metadata. On OK,
// `response` (of the method's response type) holds the answer. The status is the server's, or
// gRPC's own (UNAVAILABLE when the gateway cannot be reached, DEADLINE_EXCEEDED, ...), after
// the library's retries (at most `max_attempts` attempts; unset: the library's default);
// INTERNAL if the answer does not parse; UNIMPLEMENTED for a streaming method.
grpc::Status CallUnary(const std::shared_ptr<grpc::Channel>& channel,
                       const google::protobuf::MethodDescriptor& method,
                       const google::protobuf::Message& request,
                       google::protobuf::Message& response, absl::Duration deadline,
                       const std::string& caller, std::optional<int> max_attempts = std::nullopt);

}  // namespace userpilot::gateway::cli

#endif  // USERPILOT_GATEWAY_CLIENTS_CLI_CALL_H_
