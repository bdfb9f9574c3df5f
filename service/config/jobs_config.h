// Job-watching and import configuration: how often watched jobs are polled, how many watches
// and imports the gateway carries at once, where import files are spooled.
//
// As with the traffic flags, LoadJobsConfig turns the flags into the components' own option
// structs (JobWatchOptions, ImportOptions), checking each flag by name; the structs' own
// Validate() then runs as a last check of what the flags cannot express.
//
// Thread-safety: plain values.
#ifndef USERPILOT_GATEWAY_SERVICE_CONFIG_JOBS_CONFIG_H_
#define USERPILOT_GATEWAY_SERVICE_CONFIG_JOBS_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "service/config/traffic_config.h"
#include "service/jobs/import/import_options.h"
#include "service/jobs/watch/job_watch_options.h"

namespace userpilot::gateway {

// The raw job flags, named like them, with their defaults.
struct JobsInput {
  absl::Duration watch_min_poll_interval = JobWatchOptions().min_poll_interval;
  absl::Duration watch_max_poll_interval = JobWatchOptions().max_poll_interval;
  // Open job watch streams at once (imports waiting for a running job count too).
  int64_t max_watches = static_cast<int64_t>(JobWatchOptions().max_subscribers);
  // Distinct jobs polled at once: each costs one job read per poll interval.
  int64_t max_watched_jobs = static_cast<int64_t>(JobWatchOptions().max_watched_jobs);
  // Directory for spooled import files; empty: $TMPDIR, else /tmp.
  std::string import_spool_dir;
  int64_t import_max_file_bytes = ImportLimits().max_file_bytes;
  int64_t max_concurrent_imports = static_cast<int64_t>(ImportOptions().max_concurrent_imports);
  // Cap on one upload attempt of an import file to Userpilot.
  absl::Duration upload_timeout = absl::Minutes(5);
  // An ImportData caller that sends nothing for this long while the gateway waits for its next
  // message is ended with DEADLINE_EXCEEDED, freeing its import slot.
  absl::Duration import_idle_timeout = ImportOptions().idle_timeout;
};

// The validated job configuration.
struct JobsConfig {
  JobWatchOptions watch;
  ImportOptions import;
  absl::Duration upload_timeout;
};

// Checks `in` and returns the configuration; every problem goes to `problem`. The import row
// rules' limits (import.limits.rows) are the request validation limits, which the caller sets.
JobsConfig LoadJobsConfig(const JobsInput& in, const FlagProblem& problem);

// `name=value` pairs of the job settings, for the start-up log line.
std::string JobsDebugString(const JobsConfig& config);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_CONFIG_JOBS_CONFIG_H_
