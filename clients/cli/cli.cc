#include "clients/cli/cli.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "clients/cpp/error_details.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/util/json_util.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway::cli {

using client::ErrorDetails;
using client::StatusCodeName;
namespace {

namespace pb = google::protobuf;

// `text` as a JSON string literal, escaped by protobuf's JSON printer (the one that prints every
// message here), so userpilotctl has no escaper of its own. The printer drops bytes that are
// not UTF-8, with a log line on stderr that would break the error JSON there: silenced.
std::string JsonString(absl::string_view text) {
  pb::Value value;
  value.set_string_value(std::string(text));
  std::string json;
  pb::LogSilencer silence;
  if (!pb::util::MessageToJsonString(value, &json).ok()) return "\"\"";
  return json;
}

// One google.rpc detail as JSON; types unknown to this binary keep their raw bytes.
std::string DetailToJson(const pb::Any& detail) {
  pb::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  if (pb::util::MessageToJsonString(detail, &json, options).ok()) return json;
  return absl::StrCat("{\"@type\":", JsonString(detail.type_url()),
                      ",\"value_base64\":", JsonString(absl::Base64Escape(detail.value())), "}");
}

std::string FieldShape(const pb::FieldDescriptor& field, int depth);

std::string TypeShape(const pb::FieldDescriptor& field, int depth) {
  switch (field.cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_STRING:
      return field.type() == pb::FieldDescriptor::TYPE_BYTES ? "base64" : "string";
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      return "bool";
    case pb::FieldDescriptor::CPPTYPE_INT32:
    case pb::FieldDescriptor::CPPTYPE_UINT32:
    case pb::FieldDescriptor::CPPTYPE_INT64:
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      return "int";
    case pb::FieldDescriptor::CPPTYPE_FLOAT:
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
      return "number";
    case pb::FieldDescriptor::CPPTYPE_ENUM: {
      std::vector<std::string> names;
      for (int i = 0; i < field.enum_type()->value_count(); ++i) {
        names.push_back(JsonString(field.enum_type()->value(i)->name()));
      }
      return absl::StrJoin(names, "|");
    }
    case pb::FieldDescriptor::CPPTYPE_MESSAGE: {
      const std::string& name = field.message_type()->full_name();
      if (name == "google.protobuf.Struct") return "object";
      if (name == "google.protobuf.Value") return "any";
      if (name == "google.protobuf.ListValue") return "array";
      if (name == "google.protobuf.Timestamp") return "timestamp";
      if (name == "google.protobuf.Duration") return "duration";
      if (depth >= 4) return "{...}";
      std::vector<std::string> parts;
      for (int i = 0; i < field.message_type()->field_count(); ++i) {
        parts.push_back(FieldShape(*field.message_type()->field(i), depth + 1));
      }
      return absl::StrCat("{", absl::StrJoin(parts, ", "), "}");
    }
  }
  return "?";
}

std::string FieldShape(const pb::FieldDescriptor& field, int depth) {
  std::string shape;
  if (field.is_map()) {
    shape = absl::StrCat("{string: ", TypeShape(*field.message_type()->map_value(), depth), "}");
  } else if (field.is_repeated()) {
    shape = absl::StrCat("[", TypeShape(field, depth), "]");
  } else {
    shape = TypeShape(field, depth);
  }
  return absl::StrCat(JsonString(field.name()), ": ", shape);
}

}  // namespace

const google::protobuf::ServiceDescriptor& GatewayService() {
  // Naming a generated message links gateway.pb.cc, which registers the service.
  return *v1::IdentifyUserRequest::descriptor()->file()->FindServiceByName("UserpilotGateway");
}

absl::StatusOr<const google::protobuf::MethodDescriptor*> FindMethod(absl::string_view name) {
  const pb::ServiceDescriptor& service = GatewayService();
  std::vector<std::string> names;
  for (int i = 0; i < service.method_count(); ++i) {
    if (service.method(i)->name() == name) return service.method(i);
    names.push_back(service.method(i)->name());
  }
  return absl::NotFoundError(absl::StrCat("unknown method '", name, "'; the methods of ",
                                          service.full_name(),
                                          " are: ", absl::StrJoin(names, ", ")));
}

absl::StatusOr<std::string> ReadRequestText(const std::optional<std::string>& arg,
                                            std::istream& stdin_stream) {
  if (!arg.has_value()) return std::string("{}");
  if (*arg == "-") {
    return std::string(std::istreambuf_iterator<char>(stdin_stream),
                       std::istreambuf_iterator<char>());
  }
  if (arg->empty() || (*arg)[0] != '@') return *arg;
  std::string path = arg->substr(1);
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot open '", path, "': ", std::strerror(errno)));
  }
  std::string text;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  int err = errno;
  bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read '", path, "': ", std::strerror(err)));
  }
  return text;
}

absl::StatusOr<std::unique_ptr<google::protobuf::Message>> ParseRequest(
    const google::protobuf::MethodDescriptor& method, absl::string_view json) {
  const pb::Descriptor& type = *method.input_type();
  std::unique_ptr<pb::Message> request(
      pb::MessageFactory::generated_factory()->GetPrototype(&type)->New());
  if (absl::StripAsciiWhitespace(json).empty()) json = "{}";
  pb::util::Status s = pb::util::JsonStringToMessage(std::string(json), request.get());
  if (!s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("the request is not a valid ", type.name(),
                                                   " in JSON: ", std::string(s.message()),
                                                   "\nexpected shape: ", MessageShape(type)));
  }
  return request;
}

std::unique_ptr<google::protobuf::Message> NewResponse(
    const google::protobuf::MethodDescriptor& method) {
  return std::unique_ptr<pb::Message>(
      pb::MessageFactory::generated_factory()->GetPrototype(method.output_type())->New());
}

absl::StatusOr<std::string> MessageToJson(const google::protobuf::Message& message, bool pretty) {
  pb::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = false;
  std::string json;
  pb::util::Status s = pb::util::MessageToJsonString(message, &json, options);
  if (!s.ok()) {
    return absl::InternalError(absl::StrCat("cannot print the ", message.GetDescriptor()->name(),
                                            " as JSON: ", std::string(s.message())));
  }
  return pretty ? PrettyJson(json) : json;
}

std::string ErrorToJson(const grpc::Status& status, bool pretty) {
  const ErrorDetails decoded(status);
  std::vector<std::string> details;
  for (const pb::Any& detail : decoded.all()) details.push_back(DetailToJson(detail));
  if (decoded.malformed()) {
    details.push_back(absl::StrCat(
        "{\"error\":\"grpc-status-details-bin is not a google.rpc.Status\",\"value_base64\":",
        JsonString(absl::Base64Escape(status.error_details())), "}"));
  }
  std::string json = absl::StrCat("{\"code\":", JsonString(StatusCodeName(status.error_code())),
                                  ",\"message\":", JsonString(status.error_message()),
                                  ",\"details\":[", absl::StrJoin(details, ","), "]}");
  return pretty ? PrettyJson(json) : json;
}

std::string PrettyJson(absl::string_view compact) {
  std::string out;
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  auto newline = [&] {
    out += '\n';
    out.append(2 * depth, ' ');
  };
  for (size_t i = 0; i < compact.size(); ++i) {
    char c = compact[i];
    if (in_string) {
      out += c;
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        out += c;
        break;
      case '{':
      case '[': {
        size_t next = compact.find_first_not_of(" \t\r\n", i + 1);
        char close = c == '{' ? '}' : ']';
        if (next != absl::string_view::npos && compact[next] == close) {
          out += c;
          out += close;
          i = next;
        } else {
          out += c;
          ++depth;
          newline();
        }
        break;
      }
      case '}':
      case ']':
        --depth;
        newline();
        out += c;
        break;
      case ',':
        out += c;
        newline();
        break;
      case ':':
        out += ": ";
        break;
      case ' ':
      case '\t':
      case '\r':
      case '\n':
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string MessageShape(const google::protobuf::Descriptor& type) {
  std::vector<std::string> parts;
  for (int i = 0; i < type.field_count(); ++i) parts.push_back(FieldShape(*type.field(i), 1));
  return absl::StrCat("{", absl::StrJoin(parts, ", "), "}");
}

std::string MethodListing() {
  const pb::ServiceDescriptor& service = GatewayService();
  std::string out;
  for (int i = 0; i < service.method_count(); ++i) {
    const pb::MethodDescriptor& m = *service.method(i);
    absl::string_view note = m.server_streaming()   ? "  (stream of messages)"
                             : m.client_streaming() ? "  (the request is an ImportHeader; --file)"
                                                    : "";
    const pb::Descriptor& request = m.client_streaming() && m.name() == "ImportData"
                                        ? *v1::ImportHeader::descriptor()
                                        : *m.input_type();
    absl::StrAppend(&out, "  ", m.name(), " -> ", m.output_type()->name(), note, "\n      ",
                    MessageShape(request), "\n");
  }
  return out;
}

}  // namespace userpilot::gateway::cli
