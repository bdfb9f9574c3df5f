#include "service/config/jobs_config.h"

#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

std::vector<std::pair<std::string, std::string>> Problems(const JobsInput& in,
                                                          JobsConfig* out = nullptr) {
  std::vector<std::pair<std::string, std::string>> problems;
  JobsConfig config = LoadJobsConfig(in, [&](absl::string_view flag, std::string message) {
    problems.emplace_back(std::string(flag), std::move(message));
  });
  if (out != nullptr) *out = std::move(config);
  return problems;
}

TEST(JobsConfigTest, DefaultsAreTheComponentsDefaults) {
  JobsConfig config;
  EXPECT_THAT(Problems(JobsInput(), &config), IsEmpty());
  EXPECT_EQ(config.watch.min_poll_interval, JobWatchOptions().min_poll_interval);
  EXPECT_EQ(config.watch.max_poll_interval, JobWatchOptions().max_poll_interval);
  EXPECT_EQ(config.watch.max_subscribers, JobWatchOptions().max_subscribers);
  EXPECT_EQ(config.watch.max_watched_jobs, JobWatchOptions().max_watched_jobs);
  EXPECT_EQ(config.import.limits.max_file_bytes, ImportLimits().max_file_bytes);
  EXPECT_EQ(config.import.max_concurrent_imports, ImportOptions().max_concurrent_imports);
  EXPECT_EQ(config.import.spool_dir, "");
  EXPECT_EQ(config.upload_timeout, absl::Minutes(5));
  EXPECT_TRUE(config.watch.Validate().ok());
  EXPECT_TRUE(config.import.Validate().ok());
}

TEST(JobsConfigTest, SettingsCarryThrough) {
  JobsInput in;
  in.watch_min_poll_interval = absl::Milliseconds(200);
  in.watch_max_poll_interval = absl::Seconds(3);
  in.max_watches = 50;
  in.max_watched_jobs = 7;
  in.import_spool_dir = ::testing::TempDir();
  in.import_max_file_bytes = 1 << 20;
  in.max_concurrent_imports = 2;
  in.upload_timeout = absl::Seconds(90);
  JobsConfig config;
  EXPECT_THAT(Problems(in, &config), IsEmpty());
  EXPECT_EQ(config.watch.min_poll_interval, absl::Milliseconds(200));
  EXPECT_EQ(config.watch.max_poll_interval, absl::Seconds(3));
  EXPECT_EQ(config.watch.max_subscribers, 50u);
  EXPECT_EQ(config.watch.max_watched_jobs, 7u);
  EXPECT_EQ(config.import.spool_dir, ::testing::TempDir());
  EXPECT_EQ(config.import.limits.max_file_bytes, 1 << 20);
  EXPECT_EQ(config.import.max_concurrent_imports, 2u);
  EXPECT_EQ(config.upload_timeout, absl::Seconds(90));
  EXPECT_THAT(JobsDebugString(config), HasSubstr("max_watched_jobs=7"));
}

TEST(JobsConfigTest, EveryBadValueIsNamedByItsFlag) {
  JobsInput in;
  in.watch_min_poll_interval = absl::ZeroDuration();
  in.watch_max_poll_interval = absl::InfiniteDuration();
  in.max_watches = 0;
  in.max_watched_jobs = -3;
  in.import_spool_dir = "/nonexistent/spool";
  in.import_max_file_bytes = int64_t{60} * 1024 * 1024;
  in.max_concurrent_imports = 65;
  in.upload_timeout = -absl::Seconds(1);
  std::vector<std::string> flags;
  for (const auto& [flag, message] : Problems(in)) flags.push_back(flag);
  EXPECT_THAT(flags,
              ElementsAre("watch_min_poll_interval", "watch_max_poll_interval", "max_watches",
                          "max_watched_jobs", "import_spool_dir", "import_max_file_bytes",
                          "max_concurrent_imports", "upload_timeout"));
}

TEST(JobsConfigTest, MaxPollIntervalMustNotBeBelowMin) {
  JobsInput in;
  in.watch_min_poll_interval = absl::Seconds(5);
  in.watch_max_poll_interval = absl::Seconds(2);
  EXPECT_THAT(Problems(in), ElementsAre(Pair("watch_max_poll_interval",
                                             HasSubstr("--watch_min_poll_interval (5s)"))));
}

TEST(JobsConfigTest, SpoolDirMustBeADirectory) {
  const std::string file = ::testing::TempDir() + "/jobs_config_test_not_a_dir";
  std::ofstream(file) << "x";
  JobsInput in;
  in.import_spool_dir = file;
  EXPECT_THAT(Problems(in), ElementsAre(Pair("import_spool_dir", HasSubstr("not a directory"))));
}

}  // namespace
}  // namespace userpilot::gateway
