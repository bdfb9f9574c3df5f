#include "service/ratelimit/redis_token_source_factory.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "service/ratelimit/local_token_source.h"

namespace userpilot::gateway {

RedisRateLimitStats RedisBudgetSources::Stats() const {
  RedisRateLimitStats stats;
  stats.client = client->Stats();
  stats.redis_up = stats.client.healthy;
  stats.decisions = counters->Read();
  return stats;
}

absl::StatusOr<RedisBudgetSources> MakeRedisBudgetSources(const RedisRateLimitOptions& options,
                                                          RedisClockFn clock) {
  absl::StatusOr<RedisEndpoint> endpoint = ParseRedisUrl(options.url);
  if (!endpoint.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ratelimit_redis: ", endpoint.status().message()));
  }
  if (options.replicas < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ratelimit_replicas must be at least 1, got ", options.replicas));
  }
  if (!clock) return absl::InvalidArgumentError("MakeRedisBudgetSources: clock is not set");
  RedisTokenSourceOptions source_options;
  source_options.key_prefix = options.key_prefix;
  source_options.clock = clock;
  RateSpec probe;
  probe.name = "probe";
  if (absl::Status s = RedisTokenSource::Validate(probe, source_options); !s.ok()) return s;

  RedisClientOptions client_options = options.client;
  client_options.endpoint = *std::move(endpoint);
  absl::StatusOr<std::unique_ptr<RedisClient>> client =
      RedisClient::Create(std::move(client_options));
  if (!client.ok()) return client.status();

  RedisBudgetSources sources;
  sources.client = std::shared_ptr<RedisClient>(*std::move(client));
  sources.counters = std::make_shared<RedisFallbackCounters>();
  sources.factory = [client = sources.client, counters = sources.counters, source_options,
                     mode = options.fallback, replicas = options.replicas](
                        const RateSpec& spec) -> std::unique_ptr<TokenSource> {
    auto redis = std::make_unique<RedisTokenSource>(client, spec, source_options);
    std::unique_ptr<TokenSource> local;
    if (mode == RedisFallbackMode::kLocal) {
      local = std::make_unique<LocalTokenSource>(FallbackTokenSource::LocalShare(spec, replicas));
    }
    return std::make_unique<FallbackTokenSource>(std::move(redis), std::move(local), mode,
                                                 source_options.clock, counters);
  };
  return sources;
}

}  // namespace userpilot::gateway
