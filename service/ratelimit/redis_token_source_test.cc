// RedisTokenSource, RedisClient and FallbackTokenSource against a real redis-server on
// loopback (tests/redis/redis_server.h). Label: redis.
//
// What is asserted exactly: the script returns the Redis TIME of every decision, so the
// any-window guarantee is checked on the clock that made the decisions (grant i and grant
// i + limit are at least one window apart), with no tolerance. Receive times on the test's
// clock include scheduling jitter and are only used for loose rate checks.
#include "service/ratelimit/redis_token_source.h"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/ratelimit/redis_fallback_token_source.h"
#include "service/ratelimit/redis_token_source_factory.h"
#include "service/redis/redis_client.h"
#include "tests/redis/redis_server.h"
#include "tests/util/ratelimit_test_util.h"

namespace userpilot::gateway {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::userpilot::gateway::testing::RedisServer;

template <typename T>
absl::StatusOr<T> Await(std::future<absl::StatusOr<T>>& future,
                        absl::Duration timeout = absl::Seconds(5)) {
  if (future.wait_for(absl::ToChronoNanoseconds(timeout)) != std::future_status::ready) {
    return absl::DeadlineExceededError("did not complete in time");
  }
  return future.get();
}

absl::StatusOr<RedisDecision> DecideSync(RedisTokenSource& source,
                                         TakeKind kind = TakeKind::kImmediate, int64_t want = 1) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<RedisDecision>>>();
  auto future = promise->get_future();
  source.Decide(kind, want,
                [promise](absl::StatusOr<RedisDecision> d) { promise->set_value(std::move(d)); });
  return Await(future);
}

absl::StatusOr<TakeResult> TakeSync(TokenSource& source, absl::Time now,
                                    TakeKind kind = TakeKind::kImmediate, int64_t want = 1) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<TakeResult>>>();
  auto future = promise->get_future();
  source.Take(now, kind, want,
              [promise](absl::StatusOr<TakeResult> r) { promise->set_value(std::move(r)); });
  return Await(future);
}

int64_t ToInt(const absl::StatusOr<std::string>& text) {
  int64_t value = -999;
  if (!text.ok() || !absl::SimpleAtoi(*text, &value)) return -999;
  return value;
}

// Polls `pred` every 5 ms for up to `timeout`.
template <typename Pred>
bool Eventually(Pred pred, absl::Duration timeout = absl::Seconds(5)) {
  const absl::Time give_up = absl::Now() + timeout;
  while (absl::Now() < give_up) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return pred();
}

class RedisTokenSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Start();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  // Tests shorten the reconnect backoff so that recovery takes milliseconds, and lengthen the
  // command deadline (tests of deadlines set their own) so that a loaded CI machine, or TSan,
  // does not turn a slow reply into a failure.
  RedisClientOptions ClientOptions() const {
    RedisClientOptions options;
    options.endpoint = *ParseRedisUrl(server_->url());
    options.command_timeout = absl::Milliseconds(500);
    options.stall_timeout = absl::Seconds(2);
    options.reconnect_initial_backoff = absl::Milliseconds(20);
    options.reconnect_max_backoff = absl::Milliseconds(100);
    return options;
  }

  std::shared_ptr<RedisClient> Connect(RedisClientOptions options) {
    absl::StatusOr<std::unique_ptr<RedisClient>> client = RedisClient::Create(std::move(options));
    EXPECT_TRUE(client.ok()) << client.status();
    if (!client.ok()) return nullptr;
    EXPECT_TRUE((*client)->WaitUntilConnected(absl::Seconds(5)));
    return std::shared_ptr<RedisClient>(*std::move(client));
  }
  std::shared_ptr<RedisClient> Connect() { return Connect(ClientOptions()); }

  std::unique_ptr<RedisServer> server_;
};

TEST_F(RedisTokenSourceTest, ABurstFitsTheWindowAtOnceAndWaitingCallsArePaced) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  RedisTokenSource source(client, {"identify", 10, absl::Seconds(1)});
  EXPECT_EQ(source.interval(), absl::Milliseconds(100));
  EXPECT_EQ(source.log_key(), "upgw:{identify}:log");
  EXPECT_EQ(source.pace_key(), "upgw:{identify}:pace");
  EXPECT_EQ(source.pause_key(), "upgw:{identify}:pause");

  // 15 asked at once by one script run: the 10 that fit.
  absl::StatusOr<RedisDecision> first = DecideSync(source, TakeKind::kImmediate, 15);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->granted, 10);
  EXPECT_EQ(first->wait, absl::Seconds(1));  // The burst leaves the window a window later.
  // The decision is made on the Redis clock.
  EXPECT_LT(absl::AbsDuration(first->server_time - absl::Now()), absl::Seconds(2));
  EXPECT_EQ(server_->Command({"LLEN", source.log_key()}).value_or(""), "10");

  absl::StatusOr<RedisDecision> second = DecideSync(source);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->granted, 0);
  EXPECT_FALSE(second->paused);
  // Exactly until the burst leaves, on the server's clock.
  EXPECT_EQ(second->wait, first->server_time + absl::Seconds(1) - second->server_time);

  // When it has left, waiting calls go at the pace: one now, the next an interval later (the
  // second ask came right after the first: no credit).
  absl::SleepFor(second->wait);
  absl::StatusOr<RedisDecision> paced = DecideSync(source, TakeKind::kPaced, 3);
  ASSERT_TRUE(paced.ok()) << paced.status();
  EXPECT_EQ(paced->granted, 1);
  EXPECT_EQ(paced->wait, absl::Milliseconds(100));
  EXPECT_GE(paced->server_time - first->server_time, absl::Seconds(1));
  EXPECT_EQ(server_->Command({"LLEN", source.log_key()}).value_or(""), "1");

  // Take() reports the wait as a time on the caller's clock, whatever that clock says: here
  // one hour ahead of Redis.
  RedisTokenSourceOptions skewed;
  skewed.clock = [] { return absl::Now() + absl::Hours(1); };
  RedisTokenSource ahead(client, {"skewed", 1, absl::Seconds(1)}, skewed);
  const absl::Time now = skewed.clock();
  absl::StatusOr<TakeResult> take = TakeSync(ahead, now);
  ASSERT_TRUE(take.ok()) << take.status();
  ASSERT_EQ(take->granted, 1);
  take = TakeSync(ahead, now);
  ASSERT_TRUE(take.ok()) << take.status();
  ASSERT_EQ(take->granted, 0);
  EXPECT_GT(take->retry_at, now + absl::Milliseconds(900));
  EXPECT_LE(take->retry_at, now + absl::Seconds(1) + absl::Milliseconds(50));
}

TEST_F(RedisTokenSourceTest, KeysExpireAndAreNamespacedByPrefix) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  RedisTokenSourceOptions options;
  options.key_prefix = "tenant-a";
  RedisTokenSource source(client, {"delete", 1, absl::Seconds(2)}, options);
  ASSERT_TRUE(DecideSync(source).ok());
  source.PauseUntil(absl::Now() + absl::Milliseconds(300));
  ASSERT_TRUE(Eventually([&] {
    return server_->Command({"EXISTS", source.pause_key()}).value_or("") == "1";
  }));

  // The log and the pace matter for a window (2 s) after the last send or ask; 1 s of margin.
  for (const char* key : {"tenant-a:{delete}:log", "tenant-a:{delete}:pace"}) {
    const int64_t ttl = ToInt(server_->Command({"PTTL", key}));
    EXPECT_GT(ttl, 3000 - 300) << key;
    EXPECT_LE(ttl, 3000) << key;
  }
  const int64_t pause_ttl = ToInt(server_->Command({"PTTL", "tenant-a:{delete}:pause"}));
  EXPECT_GT(pause_ttl, 0);
  EXPECT_LE(pause_ttl, 1300);
  // Nothing else was written.
  EXPECT_EQ(server_->Command({"DBSIZE"}).value_or(""), "3");
}

TEST_F(RedisTokenSourceTest, TwoReplicasNeverExceedTheLimitInAnyWindow) {
  constexpr int64_t kLimit = 20;
  const absl::Duration kWindow = absl::Seconds(1);
  const absl::Duration kRun = absl::Seconds(5);
  constexpr int kThreadsPerReplica = 3;

  // Two replicas: separate clients (connections, event threads), clocks skewed both ways.
  auto client_a = Connect();
  auto client_b = Connect();
  ASSERT_NE(client_a, nullptr);
  ASSERT_NE(client_b, nullptr);
  RedisTokenSourceOptions ahead, behind;
  ahead.clock = [] { return absl::Now() + absl::Minutes(7); };
  behind.clock = [] { return absl::Now() - absl::Minutes(11); };
  RedisTokenSource a(client_a, {"track", kLimit, kWindow}, ahead);
  RedisTokenSource b(client_b, {"track", kLimit, kWindow}, behind);

  std::mutex mu;
  std::vector<absl::Time> grants;  // Redis TIME of each grant.
  int grants_a = 0, grants_b = 0, errors = 0;
  const absl::Time stop = absl::Now() + kRun;
  std::vector<std::thread> threads;
  for (int i = 0; i < 2 * kThreadsPerReplica; ++i) {
    RedisTokenSource* source = i % 2 == 0 ? &a : &b;
    threads.emplace_back([&, source, i] {
      // Each thread mixes bursts (immediate asks for up to 5) and paced asks.
      int64_t round = 0;
      while (absl::Now() < stop) {
        ++round;
        const TakeKind kind = (round + i) % 3 == 0 ? TakeKind::kImmediate : TakeKind::kPaced;
        absl::StatusOr<RedisDecision> d = DecideSync(*source, kind, 1 + (round + i) % 5);
        std::lock_guard<std::mutex> lock(mu);
        if (!d.ok()) {
          ++errors;  // A missed deadline on a loaded machine; not a grant.
          continue;
        }
        for (int64_t g = 0; g < d->granted; ++g) grants.push_back(d->server_time);
        (i % 2 == 0 ? grants_a : grants_b) += static_cast<int>(d->granted);
        if (d->granted == 0) {
          // Hammer: ask again soon, not exactly at the promised time.
          mu.unlock();
          absl::SleepFor(std::min(d->wait, absl::Milliseconds(3)));
          mu.lock();
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();

  std::sort(grants.begin(), grants.end());
  RecordProperty("grants", static_cast<int>(grants.size()));
  RecordProperty("errors", errors);
  ASSERT_GE(grants.size(), static_cast<size_t>(kLimit) + 1);
  // Exact: any kLimit + 1 grants (in time order) span at least one window, so no window of
  // length kWindow (the (t - W, t] one Userpilot counts included) holds more than kLimit.
  for (size_t i = 0; i + kLimit < grants.size(); ++i) {
    ASSERT_GE(grants[i + kLimit] - grants[i], kWindow) << "grants " << i << ".." << i + kLimit;
  }
  // And the budget is used: 5 s holds at most 5 windows' worth (6 counting both ends).
  EXPECT_LE(grants.size(), 120u);
  EXPECT_GE(grants.size(), 90u) << "errors: " << errors;
  EXPECT_GT(grants_a, 10);
  EXPECT_GT(grants_b, 10);
}

TEST_F(RedisTokenSourceTest, PauseIsSharedByEveryReplica) {
  auto client_a = Connect();
  auto client_b = Connect();
  ASSERT_NE(client_a, nullptr);
  ASSERT_NE(client_b, nullptr);
  RedisTokenSource a(client_a, {"identify", 100, absl::Seconds(1)});
  RedisTokenSource b(client_b, {"identify", 100, absl::Seconds(1)});

  a.PauseUntil(absl::Now() + absl::Milliseconds(400));
  ASSERT_TRUE(Eventually([&] {
    return server_->Command({"EXISTS", a.pause_key()}).value_or("") == "1";
  }));
  // Replica b never saw the 429, yet it is paused, for what is left of the 400 ms.
  absl::StatusOr<RedisDecision> d = DecideSync(b);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->granted, 0);
  EXPECT_TRUE(d->paused);
  EXPECT_GT(d->wait, absl::Milliseconds(250));
  EXPECT_LE(d->wait, absl::Milliseconds(400));
  const absl::Time now = absl::Now();
  absl::StatusOr<TakeResult> take = TakeSync(b, now);
  ASSERT_TRUE(take.ok()) << take.status();
  EXPECT_EQ(take->granted, 0);
  EXPECT_GT(take->retry_at, now + absl::Milliseconds(200));

  // A shorter pause never shortens a longer one.
  b.PauseUntil(absl::Now() + absl::Milliseconds(50));
  absl::SleepFor(absl::Milliseconds(100));
  d = DecideSync(a);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->paused);

  absl::SleepFor(d->wait);
  d = DecideSync(b);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->granted, 1);
}

TEST_F(RedisTokenSourceTest, ScriptFlushFallsBackToEval) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  RedisTokenSource source(client, {"jobs", 1000, absl::Seconds(1)});
  ASSERT_TRUE(DecideSync(source).ok());
  ASSERT_TRUE(DecideSync(source).ok());  // By now the SHA is known (SCRIPT LOAD answered).
  const uint64_t before = client->Stats().commands;
  ASSERT_EQ(server_->Command({"SCRIPT", "FLUSH"}).value_or(""), "OK");
  absl::SleepFor(absl::Milliseconds(2));
  absl::StatusOr<RedisDecision> d = DecideSync(source);
  ASSERT_TRUE(d.ok()) << d.status();
  RedisClientStats stats = client->Stats();
  EXPECT_EQ(stats.noscript_retries, 1u);
  EXPECT_EQ(stats.commands, before + 2);  // EVALSHA (NOSCRIPT), then EVAL.
  // EVAL cached the script again: the next call is a single EVALSHA.
  ASSERT_TRUE(DecideSync(source).ok());
  EXPECT_EQ(client->Stats().noscript_retries, 1u);
}

TEST_F(RedisTokenSourceTest, SelectsTheDatabaseFromTheUrl) {
  RedisClientOptions options = ClientOptions();
  options.endpoint.db = 3;
  auto client = Connect(options);
  ASSERT_NE(client, nullptr);
  RedisTokenSource source(client, {"identify", 10, absl::Seconds(1)});
  ASSERT_TRUE(DecideSync(source).ok());
  EXPECT_EQ(server_->Command({"DBSIZE"}).value_or(""), "0");  // Database 0 untouched.
  EXPECT_EQ(server_->Command({"EVAL", "redis.call('SELECT', 3) return redis.call('DBSIZE')", "0"})
                .value_or(""),
            "2");  // The log and the pace.
}

TEST_F(RedisTokenSourceTest, CommandDeadlineHoldsWhenRedisHangs) {
  RedisClientOptions options = ClientOptions();
  options.command_timeout = absl::Milliseconds(50);
  options.stall_timeout = absl::Milliseconds(300);
  auto client = Connect(options);
  ASSERT_NE(client, nullptr);
  RedisTokenSource source(client, {"identify", 1000, absl::Seconds(1)});
  ASSERT_TRUE(DecideSync(source).ok());
  EXPECT_TRUE(source.available());

  server_->Freeze();
  const absl::Time start = absl::Now();
  absl::StatusOr<RedisDecision> d = DecideSync(source);
  const absl::Duration took = absl::Now() - start;
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(d.status().message(), HasSubstr("did not answer within 50ms"));
  EXPECT_GE(took, absl::Milliseconds(45));
  EXPECT_LT(took, absl::Milliseconds(500));
  EXPECT_FALSE(source.available());  // A missed deadline: not healthy until a reply comes.

  // Still frozen past stall_timeout: the connection is dropped and reconnects are tried (the
  // kernel accepts them, the handshake times out).
  ASSERT_TRUE(Eventually([&] { return client->Stats().disconnects >= 1; }, absl::Seconds(2)));
  d = DecideSync(source);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kUnavailable);

  server_->Thaw();
  ASSERT_TRUE(client->WaitUntilConnected(absl::Seconds(3)));
  ASSERT_TRUE(Eventually([&] { return source.available(); }));
  d = DecideSync(source);
  ASSERT_TRUE(d.ok()) << d.status();
  RedisClientStats stats = client->Stats();
  EXPECT_GE(stats.timeouts, 1u);
  EXPECT_GE(stats.connects, 2u);
  EXPECT_TRUE(Eventually([&] { return client->Stats().in_flight == 0; }));
}

TEST_F(RedisTokenSourceTest, InFlightBoundRefusesTheExcessAtOnce) {
  RedisClientOptions options = ClientOptions();
  options.max_in_flight = 4;
  options.command_timeout = absl::Milliseconds(300);
  options.stall_timeout = absl::Seconds(5);
  auto client = Connect(options);
  ASSERT_NE(client, nullptr);
  RedisTokenSource source(client, {"identify", 1000, absl::Seconds(1)});
  ASSERT_TRUE(DecideSync(source).ok());

  server_->Freeze();
  struct Outcome {
    absl::Status status;
    absl::Duration took;
  };
  std::vector<std::future<Outcome>> futures;
  const absl::Time start = absl::Now();
  for (int i = 0; i < 10; ++i) {
    auto promise = std::make_shared<std::promise<Outcome>>();
    futures.push_back(promise->get_future());
    source.Decide(TakeKind::kImmediate, 1, [promise, start](absl::StatusOr<RedisDecision> d) {
      promise->set_value({std::move(d).status(), absl::Now() - start});
    });
  }
  int refused_fast = 0, timed_out = 0;
  for (auto& f : futures) {
    ASSERT_EQ(f.wait_for(std::chrono::seconds(3)), std::future_status::ready);
    Outcome o = f.get();
    EXPECT_EQ(o.status.code(), absl::StatusCode::kUnavailable) << o.status;
    if (absl::StrContains(o.status.message(), "in flight")) {
      ++refused_fast;
      EXPECT_LT(o.took, absl::Milliseconds(150)) << "the excess is refused without waiting";
    } else {
      ++timed_out;
      EXPECT_THAT(o.status.message(), HasSubstr("did not answer"));
      EXPECT_GE(o.took, absl::Milliseconds(290));
    }
  }
  EXPECT_EQ(refused_fast, 6);
  EXPECT_EQ(timed_out, 4);
  RedisClientStats stats = client->Stats();
  EXPECT_EQ(stats.rejected_in_flight, 6u);
  EXPECT_EQ(stats.in_flight, 4u);  // Past their deadline, replies still owed.

  server_->Thaw();
  ASSERT_TRUE(Eventually([&] { return client->Stats().in_flight == 0; }));
  EXPECT_EQ(client->Stats().disconnects, 0u);  // Late replies arrived on the same connection.
  ASSERT_TRUE(DecideSync(source).ok());
}

TEST_F(RedisTokenSourceTest, ShutdownCancelsOutstandingCommands) {
  auto client = Connect();
  ASSERT_NE(client, nullptr);
  auto source =
      std::make_unique<RedisTokenSource>(client, RateSpec{"identify", 10, absl::Seconds(1)});
  server_->Freeze();
  auto promise = std::make_shared<std::promise<absl::StatusOr<TakeResult>>>();
  auto future = promise->get_future();
  source->Take(absl::Now(), TakeKind::kImmediate, 1,
               [promise](absl::StatusOr<TakeResult> r) { promise->set_value(std::move(r)); });
  source.reset();  // The source may go first; its Take still completes.
  client->Shutdown();
  absl::StatusOr<TakeResult> r = Await(future, absl::Seconds(1));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().code(),
              AnyOf(absl::StatusCode::kCancelled, absl::StatusCode::kUnavailable));
  // After shutdown, commands complete inline with CANCELLED.
  bool ran = false;
  client->Command({"PING"}, [&](absl::StatusOr<RedisReply> reply) {
    ran = true;
    EXPECT_EQ(reply.status().code(), absl::StatusCode::kCancelled);
  });
  EXPECT_TRUE(ran);
  server_->Thaw();
}

// The factory's sources, Redis killed and restarted under them.
class RedisFallbackTest : public RedisTokenSourceTest {
 protected:
  absl::StatusOr<RedisBudgetSources> Make(RedisFallbackMode mode, int replicas,
                                          absl::Duration timeout = absl::Milliseconds(500)) {
    RedisRateLimitOptions options;
    options.url = server_->url();
    options.fallback = mode;
    options.replicas = replicas;
    options.client.command_timeout = timeout;
    options.client.stall_timeout = absl::Seconds(2);
    options.client.reconnect_initial_backoff = absl::Milliseconds(20);
    options.client.reconnect_max_backoff = absl::Milliseconds(100);
    absl::StatusOr<RedisBudgetSources> sources =
        MakeRedisBudgetSources(options, [] { return absl::Now(); });
    if (sources.ok()) {
      EXPECT_TRUE(sources->client->WaitUntilConnected(absl::Seconds(5)));
    }
    return sources;
  }
};

TEST_F(RedisFallbackTest, LocalShareWhileRedisIsDownThenBackToShared) {
  absl::StatusOr<RedisBudgetSources> sources = Make(RedisFallbackMode::kLocal, 2);
  ASSERT_TRUE(sources.ok()) << sources.status();
  std::unique_ptr<TokenSource> source = sources->factory({"identify", 20, absl::Seconds(1)});
  EXPECT_FALSE(source->TryTakeNow(absl::Now(), TakeKind::kImmediate).has_value());  // Redis.
  absl::StatusOr<TakeResult> r = TakeSync(*source, absl::Now());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->granted, 1);
  EXPECT_EQ(sources->Stats().decisions.redis_decisions, 1u);
  ASSERT_EQ(server_->Command({"EXISTS", "upgw:{identify}:log"}).value_or(""), "1");

  server_->Stop();
  ASSERT_TRUE(Eventually([&] { return !sources->Stats().redis_up; }));
  // One second of greedy use: the local share, 20 / 2 per window, decided on the caller's
  // thread (exact: the local window decides on the `now` given to it).
  std::vector<absl::Time> granted;
  const absl::Time stop = absl::Now() + absl::Seconds(1);
  while (absl::Now() < stop) {
    const absl::Time now = absl::Now();
    std::optional<TakeResult> local = source->TryTakeNow(now, TakeKind::kImmediate);
    ASSERT_TRUE(local.has_value());
    if (local->granted > 0) {
      granted.push_back(now);
    } else {
      absl::SleepFor(std::min(local->retry_at - now, stop - now));
    }
  }
  EXPECT_GE(granted.size(), 10u);
  EXPECT_LE(::userpilot::gateway::testing::MaxInAnyWindow(granted, absl::Seconds(1)), 10);
  RedisRateLimitStats down = sources->Stats();
  EXPECT_FALSE(down.redis_up);
  EXPECT_GE(down.decisions.local_decisions, granted.size());
  EXPECT_GE(down.client.connect_failures, 1u);
  EXPECT_THAT(down.client.last_error,
              AnyOf(HasSubstr("refused"), HasSubstr("closed"), HasSubstr("reset")));

  ASSERT_TRUE(server_->Restart().ok());
  ASSERT_TRUE(sources->client->WaitUntilConnected(absl::Seconds(3)));
  ASSERT_TRUE(Eventually([&] { return sources->Stats().redis_up; }));
  const uint64_t before = sources->Stats().decisions.redis_decisions;
  r = TakeSync(*source, absl::Now());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(sources->Stats().decisions.redis_decisions, before + 1);
  EXPECT_EQ(server_->Command({"EXISTS", "upgw:{identify}:log"}).value_or(""), "1");
}

TEST_F(RedisFallbackTest, HealthyRedisThatMissesADeadlineFallsBackForThatCall) {
  absl::StatusOr<RedisBudgetSources> sources =
      Make(RedisFallbackMode::kLocal, 4, absl::Milliseconds(50));
  ASSERT_TRUE(sources.ok()) << sources.status();
  std::unique_ptr<TokenSource> source = sources->factory({"track", 100, absl::Seconds(1)});
  server_->Freeze();
  absl::StatusOr<TakeResult> r = TakeSync(*source, absl::Now());
  ASSERT_TRUE(r.ok()) << r.status();  // Decided locally after the 50 ms deadline.
  EXPECT_EQ(r->granted, 1);
  RedisRateLimitStats stats = sources->Stats();
  EXPECT_EQ(stats.decisions.redis_errors, 1u);
  EXPECT_EQ(stats.decisions.local_decisions, 1u);
  // Now known unhealthy: the next call does not wait for Redis at all.
  const absl::Time start = absl::Now();
  r = TakeSync(*source, absl::Now());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(40));
  EXPECT_EQ(sources->Stats().decisions.local_decisions, 2u);
  server_->Thaw();
}

TEST_F(RedisFallbackTest, RefuseModeFailsWhileRedisIsDown) {
  absl::StatusOr<RedisBudgetSources> sources = Make(RedisFallbackMode::kRefuse, 2);
  ASSERT_TRUE(sources.ok()) << sources.status();
  std::unique_ptr<TokenSource> source = sources->factory({"delete", 1, absl::Seconds(2)});
  absl::StatusOr<TakeResult> r = TakeSync(*source, absl::Now());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->granted, 1);

  server_->Stop();
  ASSERT_TRUE(Eventually([&] { return !sources->Stats().redis_up; }));
  r = TakeSync(*source, absl::Now());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_GE(sources->Stats().decisions.refused, 1u);
  EXPECT_EQ(sources->Stats().decisions.local_decisions, 0u);

  ASSERT_TRUE(server_->Restart().ok());
  ASSERT_TRUE(sources->client->WaitUntilConnected(absl::Seconds(3)));
  r = TakeSync(*source, absl::Now());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->granted, 1);  // The restarted Redis holds no state: a fresh budget.
}

TEST_F(RedisFallbackTest, PauseSurvivesARedisOutage) {
  absl::StatusOr<RedisBudgetSources> sources = Make(RedisFallbackMode::kLocal, 2);
  ASSERT_TRUE(sources.ok()) << sources.status();
  std::unique_ptr<TokenSource> source = sources->factory({"identify", 100, absl::Seconds(1)});
  server_->Stop();
  ASSERT_TRUE(Eventually([&] { return !sources->Stats().redis_up; }));
  // A 429 while Redis is down: pauses locally at once.
  const absl::Time until = absl::Now() + absl::Seconds(2);
  source->PauseUntil(until);
  absl::StatusOr<TakeResult> r = TakeSync(*source, absl::Now());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->granted, 0);
  EXPECT_EQ(r->retry_at, until);

  // Redis is back while the pause lasts: the next Take() stores it there for the others.
  ASSERT_TRUE(server_->Restart().ok());
  ASSERT_TRUE(sources->client->WaitUntilConnected(absl::Seconds(3)));
  ASSERT_TRUE(Eventually([&] { return sources->Stats().redis_up; }));
  r = TakeSync(*source, absl::Now());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->granted, 0);
  ASSERT_TRUE(Eventually([&] {
    return server_->Command({"EXISTS", "upgw:{identify}:pause"}).value_or("") == "1";
  }));
  const int64_t pttl = ToInt(server_->Command({"PTTL", "upgw:{identify}:pause"}));
  EXPECT_GT(pttl, 1000);
}

}  // namespace
}  // namespace userpilot::gateway
