#include "service/jobs/import/import_options.h"

#include "absl/strings/str_cat.h"

namespace userpilot::gateway {

absl::Status ImportOptions::Validate() const {
  auto bad = [](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("ImportOptions: ", what));
  };
  if (limits.max_file_bytes < 1) return bad("limits.max_file_bytes must be at least 1");
  if (limits.max_line_bytes < 1024) return bad("limits.max_line_bytes must be at least 1024");
  if (absl::Status rows = limits.rows.Validate(); !rows.ok()) {
    return bad(absl::StrCat("limits.rows: ", rows.message()));
  }
  if (max_concurrent_imports < 1) return bad("max_concurrent_imports must be at least 1");
  if (worker_threads < 1 || worker_threads > 64) return bad("worker_threads must be 1..64");
  if (idle_timeout <= absl::ZeroDuration() || idle_timeout == absl::InfiniteDuration()) {
    return bad("idle_timeout must be positive and finite");
  }
  if (conflict_retry_interval <= absl::ZeroDuration()) {
    return bad("conflict_retry_interval must be positive");
  }
  return absl::OkStatus();
}

}  // namespace userpilot::gateway
