#include "service/server/request_decoder.h"

#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/unknown_field_set.h"
#include "service/common/text_scan.h"

namespace userpilot::gateway {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::UnknownField;
using google::protobuf::UnknownFieldSet;

// protobuf's default recursion limit (io::CodedInputStream): deeper requests are refused.
constexpr int kMaxDepth = 100;

// What is wrong inside one level of a message (no field name yet: the caller adds it).
std::optional<std::string> FindProblem(const Descriptor& type, absl::string_view data, int depth,
                                       bool top_level, FieldViolation* violation);

// Checks one length-delimited field `value` of `field` at `depth` (1 = the request's own fields).
std::optional<std::string> CheckLengthDelimited(const FieldDescriptor& field,
                                                absl::string_view value, int depth) {
  if (field.type() == FieldDescriptor::TYPE_STRING) {
    const TextScan scan = ScanText(value);
    if (!scan.invalid_utf8_at.has_value()) return std::nullopt;
    if (depth == 1) return absl::StrCat("is not valid UTF-8 (byte ", *scan.invalid_utf8_at, ")");
    return absl::StrCat("holds ", field.full_name(), " that is not valid UTF-8");
  }
  if (field.type() == FieldDescriptor::TYPE_MESSAGE) {
    if (depth >= kMaxDepth) {
      return absl::StrCat("is nested more than ", kMaxDepth, " levels deep");
    }
    return FindProblem(*field.message_type(), value, depth + 1, false, nullptr);
  }
  return std::nullopt;  // bytes, or packed numbers: nothing protobuf checks beyond the length.
}

std::optional<std::string> FindProblem(const Descriptor& type, absl::string_view data, int depth,
                                       bool top_level, FieldViolation* violation) {
  UnknownFieldSet fields;
  google::protobuf::io::CodedInputStream input(reinterpret_cast<const uint8_t*>(data.data()),
                                               static_cast<int>(data.size()));
  if (!fields.MergeFromCodedStream(&input) || !input.ConsumedEntireMessage()) {
    return std::string("is not valid protobuf wire data");
  }
  for (int i = 0; i < fields.field_count(); ++i) {
    const UnknownField& wire = fields.field(i);
    const FieldDescriptor* field = type.FindFieldByNumber(wire.number());
    if (field == nullptr || wire.type() != UnknownField::TYPE_LENGTH_DELIMITED) continue;
    std::optional<std::string> problem =
        CheckLengthDelimited(*field, wire.length_delimited(), depth);
    if (!problem.has_value()) continue;
    if (top_level) {
      violation->field = field->name();
      violation->description = *std::move(problem);
    }
    return problem;
  }
  return std::nullopt;
}

FieldViolation DescribeUndecodable(const Descriptor& type, absl::string_view data) {
  FieldViolation violation;
  std::optional<std::string> problem = FindProblem(type, data, 1, true, &violation);
  if (violation.field.empty()) {
    violation.field = std::string(kWholeRequestField);
    violation.description = problem.has_value() ? absl::StrCat(*problem, " for ", type.full_name())
                                                : absl::StrCat("is not a valid ", type.full_name());
  }
  return violation;
}

}  // namespace

CallStatus DecodeRequest(absl::string_view bytes, google::protobuf::Message& out) {
  out.Clear();
  if (out.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return CallStatus();
  out.Clear();
  return InvalidArgumentError({DescribeUndecodable(*out.GetDescriptor(), bytes)});
}

CallStatus DecodeRequest(const grpc::ByteBuffer& bytes, google::protobuf::Message& out) {
  std::vector<grpc::Slice> slices;
  std::string data;
  if (!bytes.Dump(&slices).ok()) {
    return InvalidArgumentError(
        {FieldViolation{std::string(kWholeRequestField), "could not be read"}});
  }
  if (slices.size() == 1) {
    return DecodeRequest(
        absl::string_view(reinterpret_cast<const char*>(slices[0].begin()), slices[0].size()), out);
  }
  data.reserve(bytes.Length());
  for (const grpc::Slice& slice : slices) {
    data.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return DecodeRequest(data, out);
}

grpc::ByteBuffer SerializeResponse(const google::protobuf::Message& response) {
  const std::string data = response.SerializeAsString();
  grpc::Slice slice(data);
  return grpc::ByteBuffer(&slice, 1);
}

}  // namespace userpilot::gateway
