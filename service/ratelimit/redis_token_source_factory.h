// Wiring for several replicas sharing one Userpilot API key: one RedisClient (one connection,
// one event thread) for the whole process, and a factory that makes each budget's TokenSource
// on it, wrapped in the configured fallback.
//
// Flags the lead maps onto RedisRateLimitOptions (main.cc / config):
//   --ratelimit_redis=redis://host:port[/db]   url (redis_url.h); unset: no Redis, use
//                                              LocalTokenSource directly
//   --ratelimit_redis_fallback=local|refuse    fallback (ParseRedisFallbackMode)
//   --ratelimit_replicas=N                     replicas: the local share is 1/N of each budget
//
//   RedisRateLimitOptions options;  options.url = ...; options.replicas = ...;
//   absl::StatusOr<RedisBudgetSources> redis =
//       MakeRedisBudgetSources(options, [&scheduler] { return scheduler.Now(); });
//   if (!redis.ok()) -> configuration error, stop at start-up
//   redis->client->WaitUntilConnected(absl::Seconds(2));   // optional, at start-up only
//   ... MakeBudgets(..., redis->factory) ...
//
// Thread-safety: the factory may be called from any thread; Stats() too.
#ifndef USERPILOT_GATEWAY_SERVICE_RATELIMIT_REDIS_TOKEN_SOURCE_FACTORY_H_
#define USERPILOT_GATEWAY_SERVICE_RATELIMIT_REDIS_TOKEN_SOURCE_FACTORY_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "service/ratelimit/redis_fallback_token_source.h"
#include "service/ratelimit/redis_token_source.h"
#include "service/ratelimit/token_source.h"
#include "service/redis/redis_client.h"

namespace userpilot::gateway {

struct RedisRateLimitOptions {
  std::string url;                                         // --ratelimit_redis
  RedisFallbackMode fallback = RedisFallbackMode::kLocal;  // --ratelimit_redis_fallback
  int replicas = 1;                                        // --ratelimit_replicas, >= 1
  // Key namespace (redis_token_source.h); one per API key when keys share a Redis.
  std::string key_prefix = "upgw";
  // Timeouts and bounds; `client.endpoint` is ignored (it comes from `url`).
  RedisClientOptions client;
};

// Makes one budget's source: FallbackTokenSource(RedisTokenSource, LocalTokenSource share).
// Aborts on a spec RedisTokenSource::Validate() rejects (check budgets at start-up).
using RedisTokenSourceFactory = std::function<std::unique_ptr<TokenSource>(const RateSpec&)>;

struct RedisRateLimitStats {
  bool redis_up = false;  // Connected and answering in time.
  RedisClientStats client;
  RedisFallbackCounters::Snapshot decisions;  // All budgets together.
};

struct RedisBudgetSources {
  std::shared_ptr<RedisClient> client;
  std::shared_ptr<RedisFallbackCounters> counters;
  RedisTokenSourceFactory factory;

  RedisRateLimitStats Stats() const;
};

// Validates `options` (INVALID_ARGUMENT naming the flag), creates the client (which starts
// connecting in the background) and the factory. `clock` is the callers' clock (the
// Scheduler's Now()).
absl::StatusOr<RedisBudgetSources> MakeRedisBudgetSources(const RedisRateLimitOptions& options,
                                                          RedisClockFn clock);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RATELIMIT_REDIS_TOKEN_SOURCE_FACTORY_H_
