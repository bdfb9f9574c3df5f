// The JSON that Userpilot's REST API sends and receives, mapped to and from the gateway's protos.
//
// Request bodies follow the OpenAPI schemas and examples field for field, in the form the newest
// Userpilot guides use. The hot ones (identify, company identify, track) are written straight
// from the request with RapidJSON's Writer in protobuf's JSON conventions
// (request_json_writer.h), byte for byte what protobuf's printer gives (ProtobufRequestBody).
// The bulk identifies, whose protos mirror their REST bodies, are printed by protobuf's own
// JSON printer; the deletes (`user_ids` -> `users`) are composed here, with protobuf printing
// every value. The output is deterministic: top-level keys in the order the OpenAPI shows them,
// metadata keys sorted bytewise.
//
// Body rules shared by every request:
//  - Metadata values keep their JSON types: strings, numbers (integral values print without a
//    fraction, `8` not `8.0`), booleans and null (null removes the property upstream). NaN and
//    infinities, which JSON cannot carry, print as the strings "NaN"/"Infinity" (protobuf's
//    rule); the validation layer rejects them before a request gets here.
//  - `metadata` is omitted when it has no properties, whether the caller left it unset or set
//    it empty: upstream properties merge, so `{}` and no key mean the same thing, and omitting
//    it gives one canonical body however the caller's language tracks message presence.
//  - Empty strings are omitted (protobuf's proto3 rule). That is what optional ones need (a bulk
//    row's `company_id`); required ones are never empty once validation has passed.
//  - identify's `company` is written exactly when the request has one.
//
// Responses are parsed leniently (see ParseJob), because Userpilot's job answers differ by
// endpoint and guide, but within bounds: RapidJSON (rapidjson-dev) reads them in one pass,
// linear in their size, refusing answers over kMaxAnswerBytes (error bodies: kMaxErrorBodyBytes)
// or nested deeper than kMaxJsonDepth before building anything that large or deep. So no answer,
// however hostile, holds a thread for more than milliseconds. Why not protobuf's JSON parser
// (which the request side uses to print): it is super-linear in nesting (12,000 nested arrays,
// 24 KB, took 17 s on this 2-core machine; RapidJSON 0.3 ms) and reads flat job lists at about
// 8 MB/s against RapidJSON's 50 (measured on a busy machine).
//
// Per RPC (a row of upstream_rpcs.h), HttpUserpilotStub needs the request's HTTP form
// (HttpFormOf: the path parameter and the body) and, for a 2xx answer, the response
// (ParseResponse). The templates cover the common shapes (a JSON body from RequestBody; an
// acknowledgement carrying Userpilot's request id); an RPC of another shape adds an overload
// here.
//
// Thread-safety: free functions over values; safe from any thread.
#ifndef USERPILOT_GATEWAY_SERVICE_UPSTREAM_JSON_MAPPING_H_
#define USERPILOT_GATEWAY_SERVICE_UPSTREAM_JSON_MAPPING_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/http/body_source.h"
#include "service/upstream/import_file_request.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {

// Bounds on what is parsed from Userpilot's answers. A job answer or job list larger than
// kMaxAnswerBytes is unreadable (the HTTP client's own limit, 8 MiB by default, stops larger
// ones earlier); an error body larger than kMaxErrorBodyBytes is not quoted (only a few hundred
// bytes of it would be). Nesting beyond kMaxJsonDepth (a job is 1 level, its `links` a few
// more) is refused while parsing.
inline constexpr size_t kMaxAnswerBytes = size_t{8} << 20;
inline constexpr size_t kMaxErrorBodyBytes = size_t{64} << 10;
inline constexpr int kMaxJsonDepth = 32;

// POST /v1/identify:
// {"user_id":..., "metadata":{...}, "company":{"company_id":..., <company metadata keys>}}.
// The company's metadata keys sit beside `company_id`; reserved keys `company_id` and `id` in
// the company metadata are dropped (validation rejects them; the mapping never lets them
// override or shadow the real company id).
std::string RequestBody(const v1::IdentifyUserRequest& request);
// POST /v1/companies/identify: {"company_id":..., "metadata":{...}}.
std::string RequestBody(const v1::IdentifyCompanyRequest& request);
// POST /v1/users/bulk_identify: {"users":[{"user_id":..., "company_id":..., "metadata":{...}}]}.
std::string RequestBody(const v1::BulkIdentifyUsersRequest& request);
// POST /v1/companies/bulk_identify: {"companies":[{"company_id":..., "metadata":{...}}]}.
std::string RequestBody(const v1::BulkIdentifyCompaniesRequest& request);
// POST /v1/track: {"user_id":..., "event_name":..., "metadata":{...}}.
std::string RequestBody(const v1::TrackEventRequest& request);
// DELETE /v1/users: {"users":["id", ...]}.
std::string RequestBody(const v1::DeleteUsersRequest& request);
// DELETE /v1/companies: {"companies":["id", ...]}.
std::string RequestBody(const v1::DeleteCompaniesRequest& request);

// The identify, company identify and track bodies as protobuf's reflection-based JSON
// converter prints them, which is how the bulk and delete bodies are printed. RequestBody
// writes these three directly (request_json_writer.h: they are the hot path);
// json_mapping_test checks over a corpus that both give the same bytes.
std::string ProtobufRequestBody(const v1::IdentifyUserRequest& request);
std::string ProtobufRequestBody(const v1::IdentifyCompanyRequest& request);
std::string ProtobufRequestBody(const v1::TrackEventRequest& request);

// What one request sends besides its route: the value of the route's `{parameter}` and the
// body.
struct HttpForm {
  // Replaces the route path's `{...}`, percent-encoded as one segment; empty when it has none.
  std::string path_parameter;
  // The JSON body (Content-Type application/json); empty: no body.
  std::string json;
  // When `upload.source` is set, this multipart body is sent instead of `json`.
  MultipartBody upload;
};

// A request whose whole form is its JSON body (RequestBody above).
template <typename Request>
absl::StatusOr<HttpForm> HttpFormOf(const Request& request) {
  HttpForm form;
  form.json = RequestBody(request);
  return form;
}
// GET /v1/background_jobs: no body.
absl::StatusOr<HttpForm> HttpFormOf(const v1::ListJobsRequest& request);
// GET /v1/background_jobs/{job_id}: the job id (validation guarantees it is non-empty).
absl::StatusOr<HttpForm> HttpFormOf(const v1::GetJobRequest& request);
// The file as multipart/form-data, field `file` (its filename, and Content-Type text/csv or
// application/x-ndjson in the part), streamed from `request.file`, with a random boundary.
// INVALID_ARGUMENT (so nothing is sent) for an unspecified target or format, or a missing file
// or filename.
absl::StatusOr<HttpForm> HttpFormOf(const ImportFileRequest& request);

// The answer to a 2xx response with body `body`. Acknowledgements (this template) carry
// nothing from the body, only Userpilot's `x-request-id` as `upstream_request_id`.
// INVALID_ARGUMENT, saying what was wrong, when a body the answer needs cannot be read.
template <typename Response>
absl::Status ParseResponse(absl::string_view body, absl::string_view request_id,
                           Response* response) {
  response->set_upstream_request_id(std::string(request_id));
  return absl::OkStatus();
}
// A job object (ParseJob) that names a job: one with neither `job_id` nor `status` (`{}`) is
// not a job, and is INVALID_ARGUMENT like any unreadable answer.
absl::Status ParseResponse(absl::string_view body, absl::string_view request_id, v1::Job* job);
// The job list (ParseJobList).
absl::Status ParseResponse(absl::string_view body, absl::string_view request_id,
                           v1::ListJobsResponse* list);

// Maps Userpilot's `status` string to the enum: ASCII case and surrounding spaces are ignored;
// anything unknown is JOB_STATUS_UNSPECIFIED (the raw text is kept in Job.raw_status).
v1::JobStatus ParseJobStatus(absl::string_view raw_status);

// Parses one job object, as returned by GET /v1/background_jobs/{id}, the bulk identifies
// (full form, or the minimal {job_id, status, submitted_at}) and POST /v1/imports. Lenient:
//  - integer fields accept JSON numbers or numeric strings ("1234", " 12.0 "); fractions round
//    to the nearest integer; anything else (bool, garbage text, out of range) leaves them unset;
//  - text fields accept strings; numbers and booleans are kept as their JSON text, objects and
//    arrays (say, a structured `links`) as compact JSON, members in the order sent;
//  - `start_time`, `end_time` and `submitted_at` also fill start_timestamp, end_timestamp and
//    submitted_timestamp when they are RFC 3339 times with a zone ("2025-05-19T07:29:12Z",
//    "...12.5+02:00") within Timestamp's range (years 1 to 9999); any other form leaves the
//    Timestamp unset;
//  - null and missing fields are left unset, unknown fields are ignored;
//  - `status` fills both `status` (enum) and `raw_status` (exactly as sent).
// Errors (INVALID_ARGUMENT, describing what was wrong, never quoting it) only when `json` is
// not a JSON object, or is over the bounds above.
absl::StatusOr<v1::Job> ParseJob(absl::string_view json);

// Parses GET /v1/background_jobs: a JSON array of job objects (each parsed as ParseJob does),
// in Userpilot's order. Also accepts an object wrapping that array as "jobs" or "data", which
// cannot be mistaken for anything else. Elements that are not objects (nulls) are skipped.
// Errors (INVALID_ARGUMENT) when `json` is none of these.
absl::StatusOr<v1::ListJobsResponse> ParseJobList(absl::string_view json);

// One entry of Userpilot's error body. Absent parts are empty.
struct UpstreamError {
  std::string error;       // short label, e.g. "Bad Request"
  std::string error_code;  // code for programs, e.g. "invalid_payload"
  std::string message;     // human-readable text
  std::string details;     // more detail
};

// Parses an error body, `{"errors":[{"error","error_code","message","details"}]}`, leniently:
// an `errors` entry may also be a bare string (taken as the message), `errors` may be a single
// object, and a top-level object carrying those four keys itself counts as one entry.
// Non-string values are kept as their JSON text. Never fails: a body that is not JSON (HTML
// from a proxy, plain text, empty), or is over the bounds above, yields no entries.
std::vector<UpstreamError> ParseErrorBody(absl::string_view body);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_UPSTREAM_JSON_MAPPING_H_
