#include "service/config/delivery_config.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "service/redis/redis_url.h"

namespace userpilot::gateway {
namespace {

// The least size bound: the embedded log's segments are a quarter of it (64 KiB to 64 MiB).
constexpr int64_t kMinQueueBytes = int64_t{1} << 20;
constexpr double kMaxSyncShare = 0.95;
constexpr int64_t kMaxInFlight = 10000;
// Userpilot's bulk identify limit: rows in one request.
constexpr int64_t kMaxCoalesceRows = 10000;
constexpr absl::Duration kMaxCoalesceJobTimeout = absl::Hours(24);
constexpr absl::Duration kMinLeaseTimeout = absl::Seconds(1);

}  // namespace

DeliveryConfig LoadDeliveryConfig(const DeliveryInput& in, const FlagProblem& problem) {
  DeliveryConfig out;
  if (!in.queue_dir.empty() && !in.queue_redis.empty()) {
    problem("queue_redis",
            "set either --queue_dir (the embedded queue) or --queue_redis (the shared queue), "
            "not both");
  } else if (!in.queue_dir.empty()) {
    out.store = DeliveryConfig::Store::kLog;
    out.dir = in.queue_dir;
  } else if (!in.queue_redis.empty()) {
    out.store = DeliveryConfig::Store::kRedis;
    out.redis_url = in.queue_redis;
    if (auto url = ParseRedisUrl(in.queue_redis); !url.ok()) {
      problem("queue_redis", std::string(url.status().message()));
    }
  }
  if (in.queue_redis_lease_timeout < kMinLeaseTimeout) {
    problem("queue_redis_lease_timeout",
            absl::StrCat("must be at least ", absl::FormatDuration(kMinLeaseTimeout), ", not ",
                         absl::FormatDuration(in.queue_redis_lease_timeout)));
  }
  out.redis_lease_timeout = std::max(in.queue_redis_lease_timeout, kMinLeaseTimeout);
  if (in.queue_max_bytes < kMinQueueBytes) {
    problem("queue_max_bytes", absl::StrCat("must be at least ", kMinQueueBytes, " (1 MiB), not ",
                                            in.queue_max_bytes));
  }
  out.max_bytes = static_cast<uint64_t>(std::max<int64_t>(in.queue_max_bytes, 0));
  if (!(in.queue_sync_share >= 0 && in.queue_sync_share <= kMaxSyncShare)) {
    problem("queue_sync_share",
            absl::StrCat("must be between 0 and ", kMaxSyncShare, ", not ", in.queue_sync_share));
  }
  out.sync_share = in.queue_sync_share;
  if (in.queue_max_in_flight < 1 || in.queue_max_in_flight > kMaxInFlight) {
    problem("queue_max_in_flight",
            absl::StrCat("must be between 1 and ", kMaxInFlight, ", not ", in.queue_max_in_flight));
  }
  out.max_in_flight = static_cast<size_t>(std::max<int64_t>(in.queue_max_in_flight, 1));
  if (in.queue_coalesce_threshold < 0) {
    problem("queue_coalesce_threshold",
            absl::StrCat("must be at least 0 (0 turns coalescing off), not ",
                         in.queue_coalesce_threshold));
  }
  out.coalesce_threshold = static_cast<size_t>(std::max<int64_t>(in.queue_coalesce_threshold, 0));
  if (in.queue_coalesce_max_rows < 2 || in.queue_coalesce_max_rows > kMaxCoalesceRows) {
    problem("queue_coalesce_max_rows",
            absl::StrCat("must be between 2 and ", kMaxCoalesceRows,
                         " (Userpilot's bulk identify limit), not ", in.queue_coalesce_max_rows));
  }
  out.coalesce_max_rows =
      static_cast<size_t>(std::clamp<int64_t>(in.queue_coalesce_max_rows, 2, kMaxCoalesceRows));
  if (in.queue_coalesce_job_timeout < absl::Seconds(1) ||
      in.queue_coalesce_job_timeout > kMaxCoalesceJobTimeout) {
    problem("queue_coalesce_job_timeout",
            absl::StrCat("must be between 1s and 24h, not ",
                         absl::FormatDuration(in.queue_coalesce_job_timeout)));
  }
  out.coalesce_job_timeout = in.queue_coalesce_job_timeout;
  return out;
}

std::string DeliveryDebugString(const DeliveryConfig& config) {
  return absl::StrCat(
      "queue_dir=", config.dir, " queue_redis=", config.redis_url,
      " queue_max_bytes=", config.max_bytes, " queue_sync_share=", config.sync_share,
      " queue_max_in_flight=", config.max_in_flight,
      " queue_coalesce_threshold=", config.coalesce_threshold,
      " queue_coalesce_max_rows=", config.coalesce_max_rows,
      " queue_coalesce_job_timeout=", absl::FormatDuration(config.coalesce_job_timeout),
      " queue_redis_lease_timeout=", absl::FormatDuration(config.redis_lease_timeout));
}

}  // namespace userpilot::gateway
