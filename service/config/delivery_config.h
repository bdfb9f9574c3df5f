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

#include "service/config/traffic_config.h"

namespace userpilot::gateway {

// The raw delivery flags, named like them, with their defaults.
struct DeliveryInput {
  std::string queue_dir;                       // Empty: no embedded queue.
  int64_t queue_max_bytes = int64_t{1} << 30;  // 1 GiB.
  std::string queue_redis;                     // Empty: no Redis queue.
  // Share of each upstream budget (identify, track) the dispatcher leaves to synchronous
  // callers, in [0, 0.95].
  double queue_sync_share = 0.2;
  int64_t queue_max_in_flight = 64;  // Deliveries in flight (leased, waiting or sent) at once.
};

// The validated delivery configuration.
struct DeliveryConfig {
  enum class Store { kNone, kLog, kRedis };
  Store store = Store::kNone;
  std::string dir;        // kLog
  std::string redis_url;  // kRedis
  uint64_t max_bytes = 0;
  double sync_share = 0.2;
  size_t max_in_flight = 64;

  bool enabled() const { return store != Store::kNone; }
};

// Checks `in` and returns the configuration; every problem goes to `problem`, naming its flag.
DeliveryConfig LoadDeliveryConfig(const DeliveryInput& in, const FlagProblem& problem);

// `name=value` pairs of the delivery settings, for the start-up log line.
std::string DeliveryDebugString(const DeliveryConfig& config);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_CONFIG_DELIVERY_CONFIG_H_
