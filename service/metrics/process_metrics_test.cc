#include "service/metrics/process_metrics.h"

#include <unistd.h>

#include <ctime>

#include "gtest/gtest.h"
#include "service/metrics/metrics_registry.h"

namespace userpilot::gateway {
namespace {

// proc(5): pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
// utime stime cutime cstime priority nice num_threads itrealvalue starttime vsize rss ...
constexpr char kStat[] =
    "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 7 0 "
    "12345 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";

TEST(ParseProcStatTest, ReadsCpuMemoryAndStartPastAParenthesizedComm) {
  std::optional<ProcStat> stat = ParseProcStat(kStat, 100, 4096);
  ASSERT_TRUE(stat.has_value());
  EXPECT_DOUBLE_EQ(stat->cpu_seconds, 3.0);  // (250 + 50) / 100
  EXPECT_DOUBLE_EQ(stat->start_ticks_since_boot, 12345);
  EXPECT_DOUBLE_EQ(stat->virtual_memory_bytes, 104857600);
  EXPECT_DOUBLE_EQ(stat->resident_memory_bytes, 2560.0 * 4096);
}

TEST(ParseProcStatTest, RejectsTruncatedOrGarbledLines) {
  EXPECT_FALSE(ParseProcStat("", 100, 4096).has_value());
  EXPECT_FALSE(ParseProcStat("4242 (x) S 1 2 3", 100, 4096).has_value());
  EXPECT_FALSE(ParseProcStat("no parenthesis at all", 100, 4096).has_value());
  EXPECT_FALSE(ParseProcStat(kStat, 0, 4096).has_value());
}

TEST(ProcessCollectorTest, ReportsThisProcess) {
  MetricsRegistry registry;
  registry.AddCollectable(std::make_shared<ProcessCollector>());
  auto families = registry.Collect();
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                           "process_start_time_seconds"}) {
    EXPECT_NE(FindMetric(families, name), std::nullopt) << name;
  }
  EXPECT_GT(FindMetric(families, "process_resident_memory_bytes")->gauge.value, 0);
  EXPECT_GE(FindMetric(families, "process_open_fds")->gauge.value, 3);  // stdin/out/err
  const double start = FindMetric(families, "process_start_time_seconds")->gauge.value;
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 3600);  // This test process started within the hour.
}

TEST(ProcessCollectorTest, UnreadableProcfsLeavesValuesOut) {
  ProcessCollector collector("/nonexistent/self", "/nonexistent/stat");
  auto families = collector.Collect();
  for (const auto& family : families) {
    // Only the limit (from getrlimit) may remain; nothing is invented.
    EXPECT_EQ(family.name, "process_max_fds");
  }
}

TEST(BuildInfoTest, OneSeriesWithVersionAndRevision) {
  MetricsRegistry registry;
  RegisterBuildInfo(registry.registry(), "1.2.3", "abcdef123456");
  const auto info = FindMetric(registry.Collect(), "userpilot_gateway_build_info",
                               {{"version", "1.2.3"}, {"revision", "abcdef123456"}});
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->gauge.value, 1);
}

}  // namespace
}  // namespace userpilot::gateway
