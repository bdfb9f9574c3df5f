// userpilotctl's client and its unary calls, made through the C++ client library (clients/cpp):
// the library connects (TLS, client certificate, bearer token), sets the deadline, sends
// `x-caller`, retries UNAVAILABLE and RESOURCE_EXHAUSTED by its rules (RetryInfo delays, the
// contract's idempotency levels) and decodes the error details; userpilotctl only turns its
// flags into the library's options and JSON into messages and back.
//
// Thread-safety: every function may be called from any thread; CallUnary blocks until the call
// (retries included) ends.
#ifndef USERPILOT_GATEWAY_CLIENTS_CLI_CALL_H_
#define USERPILOT_GATEWAY_CLIENTS_CLI_CALL_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "clients/cli/command_line.h"
#include "clients/cpp/client.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "grpcpp/support/status.h"

namespace userpilot::gateway::cli {

// userpilotctl is the C++ client library's first user.
using client::CallOptions;
using client::Client;
using client::ClientOptions;
using client::Result;

// The library's options for `inv`: --caller as x-caller, the library's retry defaults, TLS from
// the --tls* flags (PEM files read now), and the bearer token from --token_file, else from
// `env_token` (USERPILOT_GATEWAY_TOKEN). INVALID_ARGUMENT naming the flag and the file when a
// file cannot be used; the token itself is never part of a message.
absl::StatusOr<ClientOptions> ClientOptionsFor(const Invocation& inv,
                                               const std::optional<std::string>& env_token);

// Per-call options ending at `deadline`; InfiniteFuture() means no deadline at all.
CallOptions CallOptionsFor(absl::Time deadline);

// Calls `method` (unary only) with `request`, waiting at most `deadline` (InfiniteDuration: no
// deadline). On OK, `response` (of the method's response type) holds the answer. The status is
// the server's, or gRPC's own (UNAVAILABLE when the gateway cannot be reached,
// DEADLINE_EXCEEDED, UNAUTHENTICATED for a token refused over plaintext, ...), after the
// library's retries (at most `max_attempts` attempts; unset: the library's default); INTERNAL
// if the answer does not parse; UNIMPLEMENTED for a streaming method.
grpc::Status CallUnary(Client& client, const google::protobuf::MethodDescriptor& method,
                       const google::protobuf::Message& request,
                       google::protobuf::Message& response, absl::Duration deadline,
                       std::optional<int> max_attempts = std::nullopt);

}  // namespace userpilot::gateway::cli

#endif  // USERPILOT_GATEWAY_CLIENTS_CLI_CALL_H_
