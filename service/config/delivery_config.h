// Durable delivery configuration (Enqueue and the dispatcher): where the queue lives, its size
// bound, and how much of each upstream budget the dispatcher may spend.
//
// Async delivery is on when exactly one of --queue_dir (the embedded log, one process per
// folder) and --queue_redis (a Redis Stream shared by replicas) is set; with neither, Enqueue
// and the other delivery RPCs answer FAILED_PRECONDITION.
//
// Thread-safety: plain values.
#ifndef USERPILOT_GATEWAY_SERVICE_CONFIG_DELIVERY_CONFIG_H_
#define USERPILOT_GATEWAY_SERVICE_CONFIG_DELIVERY_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "service/config/traffic_config.h"

namespace userpilot::gateway {

// The raw delivery flags, named like them, with their defaults.
struct DeliveryInput {
  std::string queue_dir;                       // Empty: no embedded queue.
  int64_t queue_max_bytes = int64_t{1} << 30;  // 1 GiB.
  std::string queue_redis;                     // Empty: no Redis queue.
  // Redis queue: a lease not completed within this goes to another replica (a dead replica's
  // calls are taken over after it).
  absl::Duration queue_redis_lease_timeout = absl::Seconds(60);
  // Share of each upstream budget (identify, track) the dispatcher leaves to synchronous
  // callers, in [0, 0.95].
  double queue_sync_share = 0.2;
  int64_t queue_max_in_flight = 64;  // Deliveries in flight (leased, waiting or sent) at once.
  // Pending identify calls of one kind at which the dispatcher coalesces them into bulk jobs;
  // 0: never. 1,000 is about two minutes of the dispatcher's share of the default identify
  // budget (480 of 600 a minute): below it single calls drain the backlog about as fast as a
  // bulk job (minutes) would, and the account's one bulk job slot stays free.
  int64_t queue_coalesce_threshold = 1000;
  // Most rows in one coalesced job, 2 to 10,000; --max_bulk_rows caps it too.
  int64_t queue_coalesce_max_rows = 10000;
  // How long a coalesced job's rows wait for its end before they are sent singly.
  absl::Duration queue_coalesce_job_timeout = absl::Minutes(20);
};

// The validated delivery configuration.
struct DeliveryConfig {
  enum class Store { kNone, kLog, kRedis };
  Store store = Store::kNone;
  std::string dir;                                         // kLog
  std::string redis_url;                                   // kRedis
  absl::Duration redis_lease_timeout = absl::Seconds(60);  // kRedis
  uint64_t max_bytes = 0;
  double sync_share = 0.2;
  size_t max_in_flight = 64;
  // Coalescing (0: off). The rows a job may hold are min(coalesce_max_rows, --max_bulk_rows).
  size_t coalesce_threshold = 1000;
  size_t coalesce_max_rows = 10000;
  absl::Duration coalesce_job_timeout = absl::Minutes(20);

  bool enabled() const { return store != Store::kNone; }
};

// Checks `in` and returns the configuration; every problem goes to `problem`, naming its flag.
DeliveryConfig LoadDeliveryConfig(const DeliveryInput& in, const FlagProblem& problem);

// `name=value` pairs of the delivery settings, for the start-up log line.
std::string DeliveryDebugString(const DeliveryConfig& config);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_CONFIG_DELIVERY_CONFIG_H_
