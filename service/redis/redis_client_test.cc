// RedisClient without a Redis server: the event thread's set-up and option checks. Against a
// real redis-server, the client is exercised through RedisTokenSource
// (service/ratelimit/redis_token_source_test.cc).
#include "service/redis/redis_client.h"

#include <pthread.h>
#include <signal.h>

#include <future>
#include <memory>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;

// Port 1 on loopback: nothing listens there, connects are refused at once.
constexpr char kClosedUrl[] = "redis://127.0.0.1:1";

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
