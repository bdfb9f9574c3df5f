// Checks an ImportData file while it streams in, chunk by chunk, before anything is sent to
// Userpilot: the gateway refuses a malformed file itself, naming the line, instead of uploading
// 50 MB for Userpilot to reject (or, worse, to accept half of).
//
// Rules (the proto's ImportTarget and ImportFormat document them for callers):
//  - Size: at most `max_file_bytes` in all; the chunk that would cross the limit is refused.
//  - Lines end with "\n" or "\r\n"; a UTF-8 byte order mark at the start is ignored; lines
//    holding only whitespace are ignored; no line (CSV: record) may exceed `max_line_bytes`.
//  - NDJSON: every line one JSON object. Bulk users: `user_id` a non-empty string,
//    `company_id` (if present and not null) a non-empty string. Bulk companies: `company_id`.
//    Historical import: `event_type` one of identify_user, identify_company, page_view, track;
//    `company_id` for identify_company, `user_id` for the others; `source`, `event_name` and
//    `inserted_at`, when present and not null, strings. Everywhere: `metadata`, when present
//    and not null, an object of strings, numbers, booleans and nulls only. Other keys are
//    passed through unchecked.
//  - CSV (historical imports only): RFC 4180 quoting; a header row with no empty column
//    name; every later record with exactly as many columns as the header.
//  - At least one row (a CSV header alone is not enough); bulk targets at most
//    `max_bulk_rows` rows.
// The first problem ends validation: INVALID_ARGUMENT with a google.rpc.BadRequest whose field
// is `file line N` (N counts every line from 1, blank ones included; for a CSV record that spans
// lines, the line it starts on) or, for size limits, `file`. Descriptions name keys and limits,
// never the file's content.
//
// Memory: at most one line (max_line_bytes) is buffered across chunks; nothing else grows with
// the file.
//
// Thread-safety: not thread-safe; one validator per upload, used by one thread at a time.
#ifndef USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORT_VALIDATOR_H_
#define USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORT_VALIDATOR_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "service/common/call_result.h"
#include "service/jobs/import/import_options.h"
#include "service/jobs/import/json_scan.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {

// Checks an ImportData header: target and format set, CSV only for historical imports, and
// the filename rules of ImportHeader.filename. INVALID_ARGUMENT naming `header.<field>`.
CallStatus ValidateImportHeader(const v1::ImportHeader& header);

// The filename sent for `header`: its own, or `import.csv` / `import.ndjson`.
std::string ImportFilename(const v1::ImportHeader& header);

class ImportFileValidator {
 public:
  // `target` and `format` must have passed ValidateImportHeader.
  ImportFileValidator(v1::ImportTarget target, v1::ImportFormat format, ImportLimits limits);

  ImportFileValidator(const ImportFileValidator&) = delete;
  ImportFileValidator& operator=(const ImportFileValidator&) = delete;

  // Checks the next bytes of the file. After the first error, every call returns it again.
  CallStatus Feed(absl::string_view bytes);

  // The file is complete: checks its last line and the row count.
  CallStatus Finish();

  int64_t bytes() const { return bytes_; }
  // Data rows seen so far (a CSV header is not a row; blank lines are not rows).
  int64_t rows() const { return rows_; }

 private:
  CallStatus FeedNdjson(absl::string_view bytes);
  CallStatus NdjsonLine(absl::string_view line, int64_t line_number);
  CallStatus FeedCsv(absl::string_view bytes);
  CallStatus EndCsvRecord();
  CallStatus CountRow(int64_t line_number);
  CallStatus Fail(CallStatus status);

  const v1::ImportTarget target_;
  const v1::ImportFormat format_;
  const ImportLimits limits_;

  CallStatus error_;
  int64_t bytes_ = 0;
  int64_t rows_ = 0;
  int64_t line_ = 1;        // The physical line the next byte belongs to.
  size_t bom_matched_ = 0;  // Leading bytes matched against the UTF-8 BOM so far.
  bool bom_done_ = false;

  // NDJSON: the start of a line not yet ended, and the last line scanned (kept to reuse its
  // buffers).
  std::string partial_;
  ScannedObject row_;

  // CSV.
  enum class CsvState { kFieldStart, kUnquoted, kQuoted, kQuoteInQuoted, kAfterQuote };
  CsvState csv_state_ = CsvState::kFieldStart;
  int64_t record_line_ = 1;  // Where the record being read starts.
  size_t record_bytes_ = 0;
  size_t record_fields_ = 0;  // Fields ended so far in this record.
  bool record_blank_ = true;  // Only whitespace so far.
  bool field_empty_ = true;   // The current field has no content yet.
  bool header_empty_field_ = false;
  size_t header_columns_ = 0;  // 0 until the header row is read.
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORT_VALIDATOR_H_
