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

namespace userpilot::gateway {

struct ImportLimits {
  // Userpilot's documented limit for bulk and import files.
  int64_t max_file_bytes = int64_t{50} * 1024 * 1024;
  // Userpilot's documented limit of rows per bulk request.
  int64_t max_bulk_rows = 10000;
  // Longest line (CSV: record) accepted, which is also the most the validator buffers.
  size_t max_line_bytes = 1024 * 1024;
};

struct ImportOptions {
  // File checks: size (50 MiB), bulk rows (10,000), longest line (1 MiB).
  ImportLimits limits;
  // Where files are spooled; "" means $TMPDIR, else /tmp. Must be on local disk with room for
  // max_concurrent_imports * limits.max_file_bytes.
  std::string spool_dir;
  // Imports running at once; beyond this, an import is refused RESOURCE_EXHAUSTED.
  size_t max_concurrent_imports = 8;
  // Worker threads that spool and validate chunks (CPU-bound for NDJSON: one JSON parse a
  // line).
  int worker_threads = 2;
  // The deadline of an import call whose caller set none, and the longest one accepted
  // (longer ones are cut): imports carry large files and may wait for a running job.
  absl::Duration default_deadline = absl::Minutes(10);
  absl::Duration max_deadline = absl::Hours(1);
  // Attempts per upload, the first included, for failures that certainly created nothing
  // (429, request never sent). 1 turns these retries off (do so when a retrying decorator in
  // the upstream stack retries uploads itself).
  int max_upload_attempts = 3;
  // Wait before such a retry when Userpilot asked for no delay.
  absl::Duration retry_delay = absl::Seconds(1);
  // After a 409 with wait_for_running_job, when the running job cannot be identified from
  // the job list: how long to wait before submitting again.
  absl::Duration conflict_retry_interval = absl::Seconds(10);

  // INVALID_ARGUMENT naming the first bad field, else OK. For start-up configuration checks.
  absl::Status Validate() const;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORT_OPTIONS_H_
