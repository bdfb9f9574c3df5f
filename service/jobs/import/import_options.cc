#include "service/jobs/import/import_options.h"

#include "absl/strings/str_cat.h"

namespace userpilot::gateway {

absl::Status ImportOptions::Validate() const {
  auto bad = [](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("ImportOptions: ", what));
  };
  if (limits.max_file_bytes < 1) return bad("limits.max_file_bytes must be at least 1");
  if (limits.max_bulk_rows < 1 || limits.max_bulk_rows > 10000) {
    return bad("limits.max_bulk_rows must be between 1 and 10000 (Userpilot's own limit)");
  }
  if (limits.max_line_bytes < 1024) return bad("limits.max_line_bytes must be at least 1024");
  if (max_concurrent_imports < 1) return bad("max_concurrent_imports must be at least 1");
  if (worker_threads < 1 || worker_threads > 64) return bad("worker_threads must be 1..64");
  if (default_deadline <= absl::ZeroDuration()) return bad("default_deadline must be positive");
  if (max_deadline < default_deadline) return bad("max_deadline must be >= default_deadline");
  if (max_upload_attempts < 1 || max_upload_attempts > 10) {
    return bad("max_upload_attempts must be 1..10");
  }
  if (retry_delay < absl::ZeroDuration()) return bad("retry_delay must not be negative");
  if (conflict_retry_interval <= absl::ZeroDuration()) {
    return bad("conflict_retry_interval must be positive");
  }
  return absl::OkStatus();
}

}  // namespace userpilot::gateway
