// userpilotctl's logic, apart from main: finding a method of the gateway's service, turning the
// request JSON into a message and the answer back into JSON, and describing the methods.
//
// Everything is driven by the service descriptor compiled into upgw_proto, so a method added to
// gateway.proto is callable (and listed) without changing this code. Only unary methods can be
// called; streaming ones are listed as such and refused.
//
// Thread-safety: free functions over immutable descriptors; safe from any thread.
#ifndef USERPILOT_GATEWAY_CLIENTS_CLI_CLI_H_
#define USERPILOT_GATEWAY_CLIENTS_CLI_CLI_H_

#include <istream>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "grpcpp/support/status.h"

namespace userpilot::gateway::cli {

// The service userpilotctl calls: userpilot.gateway.v1.UserpilotGateway.
const google::protobuf::ServiceDescriptor& GatewayService();

// The method named exactly `name` (case-sensitive, e.g. "IdentifyUser"). NOT_FOUND otherwise,
// with a message listing the valid names.
absl::StatusOr<const google::protobuf::MethodDescriptor*> FindMethod(absl::string_view name);

// The request text for the positional argument after the method: the argument itself, all of
// `stdin_stream` for "-", the contents of PATH for "@PATH", and "{}" when there is none.
absl::StatusOr<std::string> ReadRequestText(const std::optional<std::string>& arg,
                                            std::istream& stdin_stream);

// Parses protobuf canonical JSON (proto field names or lowerCamelCase; unknown fields are an
// error) into a new message of `method`'s request type. Blank text means an empty request.
absl::StatusOr<std::unique_ptr<google::protobuf::Message>> ParseRequest(
    const google::protobuf::MethodDescriptor& method, absl::string_view json);

// A new, empty message of `method`'s response type.
std::unique_ptr<google::protobuf::Message> NewResponse(
    const google::protobuf::MethodDescriptor& method);

// `message` as JSON with proto field names, fields at their default values omitted. Pretty:
// indented by two spaces; otherwise one line. No trailing newline. Fails only if protobuf's
// printer does (for example on a string that is not UTF-8).
absl::StatusOr<std::string> MessageToJson(const google::protobuf::Message& message, bool pretty);

// A failed call as `{"code":"INVALID_ARGUMENT","message":"...","details":[...]}`: the details are
// the google.rpc details decoded from `grpc-status-details-bin` (BadRequest, ErrorInfo,
// RetryInfo, QuotaFailure, ... each with its "@type"); a detail of a type this binary does not
// know is shown as {"@type": ..., "value_base64": ...}. No trailing newline.
std::string ErrorToJson(const grpc::Status& status, bool pretty);

// Re-indents compact JSON text by two spaces per level, keeping key order. `{}`/`[]` stay short.
std::string PrettyJson(absl::string_view compact);

// The JSON shape of a message type, e.g. {"user_id": string, "metadata": object}.
std::string MessageShape(const google::protobuf::Descriptor& type);

// Every method of the service: name, response type, request shape. For `list` and --help.
std::string MethodListing();

}  // namespace userpilot::gateway::cli

#endif  // USERPILOT_GATEWAY_CLIENTS_CLI_CLI_H_
