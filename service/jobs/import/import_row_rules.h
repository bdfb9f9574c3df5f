// ImportRowRules: what one row of an ImportData file must hold, checked with the same per-field
// rules (FieldChecker, service/validation/field_checker.h) and limits (ValidationLimits) as the
// unary RPCs that carry the same data, so a row the gateway would refuse in a
// BulkIdentifyUsers, IdentifyCompany or TrackEvent call is refused in a file too, with the
// same descriptions.
//
// NDJSON rows (one JSON object each):
//  - Bulk users: `user_id` an id (a string: required, not only whitespace, at most
//    max_id_bytes, valid UTF-8, no control characters - so no escaped NUL or newline either);
//    `company_id`, when present and not null, a non-empty id.
//  - Bulk companies: `company_id` an id.
//  - Historical import: `event_type` one of identify_user, identify_company, page_view, track;
//    `company_id` an id for identify_company, `user_id` an id for the others (the other id,
//    when present and not null, a non-empty id); `event_name` an event name (at most
//    max_event_name_bytes) for track, and when present and not empty on other rows; `source`
//    and `inserted_at`, when present and not null, strings under the string-value rules.
//  - Everywhere: `metadata`, when present and not null, an object of at most
//    max_metadata_keys keys under the metadata key rules, each value a string (at most
//    max_string_value_bytes, valid UTF-8, no U+0000), number, boolean or null; no top-level key
//    and no metadata key may appear twice in a row (JSON readers disagree on which one counts).
//    Other top-level keys are passed through unchecked.
// CSV files (historical imports only):
//  - Header row: column names under the metadata key rules, none repeated; an `event_type`
//    column and a `user_id` or `company_id` column are required.
//  - Records: the cells of `event_type`, `user_id`, `company_id` and `event_name` follow the
//    NDJSON rules above (an empty cell is an absent value); every other cell follows the
//    string-value rules.
//
// Errors: INVALID_ARGUMENT with a google.rpc.BadRequest listing every violation of the row (up
// to max_violations), each field named from the line: `file line 12.user_id`,
// `file line 12.metadata.plan`, `file line 1.event_type` (a CSV column), or `file line 12` for
// the row as a whole.
//
// Thread-safety: immutable after construction (CSV: after SetCsvHeader); const methods are
// safe from any thread.
#ifndef USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORT_ROW_RULES_H_
#define USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORT_ROW_RULES_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "service/common/call_result.h"
#include "service/jobs/import/json_row_reader.h"
#include "service/validation/validation_limits.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {

class ImportRowRules {
 public:
  // `target` must be a valid ImportTarget other than UNSPECIFIED.
  ImportRowRules(v1::ImportTarget target, const ValidationLimits& limits);

  // One NDJSON row, read from line `line`.
  CallStatus CheckJsonRow(const JsonRow& row, int64_t line) const;

  // The header row of a CSV file (line `line`); remembers which columns hold what.
  CallStatus SetCsvHeader(const std::vector<absl::string_view>& names, int64_t line);

  // One CSV record that starts on line `line`, with as many cells as the header.
  CallStatus CheckCsvRecord(const std::vector<absl::string_view>& cells, int64_t line) const;

 private:
  const v1::ImportTarget target_;
  const ValidationLimits limits_;

  // CSV: the columns the rules name (indexes into the header), and every column's name.
  std::vector<std::string> columns_;
  std::optional<size_t> event_type_column_;
  std::optional<size_t> user_id_column_;
  std::optional<size_t> company_id_column_;
  std::optional<size_t> event_name_column_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORT_ROW_RULES_H_
