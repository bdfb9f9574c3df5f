// The settings of ImportData's file handling: file limits (ImportLimits) and the Importer's
// options (ImportOptions), in a header of their own so that configuration code can build them
// without including the importer.
//
// Thread-safety: plain values.
#ifndef USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORT_OPTIONS_H_
#define USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORT_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "service/validation/validation_limits.h"

namespace userpilot::gateway {

struct ImportLimits {
  // Userpilot's documented limit for bulk and import files.
  int64_t max_file_bytes = int64_t{50} * 1024 * 1024;
  // Longest line (CSV: record) accepted, which is also the most the file checks buffer.
  size_t max_line_bytes = 1024 * 1024;
  // The limits of the row rules (import_row_rules.h): the unary RPCs' own, so one row is
  // judged alike in a file and in a call. `rows.max_bulk_rows` bounds the rows of a bulk file.
  ValidationLimits rows;
};

struct ImportOptions {
  // File checks: size (50 MiB), longest line (1 MiB), the row rules' limits.
  ImportLimits limits;
  // Where files are spooled; "" means $TMPDIR, else /tmp. Must be on local disk with room for
  // max_concurrent_imports * limits.max_file_bytes.
  std::string spool_dir;
  // Imports running at once; beyond this, ImportData answers RESOURCE_EXHAUSTED.
  size_t max_concurrent_imports = 8;
  // Worker threads that spool and check chunks (CPU-bound for NDJSON: one JSON parse a line).
  int worker_threads = 2;
  // While the gateway waits for the caller's next message: how long it waits before ending the
  // call with DEADLINE_EXCEEDED, so a stalled caller cannot hold an import slot until its
  // deadline.
  absl::Duration idle_timeout = absl::Seconds(30);
  // After a 409 with wait_for_running_job, when the running job cannot be identified from
  // the job list: how long to wait before submitting again.
  absl::Duration conflict_retry_interval = absl::Seconds(10);

  // INVALID_ARGUMENT naming the first bad field, else OK. For start-up configuration checks.
  absl::Status Validate() const;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORT_OPTIONS_H_
