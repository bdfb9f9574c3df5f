#include "service/upstream/json_mapping.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/type_resolver.h"
#include "google/protobuf/util/type_resolver_util.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "rapidjson/memorystream.h"
#include "rapidjson/reader.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "service/upstream/request_json_writer.h"

namespace userpilot::gateway {
namespace {

using google::protobuf::ListValue;
using google::protobuf::Message;
using google::protobuf::Struct;
using google::protobuf::Value;

constexpr absl::string_view kTypeUrlPrefix = "type.googleapis.com";

google::protobuf::util::TypeResolver& Resolver() {
  // Never destroyed: used from any thread until exit. Resolving reads the (thread-safe)
  // generated pool only.
  static google::protobuf::util::TypeResolver* const resolver =
      google::protobuf::util::NewTypeResolverForDescriptorPool(
          std::string(kTypeUrlPrefix), google::protobuf::DescriptorPool::generated_pool());
  return *resolver;
}

// Cannot happen: proto3 messages always serialize, and their types are in the generated pool.
// Crash loudly rather than send a wrong body.
[[noreturn]] void PrintingFailed(const Message& message, absl::string_view why) {
  std::fprintf(stderr, "json_mapping: printing %s failed: %.*s\n",
               message.GetDescriptor()->full_name().c_str(), static_cast<int>(why.size()),
               why.data());
  std::abort();
}

// Compact proto3 JSON of `message` with proto field names. Unlike MessageToJsonString, map
// entries (Struct keys) come out sorted, because the message is serialized deterministically
// before protobuf's converter prints it in wire order.
std::string Json(const Message& message) {
  std::string binary;
  {
    google::protobuf::io::StringOutputStream stream(&binary);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    if (!message.SerializeToCodedStream(&coded)) PrintingFailed(message, "serialization");
  }
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  const auto status = google::protobuf::util::BinaryToJsonString(
      &Resolver(), absl::StrCat(kTypeUrlPrefix, "/", message.GetDescriptor()->full_name()), binary,
      &json, options);
  if (!status.ok()) PrintingFailed(message, status.ToString());
  return json;
}

bool HasProperties(const Struct& metadata) { return !metadata.fields().empty(); }

// True when `metadata` is present but has no properties: it must be dropped to be omitted.
template <typename T>
bool HasEmptyMetadata(const T& message) {
  return message.has_metadata() && !HasProperties(message.metadata());
}

template <typename T>
void DropEmptyMetadata(T& message) {
  if (HasEmptyMetadata(message)) message.clear_metadata();
}

// Prints a message whose shape is the REST body's, after dropping empty metadata.
template <typename T>
std::string MirroredBody(const T& request) {
  if (!HasEmptyMetadata(request)) return Json(request);
  T copy = request;
  DropEmptyMetadata(copy);
  return Json(copy);
}

// Appends `"key":<value_json>` to an object still open in `json` (which ends without '}').
void AppendMember(std::string& json, absl::string_view key, absl::string_view value_json) {
  if (json.size() > 1) json += ',';
  absl::StrAppend(&json, "\"", key, "\":", value_json);
}

std::string StringJson(const std::string& text) {
  Value value;
  value.set_string_value(text);
  return Json(value);
}

// identify's `company`: `company_id` first, then the metadata keys, flattened beside it.
std::string CompanyObject(const v1::Company& company) {
  Struct properties;
  if (company.has_metadata()) properties = company.metadata();
  properties.mutable_fields()->erase("company_id");
  properties.mutable_fields()->erase("id");
  std::string props = Json(properties);  // "{}" or "{...}"
  if (company.company_id().empty()) return props;
  std::string json = "{";
  AppendMember(json, "company_id", StringJson(company.company_id()));
  if (props.size() > 2) {
    absl::StrAppend(&json, ",", absl::string_view(props).substr(1));  // Its '}' closes ours.
  } else {
    json += '}';
  }
  return json;
}

std::string IdList(absl::string_view key,
                   const google::protobuf::RepeatedPtrField<std::string>& ids) {
  ListValue list;
  for (const std::string& id : ids) list.add_values()->set_string_value(id);
  std::string json = "{";
  AppendMember(json, key, Json(list));
  json += '}';
  return json;
}

// ----- Lenient reading -----

// Answers are read with RapidJSON (rapidjson-dev): one pass, linear in the body's size, through
// a handler that stops at kMaxJsonDepth, so neither a large nor a deeply nested body can hold a
// thread for long. (protobuf's JsonStringToMessage, used before, is super-linear in nesting:
// 17 s for 12,000 nested arrays on this machine, and about 8 MB/s on flat job lists against
// RapidJSON's 50.)
using JsonValue = rapidjson::Value;

// Builds `doc` from the parser's events, refusing to nest deeper than kMaxJsonDepth.
class DepthBoundedHandler {
 public:
  explicit DepthBoundedHandler(rapidjson::Document& doc) : doc_(doc) {}

  bool too_deep() const { return too_deep_; }

  bool Null() { return doc_.Null(); }
  bool Bool(bool b) { return doc_.Bool(b); }
  bool Int(int i) { return doc_.Int(i); }
  bool Uint(unsigned u) { return doc_.Uint(u); }
  bool Int64(int64_t i) { return doc_.Int64(i); }
  bool Uint64(uint64_t u) { return doc_.Uint64(u); }
  bool Double(double d) { return doc_.Double(d); }
  bool RawNumber(const char* text, rapidjson::SizeType length, bool copy) {
    return doc_.RawNumber(text, length, copy);
  }
  bool String(const char* text, rapidjson::SizeType length, bool copy) {
    return doc_.String(text, length, copy);
  }
  bool Key(const char* text, rapidjson::SizeType length, bool copy) {
    return doc_.Key(text, length, copy);
  }
  bool StartObject() { return Deeper() && doc_.StartObject(); }
  bool EndObject(rapidjson::SizeType members) {
    --depth_;
    return doc_.EndObject(members);
  }
  bool StartArray() { return Deeper() && doc_.StartArray(); }
  bool EndArray(rapidjson::SizeType elements) {
    --depth_;
    return doc_.EndArray(elements);
  }

 private:
  bool Deeper() {
    if (++depth_ <= kMaxJsonDepth) return true;
    too_deep_ = true;
    return false;
  }

  rapidjson::Document& doc_;
  int depth_ = 0;
  bool too_deep_ = false;
};

// Parses `json` (at most `max_bytes`) into `doc`. The error says what was wrong and where,
// never quoting the body.
absl::Status ParseJsonDocument(absl::string_view json, size_t max_bytes, rapidjson::Document* doc) {
  if (json.size() > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the body is ", json.size(), " bytes, over the ", max_bytes, " read"));
  }
  absl::ConsumePrefix(&json, "\xEF\xBB\xBF");  // A UTF-8 byte order mark, which JSON forbids.
  rapidjson::ParseResult result;
  bool too_deep = false;
  auto generate = [&](rapidjson::Document& target) {
    DepthBoundedHandler handler(target);
    rapidjson::MemoryStream stream(json.data(), json.size());
    rapidjson::Reader reader;
    // Iterative: no recursion, whatever the nesting; strings must be valid UTF-8 (they end up
    // in proto string fields).
    result = reader.Parse<rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag>(
        stream, handler);
    too_deep = handler.too_deep();
    return !result.IsError();
  };
  doc->Populate(generate);
  if (too_deep) {
    return absl::InvalidArgumentError(
        absl::StrCat("not read: nested deeper than ", kMaxJsonDepth, " levels"));
  }
  if (result.IsError()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not JSON: ", rapidjson::GetParseError_En(result.Code()), " (at byte ",
                     result.Offset(), ")"));
  }
  return absl::OkStatus();
}

absl::string_view StringOf(const JsonValue& value) {
  return absl::string_view(value.GetString(), value.GetStringLength());
}

// The value of `name` in `object`, or nullptr when absent or null.
const JsonValue* Field(const JsonValue& object, const char* name) {
  const auto it = object.FindMember(name);
  if (it == object.MemberEnd() || it->value.IsNull()) return nullptr;
  return &it->value;
}

std::optional<int64_t> IntegerFromDouble(double d) {
  // 2^63 is exactly representable; anything at or beyond it does not fit an int64.
  if (!std::isfinite(d) || std::fabs(d) >= 9223372036854775808.0) return std::nullopt;
  return static_cast<int64_t>(std::llround(d));
}

std::optional<int64_t> Integer(const JsonValue& value) {
  if (value.IsInt64()) return value.GetInt64();
  if (value.IsUint64()) return std::nullopt;  // Beyond int64.
  if (value.IsNumber()) return IntegerFromDouble(value.GetDouble());
  if (value.IsString()) {
    const absl::string_view text = absl::StripAsciiWhitespace(StringOf(value));
    int64_t i = 0;
    if (absl::SimpleAtoi(text, &i)) return i;
    double d = 0;
    if (!text.empty() && absl::SimpleAtod(text, &d)) return IntegerFromDouble(d);
  }
  return std::nullopt;
}

// Compact JSON of `value`, members in the order sent.
std::string CompactJson(const JsonValue& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::optional<std::string> Text(const JsonValue& value) {
  if (value.IsString()) return std::string(StringOf(value));
  if (value.IsBool()) return std::string(value.GetBool() ? "true" : "false");
  if (value.IsNumber() || value.IsObject() || value.IsArray()) return CompactJson(value);
  return std::nullopt;
}

template <typename Setter>
void SetText(const JsonValue& object, const char* name, Setter set) {
  if (const JsonValue* v = Field(object, name)) {
    if (auto text = Text(*v)) set(std::move(*text));
  }
}

template <typename Setter>
void SetInteger(const JsonValue& object, const char* name, Setter set) {
  if (const JsonValue* v = Field(object, name)) {
    if (auto i = Integer(*v)) set(*i);
  }
}

// `text` as an instant when it is an RFC 3339 time with a zone within Timestamp's range
// (years 1 to 9999).
std::optional<google::protobuf::Timestamp> Rfc3339Instant(const std::string& text) {
  absl::Time time;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, text, &time, &error)) return std::nullopt;
  constexpr int64_t kMinSeconds = -62135596800;  // 0001-01-01T00:00:00Z
  constexpr int64_t kMaxSeconds = 253402300799;  // 9999-12-31T23:59:59Z
  const int64_t seconds = absl::ToUnixSeconds(time);
  if (seconds < kMinSeconds || seconds > kMaxSeconds) return std::nullopt;
  google::protobuf::Timestamp timestamp;
  timestamp.set_seconds(seconds);
  timestamp.set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(time - absl::FromUnixSeconds(seconds))));
  return timestamp;
}

v1::Job JobFromObject(const JsonValue& object) {
  v1::Job job;
  SetText(object, "job_id", [&](std::string s) { job.set_job_id(std::move(s)); });
  SetText(object, "status", [&](std::string s) {
    job.set_status(ParseJobStatus(s));
    job.set_raw_status(std::move(s));
  });
  SetText(object, "type", [&](std::string s) { job.set_type(std::move(s)); });
  SetText(object, "filename", [&](std::string s) { job.set_filename(std::move(s)); });
  SetInteger(object, "file_size", [&](int64_t i) { job.set_file_size(i); });
  SetInteger(object, "total_rows", [&](int64_t i) { job.set_total_rows(i); });
  SetInteger(object, "completed_rows", [&](int64_t i) { job.set_completed_rows(i); });
  SetText(object, "start_time", [&](std::string s) {
    if (auto t = Rfc3339Instant(s)) *job.mutable_start_timestamp() = *t;
    job.set_start_time(std::move(s));
  });
  SetText(object, "end_time", [&](std::string s) {
    if (auto t = Rfc3339Instant(s)) *job.mutable_end_timestamp() = *t;
    job.set_end_time(std::move(s));
  });
  SetInteger(object, "elapsed_time", [&](int64_t i) { job.set_elapsed_time(i); });
  SetText(object, "links", [&](std::string s) { job.set_links(std::move(s)); });
  SetText(object, "submitted_at", [&](std::string s) {
    if (auto t = Rfc3339Instant(s)) *job.mutable_submitted_timestamp() = *t;
    job.set_submitted_at(std::move(s));
  });
  return job;
}

absl::string_view KindName(const JsonValue& value) {
  switch (value.GetType()) {
    case rapidjson::kNullType:
      return "null";
    case rapidjson::kNumberType:
      return "a number";
    case rapidjson::kStringType:
      return "a string";
    case rapidjson::kFalseType:
    case rapidjson::kTrueType:
      return "a boolean";
    case rapidjson::kObjectType:
      return "an object";
    case rapidjson::kArrayType:
      return "an array";
  }
  return "nothing";
}

UpstreamError ErrorFromObject(const JsonValue& object) {
  UpstreamError error;
  SetText(object, "error", [&](std::string s) { error.error = std::move(s); });
  SetText(object, "error_code", [&](std::string s) { error.error_code = std::move(s); });
  SetText(object, "message", [&](std::string s) { error.message = std::move(s); });
  SetText(object, "details", [&](std::string s) { error.details = std::move(s); });
  return error;
}

bool IsEmpty(const UpstreamError& e) {
  return e.error.empty() && e.error_code.empty() && e.message.empty() && e.details.empty();
}

}  // namespace

// ----- Requests -----

// The body written into this thread's scratch buffer, then copied out at its exact size: one
// allocation per body instead of one per doubling of a growing string.
template <typename Request>
std::string DirectBody(const Request& request) {
  // Kept between calls up to kMaxKeptScratch; a larger body's buffer is let go after use.
  constexpr size_t kMaxKeptScratch = size_t{64} << 10;
  thread_local std::string scratch;
  scratch.clear();
  AppendRequestBody(request, scratch);
  std::string json(scratch);
  if (scratch.capacity() > kMaxKeptScratch) std::string().swap(scratch);
  return json;
}

std::string RequestBody(const v1::IdentifyUserRequest& request) { return DirectBody(request); }

std::string RequestBody(const v1::IdentifyCompanyRequest& request) { return DirectBody(request); }

std::string RequestBody(const v1::TrackEventRequest& request) { return DirectBody(request); }

std::string ProtobufRequestBody(const v1::IdentifyUserRequest& request) {
  // user_id and metadata mirror the proto: let protobuf print them, then add the flattened
  // company by hand.
  v1::IdentifyUserRequest head;
  head.set_user_id(request.user_id());
  if (HasProperties(request.metadata())) *head.mutable_metadata() = request.metadata();
  std::string json = Json(head);
  if (!request.has_company()) return json;
  json.pop_back();  // The closing '}'.
  AppendMember(json, "company", CompanyObject(request.company()));
  json += '}';
  return json;
}

std::string ProtobufRequestBody(const v1::IdentifyCompanyRequest& request) {
  return MirroredBody(request);
}

std::string RequestBody(const v1::BulkIdentifyUsersRequest& request) {
  for (const v1::BulkUser& user : request.users()) {
    if (!HasEmptyMetadata(user)) continue;
    v1::BulkIdentifyUsersRequest copy = request;
    for (v1::BulkUser& u : *copy.mutable_users()) DropEmptyMetadata(u);
    return Json(copy);
  }
  return Json(request);
}

std::string RequestBody(const v1::BulkIdentifyCompaniesRequest& request) {
  for (const v1::BulkCompany& company : request.companies()) {
    if (!HasEmptyMetadata(company)) continue;
    v1::BulkIdentifyCompaniesRequest copy = request;
    for (v1::BulkCompany& c : *copy.mutable_companies()) DropEmptyMetadata(c);
    return Json(copy);
  }
  return Json(request);
}

std::string ProtobufRequestBody(const v1::TrackEventRequest& request) {
  return MirroredBody(request);
}

std::string RequestBody(const v1::DeleteUsersRequest& request) {
  return IdList("users", request.user_ids());
}

std::string RequestBody(const v1::DeleteCompaniesRequest& request) {
  return IdList("companies", request.company_ids());
}

// ----- Responses -----

absl::StatusOr<HttpForm> HttpFormOf(const v1::ListJobsRequest&) { return HttpForm(); }

absl::StatusOr<HttpForm> HttpFormOf(const v1::GetJobRequest& request) {
  HttpForm form;
  form.path_parameter = request.job_id();
  return form;
}

absl::StatusOr<HttpForm> HttpFormOf(const ImportFileRequest& request) {
  absl::string_view content_type;
  if (request.format == v1::IMPORT_FORMAT_CSV) content_type = "text/csv";
  if (request.format == v1::IMPORT_FORMAT_NDJSON) content_type = "application/x-ndjson";
  const bool targeted = request.target == v1::IMPORT_TARGET_HISTORICAL_IMPORT ||
                        request.target == v1::IMPORT_TARGET_USERS_BULK ||
                        request.target == v1::IMPORT_TARGET_COMPANIES_BULK;
  if (!targeted || content_type.empty() || request.file == nullptr || request.filename.empty()) {
    return absl::InvalidArgumentError(
        "ImportFile needs a target, a format, a filename and a file; nothing was sent");
  }
  HttpForm form;
  form.upload = MakeMultipartFileBody("file", request.filename, content_type, request.file);
  return form;
}

absl::Status ParseResponse(absl::string_view body, absl::string_view, v1::Job* job) {
  absl::StatusOr<v1::Job> parsed = ParseJob(body);
  if (!parsed.ok()) return parsed.status();
  if (parsed->job_id().empty() && parsed->raw_status().empty()) {
    return absl::InvalidArgumentError("the job object has neither a job_id nor a status");
  }
  *job = *std::move(parsed);
  return absl::OkStatus();
}

absl::Status ParseResponse(absl::string_view body, absl::string_view, v1::ListJobsResponse* list) {
  absl::StatusOr<v1::ListJobsResponse> parsed = ParseJobList(body);
  if (!parsed.ok()) return parsed.status();
  *list = *std::move(parsed);
  return absl::OkStatus();
}

v1::JobStatus ParseJobStatus(absl::string_view raw_status) {
  const std::string status = absl::AsciiStrToLower(absl::StripAsciiWhitespace(raw_status));
  if (status == "queued") return v1::JOB_STATUS_QUEUED;
  if (status == "validating") return v1::JOB_STATUS_VALIDATING;
  if (status == "processing") return v1::JOB_STATUS_PROCESSING;
  if (status == "pending_refresh") return v1::JOB_STATUS_PENDING_REFRESH;
  if (status == "completed") return v1::JOB_STATUS_COMPLETED;
  if (status == "failed") return v1::JOB_STATUS_FAILED;
  return v1::JOB_STATUS_UNSPECIFIED;
}

absl::StatusOr<v1::Job> ParseJob(absl::string_view json) {
  rapidjson::Document doc;
  if (absl::Status parsed = ParseJsonDocument(json, kMaxAnswerBytes, &doc); !parsed.ok()) {
    return parsed;
  }
  if (!doc.IsObject()) {
    return absl::InvalidArgumentError(absl::StrCat("expected a job object, got ", KindName(doc)));
  }
  return JobFromObject(doc);
}

absl::StatusOr<v1::ListJobsResponse> ParseJobList(absl::string_view json) {
  rapidjson::Document doc;
  if (absl::Status parsed = ParseJsonDocument(json, kMaxAnswerBytes, &doc); !parsed.ok()) {
    return parsed;
  }
  const JsonValue* list = nullptr;
  if (doc.IsArray()) {
    list = &doc;
  } else if (doc.IsObject()) {
    for (const char* key : {"jobs", "data"}) {
      const JsonValue* wrapped = Field(doc, key);
      if (wrapped != nullptr && wrapped->IsArray()) {
        list = wrapped;
        break;
      }
    }
  }
  if (list == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected an array of jobs, got ", KindName(doc)));
  }
  v1::ListJobsResponse response;
  for (const JsonValue& element : list->GetArray()) {
    if (element.IsObject()) *response.add_jobs() = JobFromObject(element);
  }
  return response;
}

std::vector<UpstreamError> ParseErrorBody(absl::string_view body) {
  std::vector<UpstreamError> errors;
  rapidjson::Document doc;
  if (!ParseJsonDocument(body, kMaxErrorBodyBytes, &doc).ok() || !doc.IsObject()) return errors;
  auto add = [&errors](UpstreamError e) {
    if (!IsEmpty(e)) errors.push_back(std::move(e));
  };
  if (const JsonValue* list = Field(doc, "errors")) {
    if (list->IsArray()) {
      for (const JsonValue& entry : list->GetArray()) {
        if (entry.IsObject()) {
          add(ErrorFromObject(entry));
        } else if (entry.IsString()) {
          add(UpstreamError{"", "", std::string(StringOf(entry)), ""});
        }
      }
    } else if (list->IsObject()) {
      add(ErrorFromObject(*list));
    } else if (list->IsString()) {
      add(UpstreamError{"", "", std::string(StringOf(*list)), ""});
    }
  }
  if (errors.empty()) add(ErrorFromObject(doc));
  return errors;
}

}  // namespace userpilot::gateway
