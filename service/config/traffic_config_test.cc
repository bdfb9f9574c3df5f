#include "service/config/traffic_config.h"

#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;

std::vector<std::pair<std::string, std::string>> Problems(const TrafficInput& in,
                                                          TrafficConfig* out = nullptr) {
  std::vector<std::pair<std::string, std::string>> problems;
  TrafficConfig config = LoadTrafficConfig(in, [&](absl::string_view flag, std::string message) {
    problems.emplace_back(std::string(flag), std::move(message));
  });
  if (out != nullptr) *out = std::move(config);
  return problems;
}

TEST(ParseRateTest, Table) {
  struct Case {
    const char* text;
    bool ok;
    int64_t limit;
    absl::Duration window;
  } cases[] = {
      {"600/1m", true, 600, absl::Minutes(1)},
      {"1/2s", true, 1, absl::Seconds(2)},
      {"10/1500ms", true, 10, absl::Milliseconds(1500)},
      {"0/1m", false, 0, {}},
      {"-1/1m", false, 0, {}},
      {"600", false, 0, {}},
      {"600/", false, 0, {}},
      {"600/0s", false, 0, {}},
      {"x/1m", false, 0, {}},
      {"600/inf", false, 0, {}},
  };
  for (const Case& c : cases) {
    auto spec = ParseRate("identify", c.text);
    EXPECT_EQ(spec.ok(), c.ok) << c.text;
    if (!spec.ok() || !c.ok) continue;
    EXPECT_EQ(spec->name, "identify");
    EXPECT_EQ(spec->limit, c.limit) << c.text;
    EXPECT_EQ(spec->window, c.window) << c.text;
    EXPECT_EQ(FormatRate(*spec), c.text == std::string("10/1500ms") ? "10/1.5s" : c.text);
  }
}

TEST(TrafficConfigTest, DefaultsAreUserpilotsDocumentedLimits) {
  TrafficConfig config;
  EXPECT_TRUE(Problems(TrafficInput(), &config).empty());
  EXPECT_EQ(FormatRate(config.rate_limits.identify.rate), "600/1m");
  EXPECT_EQ(FormatRate(config.rate_limits.track.rate), "600/1m");
  EXPECT_EQ(FormatRate(config.rate_limits.deletes.rate), "1/2s");
  EXPECT_FALSE(config.redis.has_value());
  EXPECT_EQ(config.retry.max_attempts, 4);
}

TEST(TrafficConfigTest, ParsesQueuesCallersRedisAndRetries) {
  TrafficInput in;
  in.identify_rate = "60/10s";
  in.budget_queues = "identify=2000, job_read=8";
  in.caller_weights = "billing=2,batch-import=0.25";
  in.caller_max_queued = "batch-import=50";
  in.default_caller_max_queued = 500;
  in.ratelimit_redis = "redis://127.0.0.1:6379/2";
  in.ratelimit_redis_fallback = "refuse";
  in.ratelimit_replicas = 3;
  in.retry_max_attempts = 2;
  TrafficConfig config;
  ASSERT_TRUE(Problems(in, &config).empty());
  const RateLimitOptions& rl = config.rate_limits;
  EXPECT_EQ(rl.identify.rate.limit, 60);
  EXPECT_EQ(rl.identify.max_queue, 2000u);
  EXPECT_EQ(rl.job_reads.max_queue, 8u);
  EXPECT_EQ(rl.limiter.callers.at("billing").weight, 2);
  EXPECT_EQ(rl.limiter.callers.at("batch-import").weight, 0.25);
  EXPECT_EQ(rl.limiter.callers.at("batch-import").max_queued, 50u);
  EXPECT_EQ(rl.limiter.default_caller.max_queued, 500u);
  ASSERT_TRUE(config.redis.has_value());
  EXPECT_EQ(config.redis->url, "redis://127.0.0.1:6379/2");
  EXPECT_EQ(config.redis->fallback, RedisFallbackMode::kRefuse);
  EXPECT_EQ(config.redis->replicas, 3);
  EXPECT_EQ(config.retry.max_attempts, 2);
  const std::string debug = TrafficDebugString(config);
  EXPECT_THAT(debug, HasSubstr("identify_rate=60/10s"));
  EXPECT_THAT(debug, HasSubstr("caller_weights=batch-import=0.25,billing=2"));
  EXPECT_THAT(debug, HasSubstr("ratelimit_redis=redis://127.0.0.1:6379/2"));
}

TEST(TrafficConfigTest, EveryBadValueIsReportedWithItsFlag) {
  TrafficInput in;
  in.track_rate = "fast";
  in.budget_queues = "identify=0,nosuch=3,broken";
  in.caller_weights = "billing=-1";
  in.caller_max_queued = "x=y";
  in.default_caller_max_queued = -1;
  in.ratelimit_redis = "http://redis:6379";
  in.ratelimit_redis_fallback = "maybe";
  in.ratelimit_replicas = 0;
  const auto problems = Problems(in);
  std::vector<std::string> flags;
  for (const auto& [flag, message] : problems) flags.push_back(flag);
  EXPECT_THAT(flags, ::testing::IsSupersetOf({"track_rate", "budget_queues", "caller_weights",
                                              "caller_max_queued", "default_caller_max_queued",
                                              "ratelimit_redis", "ratelimit_redis_fallback",
                                              "ratelimit_replicas"}));
}

TEST(TrafficConfigTest, RetryOptionsAreCheckedByTheRetryComponent) {
  TrafficInput in;
  in.retry_max_attempts = 0;
  const auto problems = Problems(in);
  ASSERT_FALSE(problems.empty());
  EXPECT_EQ(problems.front().first, "");  // A cross-setting check: its message names it.
  EXPECT_THAT(problems.front().second, HasSubstr("retry max attempts"));
}

TEST(TrafficConfigTest, AdmissionHeadroomReachesEveryBudgetAndIsBounded) {
  TrafficInput in;
  TrafficConfig config;
  ASSERT_THAT(Problems(in, &config), ::testing::IsEmpty());
  EXPECT_EQ(config.rate_limits.limiter.admission_headroom, kDefaultAdmissionHeadroom);
  in.admission_headroom = absl::Milliseconds(250);
  ASSERT_THAT(Problems(in, &config), ::testing::IsEmpty());
  EXPECT_EQ(config.rate_limits.limiter.admission_headroom, absl::Milliseconds(250));
  EXPECT_EQ(config.rate_limits.job_lanes.headroom, absl::Milliseconds(250));  // The lanes too.
  EXPECT_THAT(TrafficDebugString(config), HasSubstr("admission_headroom=250ms"));
  for (absl::Duration bad : {-absl::Milliseconds(1), absl::Seconds(11)}) {
    in.admission_headroom = bad;
    const auto problems = Problems(in);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems.front().first, "admission_headroom");
  }
}

TEST(TrafficConfigTest, MaxUpstreamPauseReachesEveryBudgetAndIsBounded) {
  TrafficInput in;
  TrafficConfig config;
  ASSERT_THAT(Problems(in, &config), ::testing::IsEmpty());
  EXPECT_EQ(config.rate_limits.limiter.max_upstream_pause, absl::Minutes(5));
  in.max_upstream_pause = absl::Seconds(90);
  ASSERT_THAT(Problems(in, &config), ::testing::IsEmpty());
  EXPECT_EQ(config.rate_limits.limiter.max_upstream_pause, absl::Seconds(90));
  EXPECT_THAT(TrafficDebugString(config), HasSubstr("max_upstream_pause=1m30s"));
  for (absl::Duration bad : {absl::Milliseconds(999), absl::Hours(2)}) {
    in.max_upstream_pause = bad;
    const auto problems = Problems(in);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems.front().first, "max_upstream_pause");
  }
}

TEST(TrafficConfigTest, JobLaneFlagsReachTheLanes) {
  TrafficInput in;
  TrafficConfig config;
  ASSERT_THAT(Problems(in, &config), ::testing::IsEmpty());
  EXPECT_EQ(config.rate_limits.job_lanes.poll_interval, absl::Seconds(2));
  EXPECT_EQ(config.rate_limits.job_lanes.max_waiting, 4u);
  EXPECT_EQ(config.rate_limits.job_lanes.headroom, kDefaultAdmissionHeadroom);
  in.job_lane_poll_interval = absl::Seconds(5);
  in.job_lane_max_waiting = 10;
  ASSERT_THAT(Problems(in, &config), ::testing::IsEmpty());
  EXPECT_EQ(config.rate_limits.job_lanes.poll_interval, absl::Seconds(5));
  EXPECT_EQ(config.rate_limits.job_lanes.max_waiting, 10u);
  EXPECT_THAT(TrafficDebugString(config),
              HasSubstr("job_lane_poll_interval=5s job_lane_max_waiting=10"));
}

TEST(TrafficConfigTest, JobLaneFlagsOutOfRangeNameTheFlag) {
  struct Case {
    absl::Duration poll;
    int64_t max_waiting;
    const char* flag;
  } cases[] = {
      {absl::Milliseconds(99), 4, "job_lane_poll_interval"},
      {absl::Minutes(5) + absl::Seconds(1), 4, "job_lane_poll_interval"},
      {-absl::Seconds(1), 4, "job_lane_poll_interval"},
      {absl::Seconds(2), 0, "job_lane_max_waiting"},
      {absl::Seconds(2), -3, "job_lane_max_waiting"},
      {absl::Seconds(2), 101, "job_lane_max_waiting"},
  };
  for (const Case& c : cases) {
    TrafficInput in;
    in.job_lane_poll_interval = c.poll;
    in.job_lane_max_waiting = c.max_waiting;
    const auto problems = Problems(in);
    ASSERT_EQ(problems.size(), 1u) << c.flag << " " << c.poll << " " << c.max_waiting;
    EXPECT_EQ(problems.front().first, c.flag);
    EXPECT_THAT(problems.front().second, HasSubstr("must be from"));
  }
}

TEST(TrafficConfigTest, JobLanePollsTakeAtMostHalfTheJobReadBudget) {
  TrafficInput in;
  // Two lanes every 2 s: 60 of the default 120 job reads a minute, exactly half.
  ASSERT_THAT(Problems(in), ::testing::IsEmpty());
  in.job_lane_poll_interval = absl::Seconds(1);
  auto problems = Problems(in);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems.front().first, "job_lane_poll_interval");
  EXPECT_THAT(problems.front().second, HasSubstr("--job_read_rate (120/1m)"));
  // A larger job_read budget allows faster polls; a smaller one needs slower polls.
  in.job_read_rate = "240/1m";
  EXPECT_THAT(Problems(in), ::testing::IsEmpty());
  in = TrafficInput();
  in.job_read_rate = "60/1m";
  problems = Problems(in);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems.front().first, "job_lane_poll_interval");
  in.job_lane_poll_interval = absl::Seconds(4);
  EXPECT_THAT(Problems(in), ::testing::IsEmpty());
}

}  // namespace
}  // namespace userpilot::gateway
