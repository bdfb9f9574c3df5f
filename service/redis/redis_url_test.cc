#include "service/redis/redis_url.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct GoodCase {
  std::string url;
  std::string host;
  int port;
  int db;
};

TEST(ParseRedisUrlTest, AcceptsDocumentedForms) {
  const GoodCase cases[] = {
      {"redis://127.0.0.1:6380", "127.0.0.1", 6380, 0},
      {"redis://redis", "redis", 6379, 0},
      {"redis://redis.internal:7000/3", "redis.internal", 7000, 3},
      {"redis://redis-0.redis_svc:1/", "redis-0.redis_svc", 1, 0},
      {"REDIS://Host:65535/65535", "Host", 65535, 65535},
      {"redis://[::1]:6390/2", "::1", 6390, 2},
      {"redis://[::1]", "::1", 6379, 0},
  };
  for (const GoodCase& c : cases) {
    absl::StatusOr<RedisEndpoint> ep = ParseRedisUrl(c.url);
    ASSERT_TRUE(ep.ok()) << c.url << ": " << ep.status();
    EXPECT_EQ(ep->host, c.host) << c.url;
    EXPECT_EQ(ep->port, c.port) << c.url;
    EXPECT_EQ(ep->db, c.db) << c.url;
  }
}

struct BadCase {
  std::string url;
  std::string message;  // A substring of the error.
};

TEST(ParseRedisUrlTest, RejectsEverythingElseWithAClearMessage) {
  const BadCase cases[] = {
      {"", "missing 'redis://'"},
      {"127.0.0.1:6379", "missing 'redis://'"},
      {"rediss://host:6379", "scheme 'rediss' is not supported"},
      {"unix:///run/redis.sock", "scheme 'unix' is not supported"},
      {"redis://", "empty host"},
      {"redis://:6379", "empty host"},
      {"redis://host:", "empty port"},
      {"redis://host:0", "port must be a number from 1 to 65535"},
      {"redis://host:65536", "port must be a number from 1 to 65535"},
      {"redis://host:+1", "port must be"},
      {"redis://host:63x9", "port must be"},
      {"redis://host:6379/x", "database must be a number"},
      {"redis://host:6379/-1", "database must be a number"},
      {"redis://host:6379/65536", "database must be a number"},
      {"redis://host:6379/1/2", "database must be a number"},
      {"redis://host:6379?db=1", "query strings"},
      {"redis://host:6379#x", "query strings"},
      {"redis://ho st:6379", "bad character in the host"},
      {"redis://[::1:6379", "unterminated '['"},
      {"redis://[::1]6379", "unexpected text after ']'"},
      {"redis://[zz::1]:6379", "bad IPv6 literal"},
      {"redis://:secret@host:6379", "credentials"},
      {"redis://user:secret@host:6379/0", "credentials"},
  };
  for (const BadCase& c : cases) {
    absl::StatusOr<RedisEndpoint> ep = ParseRedisUrl(c.url);
    ASSERT_FALSE(ep.ok()) << c.url;
    EXPECT_EQ(ep.status().code(), absl::StatusCode::kInvalidArgument) << c.url;
    EXPECT_THAT(ep.status().message(), HasSubstr(c.message)) << c.url;
  }
}

TEST(ParseRedisUrlTest, NeverEchoesAPassword) {
  for (const char* url :
       {"redis://:hunter2@host:6379", "redis://u:hunter2@host/0", "foo://u:hunter2@host"}) {
    absl::StatusOr<RedisEndpoint> ep = ParseRedisUrl(url);
    ASSERT_FALSE(ep.ok());
    EXPECT_THAT(std::string(ep.status().message()), Not(HasSubstr("hunter2"))) << url;
  }
}

TEST(ParseRedisUrlTest, ToUrlRoundTrips) {
  for (const char* url : {"redis://10.0.0.1:6379/0", "redis://[::1]:6390/2", "redis://r:1/9"}) {
    absl::StatusOr<RedisEndpoint> ep = ParseRedisUrl(url);
    ASSERT_TRUE(ep.ok()) << ep.status();
    EXPECT_EQ(ep->ToUrl(), url);
  }
}

}  // namespace
}  // namespace userpilot::gateway
