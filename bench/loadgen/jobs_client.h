// The client side of the fan-out and import scenario (bench/run.sh jobs), run against the real
// gateway binary:
//  - WatchMany opens `watchers` WatchJob streams spread over `job_ids` (watcher i watches job
//    i mod jobs) and over several HTTP/2 connections, says "ready" on stdout once every stream
//    has its first message, then records when each first sees `status` (CLOCK_MONOTONIC ns,
//    comparable with the script that changes the jobs at the emulator).
//  - ImportNdjson streams a users NDJSON file of about `megabytes` MB (10,000 rows, padded)
//    through ImportData in 256 KiB chunks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace userpilot::gateway::bench {

struct WatchResult {
  int started = 0;                // streams that delivered their first message
  std::vector<int64_t> arrivals;  // per watcher: monotonic ns of `status`, or -1
};

absl::StatusOr<WatchResult> WatchMany(const std::string& address,
                                      const std::vector<std::string>& job_ids, int watchers,
                                      int channels, const std::string& status,
                                      absl::Duration timeout);

struct ImportResult {
  int64_t bytes = 0;
  double seconds = 0;
  std::string job_id;
};

absl::StatusOr<ImportResult> ImportNdjson(const std::string& address, int64_t megabytes,
                                          absl::Duration deadline);

}  // namespace userpilot::gateway::bench
