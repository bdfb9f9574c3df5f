// upgw-import-check-bench: how fast the gateway checks an ImportData file (ImportFileValidator,
// the CPU-bound part of an import), without gRPC, disk or upstream in the way.
//
// It builds two NDJSON files in memory and feeds each through the validator in 256 KiB chunks
// (what clients send), several times, printing one JSON line per file with the best and median
// MB/s:
//  - "bulk_users_wide": the shape of bench/run.sh jobs - 10,000 users rows of about 5 KB, most
//    of it long metadata strings (string scanning dominates);
//  - "import_events_small": historical import rows of about 200 bytes with several metadata
//    keys (JSON structure dominates).
// Usage: upgw-import-check-bench [--mb=45] [--runs=5]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "service/jobs/import/import_validator.h"

ABSL_FLAG(int64_t, mb, 45, "Size of each file, in MB (at most 50)");
ABSL_FLAG(int, runs, 5, "Passes over each file");

namespace userpilot::gateway {
namespace {

std::string WideUsers(int64_t bytes) {
  const int rows = 10000;
  const int64_t per_row = bytes / rows - 16;
  // Values stay under the 4096-byte limit on metadata strings: split the padding.
  const int64_t pad_total = std::max<int64_t>(per_row - 80, 1);
  std::vector<std::string> pads;
  for (int64_t left = pad_total; left > 0; left -= 4000) {
    pads.emplace_back(static_cast<size_t>(std::min<int64_t>(left, 4000)), 'x');
  }
  std::string file;
  file.reserve(static_cast<size_t>(bytes + rows * 32));
  for (int i = 0; i < rows; ++i) {
    absl::StrAppend(&file, "{\"user_id\":\"bench-user-", i, "\",\"metadata\":{");
    for (size_t p = 0; p < pads.size(); ++p) {
      absl::StrAppend(&file, p == 0 ? "" : ",", "\"pad", p, "\":\"", pads[p], "\"");
    }
    file += "}}\n";
  }
  return file;
}

std::string SmallEvents(int64_t bytes) {
  std::string file;
  file.reserve(static_cast<size_t>(bytes + 512));
  for (int i = 0; static_cast<int64_t>(file.size()) + 300 < bytes; ++i) {
    absl::StrAppend(&file, "{\"event_type\":\"track\",\"user_id\":\"user-", i % 5000,
                    "\",\"event_name\":\"report_exported\",\"source\":\"backend-http-import\","
                    "\"inserted_at\":\"2024-07-28 08:55:35.874555\",\"metadata\":{\"plan\":\"pro\","
                    "\"seats\":",
                    i % 97, ",\"trial\":false,\"ratio\":0.", i % 1000,
                    ",\"region\":\"eu-west-\\u00e9\",\"note\":null}}\n");
  }
  return file;
}

void Run(const char* name, const std::string& file, v1::ImportTarget target, int runs) {
  constexpr size_t kChunk = 256 * 1024;
  ImportLimits limits;
  std::vector<double> mbps;
  for (int r = 0; r < runs; ++r) {
    ImportFileValidator validator(target, v1::IMPORT_FORMAT_NDJSON, limits);
    const auto start = std::chrono::steady_clock::now();
    CallStatus status;
    for (size_t at = 0; status.ok() && at < file.size(); at += kChunk) {
      status = validator.Feed(absl::string_view(file).substr(at, kChunk));
    }
    if (status.ok()) status = validator.Finish();
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    if (!status.ok()) {
      std::fprintf(stderr, "%s: the file was refused: %s\n", name, status.ToString().c_str());
      std::exit(1);
    }
    mbps.push_back(static_cast<double>(file.size()) / 1e6 / took.count());
  }
  std::sort(mbps.begin(), mbps.end());
  std::printf(
      "{\"file\":\"%s\",\"megabytes\":%.1f,\"runs\":%d,\"mb_per_s_best\":%.1f,"
      "\"mb_per_s_median\":%.1f}\n",
      name, static_cast<double>(file.size()) / 1e6, runs, mbps.back(), mbps[mbps.size() / 2]);
}

}  // namespace
}  // namespace userpilot::gateway

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using namespace userpilot::gateway;  // NOLINT
  const int64_t bytes = std::min<int64_t>(absl::GetFlag(FLAGS_mb), 50) * 1000 * 1000;
  const int runs = std::max(1, absl::GetFlag(FLAGS_runs));
  Run("bulk_users_wide", WideUsers(bytes), v1::IMPORT_TARGET_USERS_BULK, runs);
  Run("import_events_small", SmallEvents(bytes), v1::IMPORT_TARGET_HISTORICAL_IMPORT, runs);
  return 0;
}
