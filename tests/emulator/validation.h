// Request-body validation as the emulator applies it to Userpilot's endpoints: required ids are
// non-empty strings, metadata is an object of primitive values (string, number, boolean, null;
// nested objects and arrays refused), a user's `company` carries `company_id` (or the older
// `id`), and bulk payloads hold 1 to 10,000 rows.
//
// Every check reports all violations it finds (up to kMaxViolations), each naming the field
// path (`users[3].user_id`, `metadata.plan`), so the 400 answer lists them all.
//
// Thread-safety: stateless free functions, safe from any thread.
#ifndef USERPILOT_GATEWAY_TESTS_EMULATOR_VALIDATION_H_
#define USERPILOT_GATEWAY_TESTS_EMULATOR_VALIDATION_H_

#include <google/protobuf/struct.pb.h>

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace userpilot::gateway::testing {

// Userpilot's documented bound on rows per bulk request.
inline constexpr int kMaxBulkRows = 10000;
// Violations beyond this many are not listed (a 10,000-row payload could otherwise produce a
// huge answer).
inline constexpr size_t kMaxViolations = 100;

struct Violation {
  std::string field;       // Path of the offending field, "" for the whole body.
  std::string error_code;  // missing_field, invalid_type, empty_field, invalid_metadata, ...
  std::string message;     // Human-readable.
};

using Violations = std::vector<Violation>;

// POST /v1/identify.
Violations ValidateIdentifyUser(const google::protobuf::Value& body);
// POST /v1/companies/identify.
Violations ValidateIdentifyCompany(const google::protobuf::Value& body);
// POST /v1/track.
Violations ValidateTrack(const google::protobuf::Value& body);
// One row of a bulk payload (a JSON array item or an NDJSON line); `where` prefixes the field
// paths, for example "users[3]" or "line 4".
void ValidateBulkRow(const google::protobuf::Value& row, bool users, absl::string_view where,
                     Violations* out);
// The JSON form of bulk identify: {"users": [...]} or {"companies": [...]}.
Violations ValidateBulkBody(const google::protobuf::Value& body, bool users);
// DELETE /v1/users ({"users": ["id", ...]}) or /v1/companies ({"companies": [...]}).
Violations ValidateDeleteBody(const google::protobuf::Value& body, bool users);

}  // namespace userpilot::gateway::testing

#endif  // USERPILOT_GATEWAY_TESTS_EMULATOR_VALIDATION_H_
