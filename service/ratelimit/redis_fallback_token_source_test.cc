// FallbackTokenSource and the factory without a Redis server: the client points at a closed
// loopback port, so Redis is never available. With a server: redis_token_source_test.cc.
#include "service/ratelimit/redis_fallback_token_source.h"

#include <future>
#include <memory>
#include <optional>
#include <vector>

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
  source.Take(now, TakeKind::kImmediate, 1,
              [promise](absl::StatusOr<TakeResult> r) { promise->set_value(std::move(r)); });
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

TEST(FallbackTokenSourceTest, LocalShareIsAnNthOfTheLimitPerWindow) {
  RateSpec spec{"identify", 600, absl::Minutes(1)};
  RateSpec share = FallbackTokenSource::LocalShare(spec, 3);
  EXPECT_EQ(share.name, "identify");
  EXPECT_EQ(share.limit, 200);
  EXPECT_EQ(share.window, absl::Minutes(1));
  EXPECT_EQ(FallbackTokenSource::LocalShare(spec, 1).limit, 600);
  EXPECT_EQ(FallbackTokenSource::LocalShare({"x", 10, absl::Seconds(1)}, 4).limit, 2);  // 8 of 10.
  // Fewer permits than replicas: one per ceil(N / limit) windows each.
  RateSpec scarce = FallbackTokenSource::LocalShare({"delete", 1, absl::Seconds(2)}, 3);
  EXPECT_EQ(scarce.limit, 1);
  EXPECT_EQ(scarce.window, absl::Seconds(6));
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

  // The share: 2 per second, a burst of 2 at once, then when the first leaves the window.
  const absl::Time t0 = *clock.now;
  absl::StatusOr<TakeResult> r = TakeAndWait(*source, t0);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->granted, 1);
  r = TakeAndWait(*source, t0 + absl::Milliseconds(1));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->granted, 1);
  r = TakeAndWait(*source, t0 + absl::Milliseconds(2));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->granted, 0);
  EXPECT_EQ(r->retry_at, t0 + absl::Seconds(1));
  // Decided on the caller's thread too, and planned exactly, while Redis is out of reach.
  std::optional<TakeResult> now = source->TryTakeNow(t0 + absl::Seconds(1), TakeKind::kImmediate);
  ASSERT_TRUE(now.has_value());
  EXPECT_EQ(now->granted, 1);
  std::vector<absl::Time> plan;
  EXPECT_TRUE(
      source->Plan(t0 + absl::Seconds(1), 1, t0 + absl::Seconds(1), absl::ZeroDuration(), &plan));
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan.front(), t0 + absl::Seconds(1) + absl::Milliseconds(1));
  EXPECT_EQ(source->Available(t0 + absl::Seconds(1)), 0);

  // A 429 pauses the local share too.
  source->PauseUntil(t0 + absl::Seconds(5));
  r = TakeAndWait(*source, t0 + absl::Seconds(2));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->granted, 0);
  EXPECT_EQ(r->retry_at, t0 + absl::Seconds(5));

  RedisRateLimitStats stats = sources->Stats();
  EXPECT_FALSE(stats.redis_up);
  EXPECT_EQ(stats.decisions.local_decisions, 5u);
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

}  // namespace
}  // namespace userpilot::gateway
