// Fuzz target: what the gateway does with a caller's bytes before anything leaves it - request
// decoding (server/request_decoder.h), validation (validation/request_validator.h) and, for a
// request that passes, its JSON body (upstream/json_mapping.h).
//
// Input: the first byte picks the RPC (its value mod 9, in the order of kRpcs below) and the
// limits (the gateway's defaults, or the small ones of the validator's tests when (byte / 9) is
// odd); the rest is the request's protobuf wire bytes, as a caller sends them.
//
// Properties, besides the sanitizers':
//  - a request that cannot be decoded is INVALID_ARGUMENT with exactly one violation naming a
//    field;
//  - an invalid request is INVALID_ARGUMENT with 1 to max_violations + 1 violations, each with
//    a field and a description, in valid UTF-8 (they travel in google.rpc.BadRequest, whose
//    strings are proto3 strings);
//  - a valid request's body is one JSON object, valid UTF-8, that RapidJSON reads back, and
//    carries the request's id; a GetJob's path parameter is its job id.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "fuzz/fuzz_check.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "service/server/request_decoder.h"
#include "service/upstream/json_mapping.h"
#include "service/validation/request_validator.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {
namespace {

ValidationLimits SmallLimits() {
  // tests/util/validation_test_util.h TestLimits(): limits small enough to reach.
  ValidationLimits limits;
  limits.max_id_bytes = 8;
  limits.max_event_name_bytes = 10;
  limits.max_metadata_keys = 4;
  limits.max_metadata_key_bytes = 10;
  limits.max_string_value_bytes = 5;
  limits.max_bulk_rows = 3;
  limits.max_delete_ids = 3;
  limits.max_job_id_bytes = 16;
  limits.max_violations = 3;
  return limits;
}

void CheckRefusal(const CallStatus& status, size_t most, absl::string_view stage) {
  FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument,
             std::string(stage) + ": " + status.ToString());
  const auto& violations = status.facts().violations;
  FUZZ_CHECK(!violations.empty() && violations.size() <= most,
             std::string(stage) + ": " + std::to_string(violations.size()) + " violations");
  for (const FieldViolation& v : violations) {
    FUZZ_CHECK(!v.field.empty() && !v.description.empty(), std::string(stage) + ": " + v.field);
    FUZZ_CHECK(fuzz::IsUtf8(v.field) && fuzz::IsUtf8(v.description),
               std::string(stage) + ": violation not UTF-8");
  }
}

// The body must be a JSON object in valid UTF-8 whose `key` (when given) is `id`.
void CheckBody(const std::string& body, const char* key, const std::string& id) {
  FUZZ_CHECK(fuzz::IsUtf8(body), "body not UTF-8");
  rapidjson::Document doc;
  doc.Parse<rapidjson::kParseValidateEncodingFlag>(body.data(), body.size());
  FUZZ_CHECK(!doc.HasParseError(),
             std::string("body not JSON: ") + rapidjson::GetParseError_En(doc.GetParseError()));
  FUZZ_CHECK(doc.IsObject(), "body not a JSON object");
  if (key != nullptr) {
    auto it = doc.FindMember(key);
    FUZZ_CHECK(it != doc.MemberEnd() && it->value.IsString(), std::string("body lacks ") + key);
    FUZZ_CHECK(absl::string_view(it->value.GetString(), it->value.GetStringLength()) == id,
               std::string("body's ") + key + " is not the request's");
  }
}

void CheckForm(const v1::IdentifyUserRequest& r) {
  CheckBody(RequestBody(r), "user_id", r.user_id());
}
void CheckForm(const v1::IdentifyCompanyRequest& r) {
  CheckBody(RequestBody(r), "company_id", r.company_id());
}
void CheckForm(const v1::BulkIdentifyUsersRequest& r) { CheckBody(RequestBody(r), nullptr, ""); }
void CheckForm(const v1::BulkIdentifyCompaniesRequest& r) {
  CheckBody(RequestBody(r), nullptr, "");
}
void CheckForm(const v1::TrackEventRequest& r) {
  CheckBody(RequestBody(r), "user_id", r.user_id());
}
void CheckForm(const v1::ListJobsRequest& r) {
  auto form = HttpFormOf(r);
  FUZZ_CHECK(form.ok() && form->json.empty() && form->path_parameter.empty(), "ListJobs form");
}
void CheckForm(const v1::GetJobRequest& r) {
  auto form = HttpFormOf(r);
  FUZZ_CHECK(form.ok() && form->path_parameter == r.job_id(), "GetJob form");
}
void CheckForm(const v1::DeleteUsersRequest& r) { CheckBody(RequestBody(r), nullptr, ""); }
void CheckForm(const v1::DeleteCompaniesRequest& r) { CheckBody(RequestBody(r), nullptr, ""); }

template <typename Request>
void Check(absl::string_view wire, const RequestValidator& validator) {
  Request request;
  const CallStatus decoded = DecodeRequest(wire, request);
  if (!decoded.ok()) {
    CheckRefusal(decoded, 1, "decode");
    return;
  }
  const CallStatus valid = validator.Validate(request);
  if (!valid.ok()) {
    CheckRefusal(valid, static_cast<size_t>(validator.limits().max_violations) + 1, "validate");
    return;
  }
  CheckForm(request);
}

using CheckFn = void (*)(absl::string_view, const RequestValidator&);
constexpr CheckFn kRpcs[] = {
    Check<v1::IdentifyUserRequest>,
    Check<v1::IdentifyCompanyRequest>,
    Check<v1::BulkIdentifyUsersRequest>,
    Check<v1::BulkIdentifyCompaniesRequest>,
    Check<v1::TrackEventRequest>,
    Check<v1::ListJobsRequest>,
    Check<v1::GetJobRequest>,
    Check<v1::DeleteUsersRequest>,
    Check<v1::DeleteCompaniesRequest>,
};
constexpr size_t kRpcCount = sizeof(kRpcs) / sizeof(kRpcs[0]);

}  // namespace
}  // namespace userpilot::gateway

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace userpilot::gateway;  // NOLINT(build/namespaces): one entry point.
  static const RequestValidator kDefault;
  static const RequestValidator kSmall(SmallLimits());
  if (size == 0) return 0;
  const size_t rpc = data[0] % kRpcCount;
  const RequestValidator& validator = (data[0] / kRpcCount) % 2 == 0 ? kDefault : kSmall;
  kRpcs[rpc](absl::string_view(reinterpret_cast<const char*>(data) + 1, size - 1), validator);
  return 0;
}
