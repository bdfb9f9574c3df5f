#include "service/config/jobs_config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace userpilot::gateway {
namespace {

constexpr int64_t kMaxWatches = 1000000;
constexpr int64_t kMaxWatchedJobs = 100000;
constexpr int64_t kMaxConcurrentImports = 64;

bool PositiveFinite(absl::Duration d) {
  return d > absl::ZeroDuration() && d != absl::InfiniteDuration();
}

void CheckPositive(absl::string_view flag, absl::Duration value, const FlagProblem& problem) {
  if (!PositiveFinite(value)) {
    problem(flag, absl::StrCat("must be a positive, finite duration (got ",
                               absl::FormatDuration(value), ")"));
  }
}

void CheckCount(absl::string_view flag, int64_t value, int64_t max, const FlagProblem& problem) {
  if (value < 1 || value > max) {
    problem(flag, absl::StrCat("must be between 1 and ", max, " (got ", value, ")"));
  }
}

// The spool directory must exist and be writable now, so a misconfiguration shows at start-up
// rather than at the first import.
void CheckSpoolDir(const std::string& dir, const FlagProblem& problem) {
  if (dir.empty()) return;
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0) {
    problem("import_spool_dir", absl::StrCat("'", dir, "': ", std::strerror(errno)));
  } else if (!S_ISDIR(st.st_mode)) {
    problem("import_spool_dir", absl::StrCat("'", dir, "' is not a directory"));
  } else if (access(dir.c_str(), W_OK | X_OK) != 0) {
    problem("import_spool_dir",
            absl::StrCat("'", dir, "' is not writable: ", std::strerror(errno)));
  }
}

}  // namespace

JobsConfig LoadJobsConfig(const JobsInput& in, const FlagProblem& problem) {
  JobsConfig out;
  CheckPositive("watch_min_poll_interval", in.watch_min_poll_interval, problem);
  CheckPositive("watch_max_poll_interval", in.watch_max_poll_interval, problem);
  if (PositiveFinite(in.watch_min_poll_interval) && PositiveFinite(in.watch_max_poll_interval) &&
      in.watch_max_poll_interval < in.watch_min_poll_interval) {
    problem("watch_max_poll_interval",
            absl::StrCat("(", absl::FormatDuration(in.watch_max_poll_interval),
                         ") must not be shorter than --watch_min_poll_interval (",
                         absl::FormatDuration(in.watch_min_poll_interval), ")"));
  }
  CheckCount("max_watches", in.max_watches, kMaxWatches, problem);
  CheckCount("max_watched_jobs", in.max_watched_jobs, kMaxWatchedJobs, problem);
  CheckSpoolDir(in.import_spool_dir, problem);
  // Userpilot refuses files over 50 MB, so the bound may only be lowered.
  CheckCount("import_max_file_bytes", in.import_max_file_bytes, ImportLimits().max_file_bytes,
             problem);
  CheckCount("max_concurrent_imports", in.max_concurrent_imports, kMaxConcurrentImports, problem);
  CheckPositive("upload_timeout", in.upload_timeout, problem);
  CheckPositive("import_idle_timeout", in.import_idle_timeout, problem);

  out.watch.min_poll_interval = in.watch_min_poll_interval;
  out.watch.max_poll_interval = in.watch_max_poll_interval;
  out.watch.max_subscribers = static_cast<size_t>(std::max<int64_t>(in.max_watches, 1));
  out.watch.max_watched_jobs = static_cast<size_t>(std::max<int64_t>(in.max_watched_jobs, 1));
  out.import.spool_dir = in.import_spool_dir;
  out.import.limits.max_file_bytes = in.import_max_file_bytes;
  out.import.max_concurrent_imports =
      static_cast<size_t>(std::max<int64_t>(in.max_concurrent_imports, 1));
  out.import.idle_timeout = in.import_idle_timeout;
  out.upload_timeout = in.upload_timeout;
  return out;
}

std::string JobsDebugString(const JobsConfig& config) {
  return absl::StrCat(
      "watch_min_poll_interval=", absl::FormatDuration(config.watch.min_poll_interval),
      " watch_max_poll_interval=", absl::FormatDuration(config.watch.max_poll_interval),
      " max_watches=", config.watch.max_subscribers,
      " max_watched_jobs=", config.watch.max_watched_jobs,
      " import_spool_dir=", config.import.spool_dir,
      " import_max_file_bytes=", config.import.limits.max_file_bytes,
      " max_concurrent_imports=", config.import.max_concurrent_imports,
      " import_idle_timeout=", absl::FormatDuration(config.import.idle_timeout),
      " upload_timeout=", absl::FormatDuration(config.upload_timeout));
}

}  // namespace userpilot::gateway
