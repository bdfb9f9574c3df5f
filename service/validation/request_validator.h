// Request validation: the checks every gateway RPC makes before anything is sent to Userpilot.
// The per-field rules themselves are FieldChecker's (field_checker.h), which ImportData's file
// checks apply to each row as well.
//
// Each Validate() overload returns OK, or INVALID_ARGUMENT (InvalidArgumentError() of
// service/common/call_result.h) whose facts list every violation found at once, in field order,
// capped at ValidationLimits::max_violations plus one summary (callers receive them as a
// google.rpc.BadRequest).
// Descriptions are short, say what to change, and never echo submitted values (only their
// sizes, and metadata keys inside field paths).
//
// The rules (limits are the ValidationLimits fields):
// - Ids (user_id, company_id, company.company_id, a bulk row's ids, each id of a delete request):
//   required, not blank (only whitespace, or only invisible characters such as U+200B, U+FEFF,
//   U+2060, U+180E with or without whitespace: text_scan.h IsInvisible), at most max_id_bytes,
//   valid UTF-8, no control characters
//   (C0 U+0000-U+001F, DEL U+007F, C1 U+0080-U+009F). Leading or trailing spaces are kept as
//   sent: they are unusual but are not ambiguous.
// - TrackEventRequest.event_name: the same rules with max_event_name_bytes.
// - company: when set, company.company_id is required. A BulkUser's company_id is optional and,
//   when non-empty, follows the id rules.
// - Metadata (every google.protobuf.Struct): at most max_metadata_keys keys; each key non-empty,
//   at most max_metadata_key_bytes, valid UTF-8, no control characters; each value a string,
//   number, boolean or null. Nested objects and lists are refused (Userpilot stores flat
//   properties), as is a Value with no kind set. Numbers must be finite (NaN and infinities have
//   no JSON form). Strings: at most max_string_value_bytes, valid UTF-8, no U+0000 (JSON stores
//   commonly refuse it); other control characters such as newlines are allowed in values.
// - company.metadata: keys `company_id` and `id` are reserved, because upstream the company's
//   properties sit beside `company_id` in one JSON object (older guides name the id `id`).
// - Bulk requests: 1 to max_bulk_rows rows, at most max_bulk_request_bytes serialized; every row
//   checked, with indexed paths (`users[3].metadata.plan`).
// - Delete requests: 1 to max_delete_ids ids, each following the id rules (`user_ids[2]`).
//   Duplicate ids are allowed: deletion is idempotent, so refusing them would only make callers
//   deduplicate for nothing.
// - GetJobRequest.job_id: required, not blank, at most max_job_id_bytes, valid UTF-8,
//   no control characters, and not exactly `.` or `..`. Colons, slashes and `..` inside an id
//   are allowed: the upstream layer percent-encodes the id as one path segment.
// - ListJobsRequest has no fields and is always valid.
//
// Field paths are described in field_path.h: proto field names, `[i]` for list elements, and
// `.key` or `["key"]` for metadata keys.
//
// Thread-safety: immutable after construction; every method is const and safe to call from any
// number of threads at once.
#ifndef USERPILOT_GATEWAY_SERVICE_VALIDATION_REQUEST_VALIDATOR_H_
#define USERPILOT_GATEWAY_SERVICE_VALIDATION_REQUEST_VALIDATOR_H_

#include "service/common/call_result.h"
#include "service/validation/validation_limits.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {

class RequestValidator {
 public:
  // A validator with the default limits.
  RequestValidator();

  // A validator with `limits`, which must pass ValidationLimits::Validate(): limits come from
  // configuration that main() validates at start-up, so invalid ones here are a programming
  // error, and the constructor aborts the process with the Validate() message.
  explicit RequestValidator(const ValidationLimits& limits);

  const ValidationLimits& limits() const { return limits_; }

  CallStatus Validate(const v1::IdentifyUserRequest& request) const;
  CallStatus Validate(const v1::IdentifyCompanyRequest& request) const;
  CallStatus Validate(const v1::BulkIdentifyUsersRequest& request) const;
  CallStatus Validate(const v1::BulkIdentifyCompaniesRequest& request) const;
  CallStatus Validate(const v1::TrackEventRequest& request) const;
  CallStatus Validate(const v1::ListJobsRequest& request) const;
  CallStatus Validate(const v1::GetJobRequest& request) const;
  CallStatus Validate(const v1::DeleteUsersRequest& request) const;
  CallStatus Validate(const v1::DeleteCompaniesRequest& request) const;

 private:
  ValidationLimits limits_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_VALIDATION_REQUEST_VALIDATOR_H_
