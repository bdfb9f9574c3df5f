// FallbackTokenSource and the factory without a Redis server: the client points at a closed
// loopback port, so Redis is never available. With a server: redis_token_source_test.cc.
#include "service/ratelimit/redis_fallback_token_source.h"

#include <pthread.h>
#include <signal.h>

#include <future>
#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/ratelimit/redis_token_source_factory.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;

// Port 1 on loopback: nothing listens there, connects are refused at once.
constexpr char kClosedUrl[] = "redis://127.0.0.1:1";

// A clock the test moves by hand.
struct ManualClock {
  std::shared_ptr<absl::Time> now = std::make_shared<absl::Time>(absl::FromUnixSeconds(1000));
  RedisClockFn fn() const {
    return [now = now] { return *now; };
  }
};

absl::StatusOr<TakeResult> TakeAndWait(TokenSource& source, absl::Time now) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<TakeResult>>>();
  std::future<absl::StatusOr<TakeResult>> future = promise->get_future();
  source.Take(now, [promise](absl::StatusOr<TakeResult> r) { promise->set_value(std::move(r)); });
  if (future.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
    return absl::DeadlineExceededError("Take() did not complete");
  }
  return future.get();
}

TEST(RedisFallbackModeTest, ParsesFlagValues) {
  EXPECT_EQ(*ParseRedisFallbackMode("local"), RedisFallbackMode::kLocal);
  EXPECT_EQ(*ParseRedisFallbackMode("Refuse"), RedisFallbackMode::kRefuse);
  absl::StatusOr<RedisFallbackMode> bad = ParseRedisFallbackMode("fail-open");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("expected 'local' or 'refuse'"));
  EXPECT_EQ(RedisFallbackModeName(RedisFallbackMode::kLocal), "local");
  EXPECT_EQ(RedisFallbackModeName(RedisFallbackMode::kRefuse), "refuse");
}

TEST(FallbackTokenSourceTest, LocalShareSpacesGrantsNIntervalsApart) {
  RateSpec spec{"identify", 600, absl::Minutes(1)};
  RateSpec share = FallbackTokenSource::LocalShare(spec, 3);
  EXPECT_EQ(share.name, "identify");
  EXPECT_EQ(share.limit, 600);
  EXPECT_EQ(share.interval(), absl::Milliseconds(300));
  EXPECT_EQ(FallbackTokenSource::LocalShare(spec, 1).interval(), absl::Milliseconds(100));
}

TEST(MakeRedisBudgetSourcesTest, RejectsBadOptionsNamingTheFlag) {
  ManualClock clock;
  RedisRateLimitOptions options;
  options.url = "redis://:pw@host:1";
  absl::StatusOr<RedisBudgetSources> s = MakeRedisBudgetSources(options, clock.fn());
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("--ratelimit_redis: "));

  options.url = kClosedUrl;
  options.replicas = 0;
  s = MakeRedisBudgetSources(options, clock.fn());
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("--ratelimit_replicas"));

  options.replicas = 1;
  options.key_prefix = "a{b";
  s = MakeRedisBudgetSources(options, clock.fn());
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("key_prefix"));

  options.key_prefix = "upgw";
  options.client.command_timeout = absl::ZeroDuration();
  s = MakeRedisBudgetSources(options, clock.fn());
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("command_timeout"));
}

TEST(RedisTokenSourceTest, ValidateRejectsUnusableSpecs) {
  RedisTokenSourceOptions options;
  EXPECT_TRUE(RedisTokenSource::Validate({"identify", 600, absl::Minutes(1)}, options).ok());
  EXPECT_FALSE(RedisTokenSource::Validate({"identify", 0, absl::Minutes(1)}, options).ok());
  EXPECT_FALSE(RedisTokenSource::Validate({"identify", 10, absl::ZeroDuration()}, options).ok());
  EXPECT_FALSE(RedisTokenSource::Validate({"identify", 10, absl::Nanoseconds(9)}, options).ok());
  EXPECT_FALSE(RedisTokenSource::Validate({"a}b", 10, absl::Seconds(1)}, options).ok());
  EXPECT_FALSE(RedisTokenSource::Validate({"", 10, absl::Seconds(1)}, options).ok());
}

TEST(FallbackTokenSourceTest, UnreachableRedisDecidesLocallyAtOneNth) {
  ManualClock clock;
  RedisRateLimitOptions options;
  options.url = kClosedUrl;
  options.replicas = 3;
  absl::StatusOr<RedisBudgetSources> sources = MakeRedisBudgetSources(options, clock.fn());
  ASSERT_TRUE(sources.ok()) << sources.status();
  std::unique_ptr<TokenSource> source = sources->factory({"identify", 6, absl::Seconds(1)});
  EXPECT_EQ(source->spec().limit, 6);  // The configured spec, not the share.

  const absl::Time t0 = *clock.now;
  absl::StatusOr<TakeResult> r = TakeAndWait(*source, t0);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->granted);
  r = TakeAndWait(*source, t0 + absl::Milliseconds(499));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->granted);
  EXPECT_EQ(r->retry_at, t0 + absl::Milliseconds(500));  // 1 s / 6 * 3 replicas.
  r = TakeAndWait(*source, t0 + absl::Milliseconds(500));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->granted);

  // A 429 pauses the local share too.
  source->PauseUntil(t0 + absl::Seconds(5));
  r = TakeAndWait(*source, t0 + absl::Seconds(2));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->granted);
  EXPECT_EQ(r->retry_at, t0 + absl::Seconds(5));

  RedisRateLimitStats stats = sources->Stats();
  EXPECT_FALSE(stats.redis_up);
  EXPECT_EQ(stats.decisions.local_decisions, 4u);
  EXPECT_EQ(stats.decisions.redis_decisions, 0u);
}

TEST(FallbackTokenSourceTest, RefuseModePassesUnavailableOn) {
  ManualClock clock;
  RedisRateLimitOptions options;
  options.url = kClosedUrl;
  options.fallback = RedisFallbackMode::kRefuse;
  absl::StatusOr<RedisBudgetSources> sources = MakeRedisBudgetSources(options, clock.fn());
  ASSERT_TRUE(sources.ok()) << sources.status();
  std::unique_ptr<TokenSource> source = sources->factory({"track", 10, absl::Seconds(1)});
  absl::StatusOr<TakeResult> r = TakeAndWait(*source, *clock.now);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(r.status().message(), HasSubstr("not connected"));
  EXPECT_THAT(r.status().message(), HasSubstr("redis://127.0.0.1:1/0"));
  RedisRateLimitStats stats = sources->Stats();
  EXPECT_EQ(stats.decisions.refused, 1u);
  EXPECT_EQ(stats.decisions.local_decisions, 0u);
  EXPECT_GE(stats.client.rejected_not_connected, 1u);
}

TEST(RedisClientTest, EventThreadBlocksSigpipe) {
  // hiredis writes with write(2): without this a server reset could kill the gateway.
  RedisClientOptions options;
  options.endpoint = *ParseRedisUrl(kClosedUrl);
  absl::StatusOr<std::unique_ptr<RedisClient>> client = RedisClient::Create(options);
  ASSERT_TRUE(client.ok()) << client.status();
  std::promise<bool> blocked;
  (*client)->Post([&blocked] {
    sigset_t mask;
    pthread_sigmask(SIG_BLOCK, nullptr, &mask);
    blocked.set_value(sigismember(&mask, SIGPIPE) == 1);
  });
  EXPECT_TRUE(blocked.get_future().get());
}

TEST(RedisClientTest, RejectsBadOptionsNamingTheField) {
  RedisClientOptions options;
  options.endpoint = *ParseRedisUrl(kClosedUrl);
  options.stall_timeout = absl::Milliseconds(10);
  absl::StatusOr<std::unique_ptr<RedisClient>> client = RedisClient::Create(options);
  ASSERT_FALSE(client.ok());
  EXPECT_THAT(client.status().message(), HasSubstr("stall_timeout"));
  options.stall_timeout = absl::Seconds(1);
  options.max_in_flight = 0;
  client = RedisClient::Create(options);
  ASSERT_FALSE(client.ok());
  EXPECT_THAT(client.status().message(), HasSubstr("max_in_flight"));
  options.max_in_flight = 1;
  options.reconnect_initial_backoff = absl::Seconds(10);
  client = RedisClient::Create(options);
  ASSERT_FALSE(client.ok());
  EXPECT_THAT(client.status().message(), HasSubstr("backoff"));
}

}  // namespace
}  // namespace userpilot::gateway
