#include "service/config/flags.h"

#include <unistd.h>

#include <cstdlib>
#include <map>
#include <set>

#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;

// Sets environment variables for one test and restores the previous values after it.
class ScopedEnv {
 public:
  ScopedEnv() = default;
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second.has_value()) {
        setenv(it->first.c_str(), it->second->c_str(), 1);
      } else {
        unsetenv(it->first.c_str());
      }
    }
  }
  void Set(const std::string& name, const std::string& value) {
    const char* old = std::getenv(name.c_str());
    saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
    setenv(name.c_str(), value.c_str(), 1);
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// Runs ParseFlagsWithEnv on the given arguments (program name first).
std::vector<std::string> Parse(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return ParseFlagsWithEnv(static_cast<int>(args.size()), argv.data());
}

TEST(FlagsTest, EveryFlagInFlagsCcIsListedAndExists) {
  std::set<std::string> listed;
  for (absl::string_view name : GatewayFlagNames()) {
    listed.emplace(name);
    EXPECT_NE(absl::FindCommandLineFlag(name), nullptr) << name;
  }
  EXPECT_EQ(listed.size(), GatewayFlagNames().size()) << "duplicate names";
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (absl::StrContains(flag->Filename(), "service/config/flags.cc")) {
      EXPECT_TRUE(listed.count(std::string(name))) << name << " has no environment fallback";
    }
  }
}

TEST(FlagsTest, ContractFlagNamesAndDefaults) {
  const std::pair<const char*, const char*> expected[] = {
      {"listen", "0.0.0.0:50051"},
      {"upstream_url", "https://analytex.userpilot.io"},
      {"region", ""},
      {"api_key_file", ""},
      {"metrics_listen", "0.0.0.0:9464"},
      {"upstream_timeout", "10s"},
      {"default_deadline", "30s"},
      {"max_deadline", "5m"},
      {"connect_timeout", "2s"},
      {"max_connection_age", "5m"},
      {"max_connection_age_grace", "5m"},
      {"grpc_memory_quota_mb", "128"},
      {"keepalive_time", "1m"},
      {"keepalive_timeout", "20s"},
      {"min_client_ping_interval", "30s"},
      {"max_inflight_upstream", "0"},
      {"key_check_interval", "5m"},
      {"upstream_ca_file", ""},
      {"reflection", "true"},
      {"shutdown_grace", "25s"},
      {"log_level", "info"},
      {"max_id_bytes", "256"},
      {"max_event_name_bytes", "256"},
      {"max_metadata_keys", "100"},
      {"max_metadata_key_bytes", "128"},
      {"max_string_value_bytes", "4096"},
      {"max_bulk_request_bytes", "16777216"},
      {"max_violations", "10"},
      {"identify_rate", "600/1m"},
      {"track_rate", "600/1m"},
      {"delete_rate", "1/2s"},
      {"job_read_rate", "120/1m"},
      {"ratelimit_spacing_margin", "100ms"},
      {"admission_headroom", "100ms"},
      {"max_upstream_pause", "5m"},
      {"job_lane_poll_interval", "2s"},
      {"job_lane_max_waiting", "4"},
      {"budget_queues", ""},
      {"caller_weights", ""},
      {"caller_max_queued", ""},
      {"default_caller_max_queued", "0"},
      {"ratelimit_redis", ""},
      {"ratelimit_redis_fallback", "local"},
      {"ratelimit_replicas", "1"},
      {"retry_max_attempts", "4"},
      {"retry_initial_backoff", "100ms"},
      {"retry_max_backoff", "5s"},
      {"retry_budget_ratio", "0.2"},
      {"circuit_breaker", "true"},
      {"circuit_failure_ratio", "0.8"},
      {"circuit_min_calls", "50"},
      {"circuit_window", "10s"},
      {"circuit_open_duration", "5s"},
      {"circuit_half_open_share", "0.1"},
      {"queue_dir", ""},
      {"queue_max_bytes", "1073741824"},
      {"queue_redis", ""},
      {"queue_redis_lease_timeout", "1m"},
      {"queue_sync_share", "0.2"},
      {"queue_max_in_flight", "64"},
      {"queue_coalesce_threshold", "1000"},
      {"queue_coalesce_max_rows", "10000"},
      {"queue_coalesce_job_timeout", "20m"},
      {"circuit_half_open_probes", "10"},
      {"max_bulk_rows", "10000"},
      {"max_delete_ids", "1000"},
      {"max_job_id_bytes", "512"},
      {"access_log", "true"},
      {"watch_min_poll_interval", "1s"},
      {"watch_max_poll_interval", "15s"},
      {"max_watches", "20000"},
      {"max_watched_jobs", "1000"},
      {"import_spool_dir", ""},
      {"import_max_file_bytes", "52428800"},
      {"max_concurrent_imports", "8"},
      {"upload_timeout", "5m"},
      {"import_idle_timeout", "30s"},
      {"tls_cert_file", ""},
      {"tls_key_file", ""},
      {"tls_client_ca_file", ""},
      {"caller_tokens_file", ""},
      {"caller_allow", ""},
      {"credentials_reload_interval", "10s"},
      {"reflection_with_auth", "false"},
      {"max_connections", "0"},
      {"max_concurrent_streams", "0"},
      {"health_listen", ""},
  };
  for (const auto& [name, value] : expected) {
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    ASSERT_NE(flag, nullptr) << name;
    EXPECT_EQ(flag->DefaultValue(), value) << name;
    EXPECT_FALSE(flag->Help().empty()) << name;
  }
  EXPECT_EQ(std::size(expected), GatewayFlagNames().size());
}

TEST(FlagsTest, EnvVarNames) {
  EXPECT_EQ(FlagEnvVar("listen"), "USERPILOT_GATEWAY_LISTEN");
  EXPECT_EQ(FlagEnvVar("max_bulk_rows"), "USERPILOT_GATEWAY_MAX_BULK_ROWS");
}

TEST(FlagsTest, DefaultsMatchConfigInput) {
  absl::FlagSaver saver;
  ConfigInput from_flags = ConfigInputFromFlags();
  ConfigInput defaults;
  EXPECT_EQ(from_flags.listen, defaults.listen);
  EXPECT_EQ(from_flags.upstream_url, defaults.upstream_url);
  EXPECT_EQ(from_flags.max_deadline, defaults.max_deadline);
  EXPECT_EQ(from_flags.limits.max_job_id_bytes, defaults.limits.max_job_id_bytes);
}

TEST(FlagsTest, CommandLineBeatsEnvironmentBeatsDefault) {
  absl::FlagSaver saver;
  ScopedEnv env;
  env.Set("USERPILOT_GATEWAY_LISTEN", "1.2.3.4:1111");
  env.Set("USERPILOT_GATEWAY_MAX_BULK_ROWS", "500");
  env.Set("USERPILOT_GATEWAY_UPSTREAM_TIMEOUT", "3s");
  env.Set("USERPILOT_GATEWAY_REFLECTION", "false");
  env.Set("USERPILOT_GATEWAY_REGION", "");  // Empty counts as unset.
  std::vector<std::string> rest =
      Parse({"userpilot-gateway", "--listen=5.6.7.8:2222", "--max_delete_ids=7", "extra"});
  EXPECT_EQ(rest, std::vector<std::string>{"extra"});

  ConfigInput in = ConfigInputFromFlags();
  EXPECT_EQ(in.listen, "5.6.7.8:2222");              // command line over environment
  EXPECT_EQ(in.limits.max_bulk_rows, 500);           // environment over default
  EXPECT_EQ(in.upstream_timeout, absl::Seconds(3));  // environment over default
  EXPECT_FALSE(in.reflection);                       // environment over default
  EXPECT_EQ(in.limits.max_delete_ids, 7);            // command line over default
  EXPECT_EQ(in.metrics_listen, "0.0.0.0:9464");      // default
  EXPECT_EQ(in.region, "");                          // empty variable ignored

  // Error messages name the variable for settings that came from the environment.
  EXPECT_EQ(in.from_environment, (std::map<std::string, std::string>{
                                     {"max_bulk_rows", "USERPILOT_GATEWAY_MAX_BULK_ROWS"},
                                     {"reflection", "USERPILOT_GATEWAY_REFLECTION"},
                                     {"upstream_timeout", "USERPILOT_GATEWAY_UPSTREAM_TIMEOUT"}}));
}

TEST(FlagsTest, BadEnvironmentValuesAreAllNamed) {
  absl::FlagSaver saver;
  std::map<std::string, std::string> vars = {
      {"USERPILOT_GATEWAY_MAX_BULK_ROWS", "lots"},
      {"USERPILOT_GATEWAY_REFLECTION", "maybe"},
      {"USERPILOT_GATEWAY_CONNECT_TIMEOUT", "2"},
      {"USERPILOT_GATEWAY_LISTEN", "9.9.9.9:9"},
  };
  absl::Status s = ApplyFlagEnvironment([&](absl::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  });
  ASSERT_FALSE(s.ok());
  std::string message(s.message());
  EXPECT_THAT(message, HasSubstr("USERPILOT_GATEWAY_MAX_BULK_ROWS='lots'"));
  EXPECT_THAT(message, HasSubstr("USERPILOT_GATEWAY_REFLECTION='maybe'"));
  EXPECT_THAT(message, HasSubstr("USERPILOT_GATEWAY_CONNECT_TIMEOUT='2'"));
  EXPECT_THAT(message, ::testing::Not(HasSubstr("LISTEN")));
  ConfigInput in = ConfigInputFromFlags();
  EXPECT_EQ(in.limits.max_bulk_rows, 10000);  // unchanged
  EXPECT_EQ(in.listen, "9.9.9.9:9");          // the good one applied
}

TEST(FlagsDeathTest, BadEnvironmentStopsStartup) {
  ScopedEnv env;
  env.Set("USERPILOT_GATEWAY_SHUTDOWN_GRACE", "soon");
  EXPECT_EXIT(Parse({"userpilot-gateway"}), ::testing::ExitedWithCode(2),
              "userpilot-gateway: invalid environment:\n  USERPILOT_GATEWAY_SHUTDOWN_GRACE='soon'");
}

TEST(FlagsDeathTest, HelpListsEveryGatewayFlag) {
  // --help prints to stdout; send it to stderr where EXPECT_EXIT can match it.
  auto help = [] {
    dup2(STDERR_FILENO, STDOUT_FILENO);
    Parse({"userpilot-gateway", "--help"});
  };
  EXPECT_EXIT(help(), ::testing::ExitedWithCode(1), "USERPILOT_GATEWAY_<FLAG NAME IN CAPITALS>");
  for (absl::string_view name : GatewayFlagNames()) {
    EXPECT_EXIT(help(), ::testing::ExitedWithCode(1), absl::StrCat("--", name, " \\(")) << name;
  }
}

TEST(DebugStringTest, NamesEveryFlagThatIsASetting) {
  ConfigInput in;
  absl::StatusOr<GatewayConfig> c =
      LoadConfig(in, [](absl::string_view) -> std::optional<std::string> { return "k"; });
  ASSERT_TRUE(c.ok()) << c.status();
  std::string s = " " + c->DebugString();
  for (absl::string_view name : GatewayFlagNames()) {
    if (name == "region" || name == "api_key_file") continue;  // folded into other settings
    EXPECT_THAT(s, HasSubstr(absl::StrCat(" ", name, "="))) << name;
  }
}

}  // namespace
}  // namespace userpilot::gateway
