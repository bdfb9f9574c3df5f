#include "service/config/config.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/config/endpoints.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kKey[] = "up-test-KEY-7f3a9c";

// An environment holding only the given variables.
EnvLookup FakeEnv(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](absl::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

EnvLookup EnvWithKey() { return FakeEnv({{"USERPILOT_API_KEY", kKey}}); }

// Writes `contents` to a fresh file under the test's temp dir and returns its path.
std::string WriteTempFile(absl::string_view name, absl::string_view contents) {
  std::string path = absl::StrCat(::testing::TempDir(), "/config_test_", getpid(), "_", name);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << contents;
  return path;
}

// ---- Table-driven validation rules ----

struct Case {
  std::string name;
  std::function<void(ConfigInput&)> edit;
  // Empty: the configuration must load. Otherwise a substring of the error message.
  std::string error;
};

std::vector<Case> Cases() {
  return {
      {"defaults", [](ConfigInput&) {}, ""},
      {"listen_ipv6", [](ConfigInput& c) { c.listen = "[::]:50051"; }, ""},
      {"listen_name_port0", [](ConfigInput& c) { c.listen = "localhost:0"; }, ""},
      {"listen_max_port", [](ConfigInput& c) { c.listen = "127.0.0.1:65535"; }, ""},
      {"listen_no_port", [](ConfigInput& c) { c.listen = "0.0.0.0"; },
       "--listen: '0.0.0.0' has no port"},
      {"listen_port_too_big", [](ConfigInput& c) { c.listen = "0.0.0.0:65536"; },
       "--listen: port '65536' is not a number from 0 to 65535"},
      {"listen_port_not_number", [](ConfigInput& c) { c.listen = "host:http"; },
       "--listen: port 'http'"},
      {"listen_port_signed", [](ConfigInput& c) { c.listen = "host:+80"; }, "--listen: port '+80'"},
      {"listen_empty_port", [](ConfigInput& c) { c.listen = "host:"; }, "--listen: port ''"},
      {"listen_no_host", [](ConfigInput& c) { c.listen = ":50051"; },
       "--listen: ':50051' has no host"},
      {"listen_ipv6_no_brackets", [](ConfigInput& c) { c.listen = "::1:50051"; },
       "--listen: '::1:50051': write an IPv6 address in brackets"},
      {"listen_unclosed_bracket", [](ConfigInput& c) { c.listen = "[::1:50051"; }, "--listen:"},
      {"listen_bad_ipv6", [](ConfigInput& c) { c.listen = "[zz]:1"; },
       "--listen: 'zz' in brackets"},
      {"listen_bad_ipv4", [](ConfigInput& c) { c.listen = "999.1.1.1:1"; },
       "--listen: '999.1.1.1'"},
      {"listen_bad_host", [](ConfigInput& c) { c.listen = "a b:1"; }, "--listen: 'a b'"},
      {"metrics_listen_empty", [](ConfigInput& c) { c.metrics_listen = ""; }, "--metrics_listen:"},
      {"metrics_listen_same", [](ConfigInput& c) { c.metrics_listen = c.listen; },
       "--metrics_listen: is the same address as --listen"},
      {"both_port0_allowed", [](ConfigInput& c) { c.listen = c.metrics_listen = "127.0.0.1:0"; },
       ""},
      {"url_trailing_slash",
       [](ConfigInput& c) { c.upstream_url = "https://analytex.userpilot.io/"; }, ""},
      {"url_custom_port", [](ConfigInput& c) { c.upstream_url = "https://up.example.com:8443"; },
       ""},
      {"url_http_loopback_v4", [](ConfigInput& c) { c.upstream_url = "http://127.0.0.1:8089"; },
       ""},
      {"url_http_loopback_127_8", [](ConfigInput& c) { c.upstream_url = "http://127.9.8.7"; }, ""},
      {"url_http_localhost", [](ConfigInput& c) { c.upstream_url = "http://LocalHost:8089/"; }, ""},
      {"url_http_loopback_v6", [](ConfigInput& c) { c.upstream_url = "http://[::1]:8089"; }, ""},
      {"url_http_remote", [](ConfigInput& c) { c.upstream_url = "http://analytex.userpilot.io"; },
       "--upstream_url: 'http://analytex.userpilot.io': http:// is allowed only for loopback"},
      {"url_http_private_ip", [](ConfigInput& c) { c.upstream_url = "http://10.0.0.1:8089"; },
       "http:// is allowed only for loopback"},
      {"url_http_v6_any", [](ConfigInput& c) { c.upstream_url = "http://[::]:8089"; },
       "http:// is allowed only for loopback"},
      {"url_no_scheme", [](ConfigInput& c) { c.upstream_url = "analytex.userpilot.io"; },
       "--upstream_url: 'analytex.userpilot.io' must start with https://"},
      {"url_ftp", [](ConfigInput& c) { c.upstream_url = "ftp://h"; }, "must start with https://"},
      {"url_path", [](ConfigInput& c) { c.upstream_url = "https://analytex.userpilot.io/v1"; },
       "--upstream_url: 'https://analytex.userpilot.io/v1' must be a base URL with no path"},
      {"url_two_slashes", [](ConfigInput& c) { c.upstream_url = "https://h//"; }, "no path"},
      {"url_query", [](ConfigInput& c) { c.upstream_url = "https://h?x=1"; }, "no path, query"},
      {"url_fragment", [](ConfigInput& c) { c.upstream_url = "https://h#f"; }, "no path, query"},
      {"url_no_host", [](ConfigInput& c) { c.upstream_url = "https://"; },
       "--upstream_url: '' has no host"},
      {"url_port0", [](ConfigInput& c) { c.upstream_url = "https://h:0"; }, "has port 0"},
      {"url_bad_port", [](ConfigInput& c) { c.upstream_url = "https://h:99999"; }, "port '99999'"},
      {"region_us", [](ConfigInput& c) { c.region = "us"; }, ""},
      {"region_eu", [](ConfigInput& c) { c.region = "eu"; }, ""},
      {"region_eu_agrees",
       [](ConfigInput& c) {
         c.region = "eu";
         c.upstream_url = "https://analytex-eu.userpilot.io/";
       },
       ""},
      {"region_unknown", [](ConfigInput& c) { c.region = "ap"; },
       "--region: 'ap' is not a region: use us or eu"},
      {"region_conflict",
       [](ConfigInput& c) {
         c.region = "eu";
         c.upstream_url = "https://custom.example.com";
       },
       "--region: --region=eu means https://analytex-eu.userpilot.io but --upstream_url is "
       "https://custom.example.com: give only one of them"},
      {"region_us_vs_eu_url",
       [](ConfigInput& c) {
         c.region = "us";
         c.upstream_url = "https://analytex-eu.userpilot.io";
       },
       "give only one of them"},
      {"upstream_timeout_zero", [](ConfigInput& c) { c.upstream_timeout = absl::ZeroDuration(); },
       "--upstream_timeout: must be a positive, finite duration such as 10s or 500ms, not 0"},
      {"upstream_timeout_negative", [](ConfigInput& c) { c.upstream_timeout = absl::Seconds(-1); },
       "--upstream_timeout: must be a positive"},
      {"default_deadline_inf",
       [](ConfigInput& c) { c.default_deadline = absl::InfiniteDuration(); },
       "--default_deadline: must be a positive, finite duration"},
      {"max_deadline_zero", [](ConfigInput& c) { c.max_deadline = absl::ZeroDuration(); },
       "--max_deadline: must be a positive"},
      {"connect_timeout_zero", [](ConfigInput& c) { c.connect_timeout = absl::ZeroDuration(); },
       "--connect_timeout: must be a positive"},
      {"shutdown_grace_zero", [](ConfigInput& c) { c.shutdown_grace = absl::ZeroDuration(); },
       "--shutdown_grace: must be a positive"},
      {"key_check_negative", [](ConfigInput& c) { c.key_check_interval = absl::Seconds(-1); },
       "--key_check_interval: must be a finite duration such as 5m, or 0 to turn the check off, "
       "not -1s"},
      {"key_check_infinite",
       [](ConfigInput& c) { c.key_check_interval = absl::InfiniteDuration(); },
       "--key_check_interval: must be a finite duration"},
      {"connect_over_upstream", [](ConfigInput& c) { c.connect_timeout = absl::Seconds(20); },
       "--connect_timeout: (20s) must not exceed --upstream_timeout (10s)"},
      {"default_over_max", [](ConfigInput& c) { c.default_deadline = absl::Minutes(10); },
       "--default_deadline: (10m) must not exceed --max_deadline (5m)"},
      {"keepalive_timeout_not_shorter",
       [](ConfigInput& c) { c.keepalive_timeout = absl::Minutes(1); },
       "--keepalive_timeout: (1m) must be shorter than --keepalive_time (1m)"},
      {"max_connection_age_zero",
       [](ConfigInput& c) { c.max_connection_age = absl::ZeroDuration(); },
       "--max_connection_age: must be a positive"},
      {"inflight_negative", [](ConfigInput& c) { c.max_inflight_upstream = -1; },
       "--max_inflight_upstream: must be 0 (sized from the budgets) or from 1 to 100000, not -1"},
      {"inflight_over_max", [](ConfigInput& c) { c.max_inflight_upstream = 100001; },
       "--max_inflight_upstream: must be 0 (sized from the budgets) or from 1 to 100000, not "
       "100001"},
      // The validation limits' own ranges (ValidationLimits::Problems), reported per flag.
      {"max_id_bytes_zero", [](ConfigInput& c) { c.limits.max_id_bytes = 0; },
       "--max_id_bytes: must be between 1 and 4096"},
      {"max_event_name_bytes_neg", [](ConfigInput& c) { c.limits.max_event_name_bytes = -5; },
       "--max_event_name_bytes: must be between 1 and 4096"},
      {"max_metadata_keys_zero", [](ConfigInput& c) { c.limits.max_metadata_keys = 0; },
       "--max_metadata_keys: must be between 1"},
      {"max_metadata_key_bytes_zero", [](ConfigInput& c) { c.limits.max_metadata_key_bytes = 0; },
       "--max_metadata_key_bytes: must be between 1"},
      {"max_string_value_bytes_huge",
       [](ConfigInput& c) { c.limits.max_string_value_bytes = (1 << 20) + 1; },
       "--max_string_value_bytes: must be between 1 and 1048576"},
      {"max_bulk_rows_one", [](ConfigInput& c) { c.limits.max_bulk_rows = 1; }, ""},
      {"max_bulk_rows_zero", [](ConfigInput& c) { c.limits.max_bulk_rows = 0; },
       "--max_bulk_rows: must be between 1 and 10000"},
      {"max_bulk_rows_over_upstream", [](ConfigInput& c) { c.limits.max_bulk_rows = 10001; },
       "--max_bulk_rows: must be between 1 and 10000 (Userpilot's limit"},
      {"max_bulk_request_bytes_over_upstream",
       [](ConfigInput& c) { c.limits.max_bulk_request_bytes = 50'000'001; },
       "--max_bulk_request_bytes: must be between 1 and 50000000"},
      {"max_delete_ids_zero", [](ConfigInput& c) { c.limits.max_delete_ids = 0; },
       "--max_delete_ids: must be between 1"},
      {"max_job_id_bytes_zero", [](ConfigInput& c) { c.limits.max_job_id_bytes = 0; },
       "--max_job_id_bytes: must be between 1"},
      {"max_violations_zero", [](ConfigInput& c) { c.limits.max_violations = 0; },
       "--max_violations: must be between 1"},
      {"log_level_upper", [](ConfigInput& c) { c.log_level = "WARNING"; }, ""},
      {"key_check_off", [](ConfigInput& c) { c.key_check_interval = absl::ZeroDuration(); }, ""},
      {"log_level_bad", [](ConfigInput& c) { c.log_level = "verbose"; },
       "--log_level: 'verbose' is not one of debug, info, warning, error"},
      {"ca_file_missing", [](ConfigInput& c) { c.upstream_ca_file = "/nonexistent/ca.pem"; },
       "--upstream_ca_file: cannot open '/nonexistent/ca.pem': No such file or directory"},
      // Durable delivery (delivery_config.h).
      {"queue_dir_set", [](ConfigInput& c) { c.delivery.queue_dir = "/var/lib/q"; }, ""},
      {"queue_redis_set", [](ConfigInput& c) { c.delivery.queue_redis = "redis://127.0.0.1:6379"; },
       ""},
      {"queue_both",
       [](ConfigInput& c) {
         c.delivery.queue_dir = "/var/lib/q";
         c.delivery.queue_redis = "redis://127.0.0.1:6379";
       },
       "--queue_redis: set either --queue_dir (the embedded queue) or --queue_redis"},
      {"queue_redis_bad", [](ConfigInput& c) { c.delivery.queue_redis = "http://x"; },
       "--queue_redis: "},
      {"queue_redis_lease_timeout_short",
       [](ConfigInput& c) { c.delivery.queue_redis_lease_timeout = absl::Milliseconds(500); },
       "--queue_redis_lease_timeout: must be at least 1s, not 500ms"},
      {"queue_max_bytes_small", [](ConfigInput& c) { c.delivery.queue_max_bytes = 1000; },
       "--queue_max_bytes: must be at least 1048576 (1 MiB), not 1000"},
      {"queue_sync_share_one", [](ConfigInput& c) { c.delivery.queue_sync_share = 1; },
       "--queue_sync_share: must be between 0 and 0.95, not 1"},
      {"queue_max_in_flight_zero", [](ConfigInput& c) { c.delivery.queue_max_in_flight = 0; },
       "--queue_max_in_flight: must be between 1 and 10000, not 0"},
      {"queue_coalesce_threshold_off",
       [](ConfigInput& c) { c.delivery.queue_coalesce_threshold = 0; }, ""},
      {"queue_coalesce_threshold_negative",
       [](ConfigInput& c) { c.delivery.queue_coalesce_threshold = -1; },
       "--queue_coalesce_threshold: must be at least 0 (0 turns coalescing off), not -1"},
      {"queue_coalesce_max_rows_one",
       [](ConfigInput& c) { c.delivery.queue_coalesce_max_rows = 1; },
       "--queue_coalesce_max_rows: must be between 2 and 10000 (Userpilot's bulk identify limit), "
       "not 1"},
      {"queue_coalesce_max_rows_over",
       [](ConfigInput& c) { c.delivery.queue_coalesce_max_rows = 10001; },
       "--queue_coalesce_max_rows: must be between 2 and 10000 (Userpilot's bulk identify limit), "
       "not 10001"},
      {"queue_coalesce_job_timeout_zero",
       [](ConfigInput& c) { c.delivery.queue_coalesce_job_timeout = absl::ZeroDuration(); },
       "--queue_coalesce_job_timeout: must be between 1s and 24h, not 0"},
  };
}

class ValidationTest : public ::testing::TestWithParam<Case> {};

TEST_P(ValidationTest, Rule) {
  ConfigInput in;
  GetParam().edit(in);
  absl::StatusOr<GatewayConfig> config = LoadConfig(in, EnvWithKey());
  if (GetParam().error.empty()) {
    EXPECT_TRUE(config.ok()) << config.status();
  } else {
    ASSERT_FALSE(config.ok());
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(config.status().message()), HasSubstr(GetParam().error));
    EXPECT_THAT(std::string(config.status().message()), HasSubstr("(1 problem)"));
  }
}

INSTANTIATE_TEST_SUITE_P(Rules, ValidationTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return info.param.name; });

// ---- Normalized values ----

TEST(LoadConfigTest, DefaultsCarryThrough) {
  absl::StatusOr<GatewayConfig> c = LoadConfig(ConfigInput(), EnvWithKey());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen, "0.0.0.0:50051");
  EXPECT_EQ(c->metrics_listen, "0.0.0.0:9464");
  EXPECT_EQ(c->upstream_url, "https://analytex.userpilot.io");
  EXPECT_EQ(c->upstream_ca_file, "");
  EXPECT_EQ(c->upstream_timeout, absl::Seconds(10));
  EXPECT_EQ(c->default_deadline, absl::Seconds(30));
  EXPECT_EQ(c->max_deadline, absl::Minutes(5));
  EXPECT_EQ(c->connect_timeout, absl::Seconds(2));
  EXPECT_EQ(c->shutdown_grace, absl::Seconds(25));
  // Sized from the default budgets (22.5 requests/s), --upstream_timeout (10 s) and two lanes.
  EXPECT_EQ(c->max_inflight_upstream, 227);
  EXPECT_EQ(c->key_check_interval, absl::Minutes(5));
  EXPECT_FALSE(c->delivery.enabled());  // No --queue_dir, no --queue_redis: async delivery off.
  EXPECT_TRUE(c->reflection);
  EXPECT_EQ(c->log_level, LogLevel::kInfo);
  EXPECT_EQ(c->limits.max_id_bytes, 256);
  EXPECT_EQ(c->limits.max_event_name_bytes, 256);
  EXPECT_EQ(c->limits.max_metadata_keys, 100);
  EXPECT_EQ(c->limits.max_metadata_key_bytes, 128);
  EXPECT_EQ(c->limits.max_string_value_bytes, 4096);
  EXPECT_EQ(c->limits.max_bulk_rows, 10000);
  EXPECT_EQ(c->limits.max_delete_ids, 1000);
  EXPECT_EQ(c->limits.max_job_id_bytes, 512);
}

TEST(LoadConfigTest, MaxInflightUpstreamIsSizedFromTheBudgetsUnlessGiven) {
  ConfigInput in;
  in.traffic.identify_rate = "6000/1m";  // 100/s
  in.traffic.track_rate = "3000/1m";     // 50/s; deletes and job reads keep 0.5 + 2 /s
  in.upstream_timeout = absl::Seconds(4);
  absl::StatusOr<GatewayConfig> c = LoadConfig(in, EnvWithKey());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_inflight_upstream, 612);  // 152.5/s x 4 s, plus one slot per job lane
  EXPECT_EQ(MaxInflightUpstreamFor(c->traffic.rate_limits, absl::Seconds(4)), 612);

  // Small budgets and a short timeout: the floor.
  in.traffic.identify_rate = "1/1m";
  in.traffic.track_rate = "1/1m";
  in.upstream_timeout = absl::Seconds(1);
  in.connect_timeout = absl::Seconds(1);
  c = LoadConfig(in, EnvWithKey());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_inflight_upstream, kMinDerivedInflightUpstream);

  // Huge budgets: the ceiling.
  in.traffic.identify_rate = "100000000/1s";
  c = LoadConfig(in, EnvWithKey());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_inflight_upstream, kMaxInflightUpstream);

  // Given: kept as given.
  in.max_inflight_upstream = 12;
  c = LoadConfig(in, EnvWithKey());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_inflight_upstream, 12);
}

struct UrlCase {
  std::string url;
  std::string region;
  std::string want;
};

TEST(LoadConfigTest, UpstreamUrlIsNormalized) {
  const UrlCase cases[] = {
      {"https://analytex.userpilot.io/", "", "https://analytex.userpilot.io"},
      {"HTTPS://Analytex.Userpilot.IO", "", "https://analytex.userpilot.io"},
      {"http://LocalHost:8089/", "", "http://localhost:8089"},
      {"http://[::1]:8089", "", "http://[::1]:8089"},
      {"https://analytex.userpilot.io", "eu", "https://analytex-eu.userpilot.io"},
      {"https://analytex.userpilot.io/", "us", "https://analytex.userpilot.io"},
      {"https://analytex-eu.userpilot.io", "eu", "https://analytex-eu.userpilot.io"},
  };
  for (const UrlCase& tc : cases) {
    ConfigInput in;
    in.upstream_url = tc.url;
    in.region = tc.region;
    absl::StatusOr<GatewayConfig> c = LoadConfig(in, EnvWithKey());
    ASSERT_TRUE(c.ok()) << tc.url << " " << c.status();
    EXPECT_EQ(c->upstream_url, tc.want) << tc.url << " region=" << tc.region;
  }
}

TEST(LoadConfigTest, ReportsEveryProblemAtOnce) {
  ConfigInput in;
  in.listen = "nope";
  in.upstream_url = "http://example.com";
  in.limits.max_bulk_rows = 20000;
  in.log_level = "loud";
  absl::StatusOr<GatewayConfig> c = LoadConfig(in, FakeEnv({}));
  ASSERT_FALSE(c.ok());
  std::string message(c.status().message());
  EXPECT_THAT(message, HasSubstr("(5 problems)"));
  EXPECT_THAT(message, HasSubstr("\n  --listen: "));
  EXPECT_THAT(message, HasSubstr("\n  --upstream_url: "));
  EXPECT_THAT(message, HasSubstr("\n  --max_bulk_rows: "));
  EXPECT_THAT(message, HasSubstr("\n  --log_level: "));
  EXPECT_THAT(message, HasSubstr("\n  no Userpilot API key"));
}

TEST(LoadConfigTest, NamesTheEnvironmentVariableThatSetABadValue) {
  ConfigInput in;
  in.listen = "0.0.0.0";
  in.from_environment["listen"] = "USERPILOT_GATEWAY_LISTEN";
  absl::StatusOr<GatewayConfig> c = LoadConfig(in, EnvWithKey());
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("--listen (set by USERPILOT_GATEWAY_LISTEN): '0.0.0.0' has no port"));
}

TEST(EndpointsTest, LoopbackHosts) {
  for (const char* host : {"localhost", "LOCALHOST", "127.0.0.1", "127.255.0.9", "::1", "[::1]",
                           "[0:0:0:0:0:0:0:1]"}) {
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
  }
  for (const char* host : {"", "128.0.0.1", "10.0.0.1", "0.0.0.0", "::", "[::]",
                           "localhost.evil.com", "127.0.0.1.nip.io", "example.com"}) {
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
  }
}

// ---- The API key ----

TEST(ApiKeyTest, FromEnvironmentTrimmed) {
  absl::StatusOr<GatewayConfig> c =
      LoadConfig(ConfigInput(), FakeEnv({{"USERPILOT_API_KEY", absl::StrCat("  ", kKey, "\n")}}));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->api_key.Reveal(), kKey);
  EXPECT_EQ(c->api_key_source, "env:USERPILOT_API_KEY");
}

TEST(ApiKeyTest, MissingSaysHowToSetIt) {
  for (const EnvLookup& env : {FakeEnv({}), FakeEnv({{"USERPILOT_API_KEY", ""}})}) {
    absl::StatusOr<GatewayConfig> c = LoadConfig(ConfigInput(), env);
    ASSERT_FALSE(c.ok());
    EXPECT_THAT(std::string(c.status().message()),
                HasSubstr("no Userpilot API key: set the environment variable USERPILOT_API_KEY"));
    EXPECT_THAT(std::string(c.status().message()), HasSubstr("--api_key_file=PATH"));
  }
}

TEST(ApiKeyTest, EnvironmentKeyWithInnerWhitespaceIsRejectedWithoutEcho) {
  absl::StatusOr<GatewayConfig> c =
      LoadConfig(ConfigInput(), FakeEnv({{"USERPILOT_API_KEY", "abc\r\nX-Evil: 1"}}));
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("USERPILOT_API_KEY: the key contains"));
  EXPECT_THAT(std::string(c.status().message()), Not(HasSubstr("Evil")));
}

TEST(ApiKeyTest, FromFileTrimmedAndPreferredOverEnvironment) {
  ConfigInput in;
  in.api_key_file = WriteTempFile("key_ok", "file-key-123\n\n");
  absl::StatusOr<GatewayConfig> c = LoadConfig(in, EnvWithKey());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->api_key.Reveal(), "file-key-123");
  EXPECT_EQ(c->api_key_source, "file:" + in.api_key_file);
}

TEST(ApiKeyTest, FileErrorsNamePathButNeverContents) {
  struct FileCase {
    std::string label;
    std::string path;
    std::string error;
  };
  const std::string dir = ::testing::TempDir();
  const FileCase cases[] = {
      {"missing", "/nonexistent/userpilot.key",
       "cannot open '/nonexistent/userpilot.key': No such"},
      {"directory", dir, "cannot read '" + dir + "': Is a directory"},
      {"empty", WriteTempFile("key_empty", ""), "' is empty"},
      {"whitespace", WriteTempFile("key_blank", " \n\t\n"), "' is empty"},
      {"two_lines", WriteTempFile("key_two", "first-SECRETPART\nsecond-SECRETPART\n"),
       "contains whitespace or control characters"},
      {"huge", WriteTempFile("key_huge", std::string(100 * 1024, 'k')), "is larger than 64 KiB"},
  };
  for (const FileCase& tc : cases) {
    ConfigInput in;
    in.api_key_file = tc.path;
    absl::StatusOr<GatewayConfig> c = LoadConfig(in, EnvWithKey());
    ASSERT_FALSE(c.ok()) << tc.label;
    std::string message(c.status().message());
    EXPECT_THAT(message, HasSubstr("--api_key_file: ")) << tc.label;
    EXPECT_THAT(message, HasSubstr(tc.path)) << tc.label;
    EXPECT_THAT(message, HasSubstr(tc.error)) << tc.label;
    EXPECT_THAT(message, Not(HasSubstr("SECRETPART"))) << tc.label;
    EXPECT_THAT(message, Not(HasSubstr("kkkkkkkk"))) << tc.label;
    EXPECT_THAT(message, Not(HasSubstr(kKey))) << tc.label;
  }
}

// ---- Never printed ----

TEST(SecretTest, PrintsRedacted) {
  Secret s(kKey);
  std::ostringstream os;
  os << s;
  EXPECT_EQ(os.str(), "[redacted]");
  EXPECT_EQ(s.DebugString(), "[redacted]");
  EXPECT_EQ(::testing::PrintToString(s), "[redacted]");
  EXPECT_EQ(s.Reveal(), kKey);
}

TEST(DebugStringTest, ListsSettingsAndRedactsKey) {
  ConfigInput in;
  in.api_key_file = WriteTempFile("key_debug", kKey);
  in.region = "eu";
  absl::StatusOr<GatewayConfig> c = LoadConfig(in, FakeEnv({}));
  ASSERT_TRUE(c.ok()) << c.status();
  std::string s = c->DebugString();
  EXPECT_THAT(s, Not(HasSubstr(kKey)));
  EXPECT_THAT(s, HasSubstr("api_key=[redacted]"));
  EXPECT_THAT(s, HasSubstr("api_key_source=file:" + in.api_key_file));
  EXPECT_THAT(s, HasSubstr("listen=0.0.0.0:50051 metrics_listen=0.0.0.0:9464"));
  EXPECT_THAT(s, HasSubstr("upstream_url=https://analytex-eu.userpilot.io"));
  EXPECT_THAT(s, HasSubstr("upstream_timeout=10s"));
  EXPECT_THAT(s, HasSubstr("max_bulk_rows=10000"));
  EXPECT_THAT(s, HasSubstr("log_level=info"));
}

TEST(LoadConfigTest, SecurityFlagsAreCheckedEachByName) {
  auto error = [](const std::function<void(SecurityInput&)>& edit) {
    ConfigInput in;
    edit(in.security);
    absl::StatusOr<GatewayConfig> c = LoadConfig(in, EnvWithKey());
    return c.ok() ? std::string() : std::string(c.status().message());
  };
  const std::string tokens =
      WriteTempFile("tokens", absl::StrCat("# callers\nbilling ", std::string(64, 'a'), "\n"));
  const std::string bad_tokens = WriteTempFile("bad_tokens", "billing not-a-digest\n");
  EXPECT_EQ(error([&](SecurityInput& s) {
              s.caller_tokens_file = tokens;
              s.caller_allow = "billing=IdentifyUser|TrackEvent,*=GetJob";
            }),
            "");
  EXPECT_THAT(error([&](SecurityInput& s) { s.caller_tokens_file = bad_tokens; }),
              HasSubstr("--caller_tokens_file: " + bad_tokens + " line 1"));
  EXPECT_THAT(error([](SecurityInput& s) { s.caller_tokens_file = "/nonexistent/tokens"; }),
              HasSubstr("--caller_tokens_file: cannot read '/nonexistent/tokens'"));
  EXPECT_THAT(error([&](SecurityInput& s) {
                s.caller_tokens_file = tokens;
                s.caller_allow = "billing=IdentifyUsr";
              }),
              HasSubstr("--caller_allow: "));
  EXPECT_THAT(error([](SecurityInput& s) { s.caller_allow = "billing=IdentifyUser"; }),
              HasSubstr("--caller_allow: needs authenticated callers"));
  EXPECT_THAT(error([](SecurityInput& s) { s.tls_cert_file = "/nonexistent/tls.crt"; }),
              HasSubstr("--tls_"));
  EXPECT_THAT(error([](SecurityInput& s) { s.max_connections = -1; }),
              HasSubstr("--max_connections: must be from 0 (no cap)"));
  EXPECT_THAT(error([](SecurityInput& s) { s.max_concurrent_streams = -5; }),
              HasSubstr("--max_concurrent_streams: "));
  EXPECT_THAT(
      error([](SecurityInput& s) { s.credentials_reload_interval = absl::Milliseconds(10); }),
      HasSubstr("--credentials_reload_interval: "));
  EXPECT_THAT(error([](SecurityInput& s) { s.health_listen = "nope"; }),
              HasSubstr("--health_listen: "));
  EXPECT_THAT(error([](SecurityInput& s) { s.health_listen = ConfigInput().listen; }),
              HasSubstr("--health_listen: is the same address"));
}

}  // namespace
}  // namespace userpilot::gateway
