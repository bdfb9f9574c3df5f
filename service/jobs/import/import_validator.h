// Checks an ImportData file while it streams in, chunk by chunk, before anything is sent to
// Userpilot: the gateway refuses a malformed file itself, naming the line and the field,
// instead of uploading 50 MB for Userpilot to reject (or, worse, to accept half of).
//
// What this class does is the file's framing; each row is then judged by ImportRowRules
// (import_row_rules.h), the same per-field rules as the unary RPCs.
//  - Size: at most `max_file_bytes` in all; the chunk that would cross the limit is refused.
//  - A UTF-8 byte order mark at the start is refused (Userpilot does not accept one).
//  - Lines end with "\n" or "\r\n"; lines holding only whitespace are ignored; no line (CSV:
//    record) may exceed `max_line_bytes`.
//  - NDJSON: every line one JSON object (JsonRowReader: RapidJSON's SAX reader).
//  - CSV (historical imports only): RFC 4180 quoting; a header row; every later record with
//    exactly as many columns as the header.
//  - At least one row (a CSV header alone is not enough); bulk targets at most
//    `rows.max_bulk_rows` rows.
// The first bad row ends validation: INVALID_ARGUMENT with a google.rpc.BadRequest whose fields
// start with `file line N` (N counts every line from 1, blank ones included; for a CSV record
// that spans lines, the line it starts on) - `file line N` for the line as a whole,
// `file line N.user_id` for a field of it - or are `file` for size limits. Descriptions name
// keys and limits, never the file's content.
//
// Memory: at most one line (max_line_bytes) is buffered across chunks, plus the parser's
// buffers for one line; nothing grows with the file.
//
// Thread-safety: not thread-safe; one validator per upload, used by one thread at a time.
#ifndef USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORT_VALIDATOR_H_
#define USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORT_VALIDATOR_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "service/jobs/import/import_options.h"
#include "service/jobs/import/import_row_rules.h"
#include "service/jobs/import/json_row_reader.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {

class ImportFileValidator {
 public:
  // `target` and `format` must have passed ValidateImportHeader (import_header.h).
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
  CallStatus FeedBytes(absl::string_view bytes);
  CallStatus FeedNdjson(absl::string_view bytes);
  CallStatus NdjsonLine(absl::string_view line, int64_t line_number);
  CallStatus FeedCsv(absl::string_view bytes);
  void EndCsvField();
  CallStatus EndCsvRecord();
  CallStatus CountRow(int64_t line_number);
  CallStatus Fail(CallStatus status);

  const v1::ImportTarget target_;
  const v1::ImportFormat format_;
  const ImportLimits limits_;
  ImportRowRules rules_;

  CallStatus error_;
  int64_t bytes_ = 0;
  int64_t rows_ = 0;
  int64_t line_ = 1;        // The physical line the next byte belongs to.
  size_t bom_matched_ = 0;  // Leading bytes matched against the UTF-8 BOM so far.
  bool bom_done_ = false;

  // NDJSON: the start of a line not yet ended; the reader and the last row read (kept to reuse
  // their buffers).
  std::string partial_;
  JsonRowReader reader_;
  JsonRow row_;

  // CSV: the record being read - its cells' unescaped contents, one after the other, and where
  // each ends.
  enum class CsvState { kFieldStart, kUnquoted, kQuoted, kQuoteInQuoted, kAfterQuote };
  CsvState csv_state_ = CsvState::kFieldStart;
  int64_t record_line_ = 1;  // Where the record being read starts.
  size_t record_bytes_ = 0;
  bool record_blank_ = true;  // Only whitespace so far, and no comma.
  std::string record_;
  std::vector<size_t> cell_ends_;
  std::vector<absl::string_view> cells_;
  size_t header_columns_ = 0;  // 0 until the header row is read.
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORT_VALIDATOR_H_
