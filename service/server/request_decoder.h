// Request decoding at the edge: turns a unary call's raw request bytes into its message, and an
// undecodable request into INVALID_ARGUMENT naming what was wrong.
//
// Why the gateway decodes requests itself: with gRPC 1.51's callback API, a request that
// protobuf cannot parse (invalid UTF-8 in a proto3 string field, nesting past protobuf's
// recursion limit of 100, malformed wire data) never reaches the handler. gRPC's
// CallbackUnaryHandler answers it UNIMPLEMENTED with an empty message, no handler runs, so
// nothing is logged or counted, and protobuf prints a plain `[libprotobuf ERROR]` line. A custom
// SerializationTraits cannot help (gRPC drops its status and answers the same UNIMPLEMENTED).
// So the unary methods are registered raw (the generated WithRawCallbackMethod_* bases:
// gateway_service.h), take the request as a grpc::ByteBuffer, and parse it here, where a
// failure becomes an ordinary refusal that the handler logs and counts like any other.
// The response side stays protobuf (SerializeResponse).
//
// What is named: when protobuf refuses the bytes, a second, schema-guided pass over the wire
// data (protobuf's own UnknownFieldSet reader, level by level) finds the first cause and names
// the request's top-level field that holds it:
//   - `user_id: is not valid UTF-8 (byte 2)` for a string field of the request itself;
//   - `metadata: holds google.protobuf.Struct.FieldsEntry.key that is not valid UTF-8` deeper;
//   - `metadata: is nested more than 100 levels deep`;
//   - `request: is not valid protobuf wire data` (or `metadata: ...`) when the bytes themselves
//     are broken (truncated varint, length past the end, wire type 7, field number 0, ...).
//
// Thread-safety: pure functions.
#ifndef USERPILOT_GATEWAY_SERVICE_SERVER_REQUEST_DECODER_H_
#define USERPILOT_GATEWAY_SERVICE_SERVER_REQUEST_DECODER_H_

#include <string>

#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "grpcpp/support/byte_buffer.h"
#include "service/common/call_result.h"

namespace userpilot::gateway {

// The field path used when no field of the request can be blamed.
inline constexpr absl::string_view kWholeRequestField = "request";

// Parses `bytes` into `out` (cleared first). OK, or INVALID_ARGUMENT with one violation naming
// what was wrong (see above).
CallStatus DecodeRequest(const grpc::ByteBuffer& bytes, google::protobuf::Message& out);

// The same on bytes already in one string (for tests).
CallStatus DecodeRequest(absl::string_view bytes, google::protobuf::Message& out);

// Serializes a response for a raw method. Never fails for a message the gateway built.
grpc::ByteBuffer SerializeResponse(const google::protobuf::Message& response);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_SERVER_REQUEST_DECODER_H_
