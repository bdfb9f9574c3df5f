#include "service/metrics/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "prometheus/gauge.h"

namespace userpilot::gateway {
namespace {

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Seconds since the epoch at which the machine booted (`btime` of /proc/stat).
std::optional<double> BootTime(const std::string& proc_stat) {
  std::optional<std::string> text = ReadFile(proc_stat);
  if (!text.has_value()) return std::nullopt;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    if (absl::ConsumePrefix(&line, "btime ")) {
      double seconds = 0;
      if (absl::SimpleAtod(line, &seconds)) return seconds;
    }
  }
  return std::nullopt;
}

std::optional<double> StartTime(const std::string& proc_self, const std::string& proc_stat) {
  std::optional<std::string> line = ReadFile(proc_self + "/stat");
  std::optional<double> boot = BootTime(proc_stat);
  if (!line.has_value() || !boot.has_value()) return std::nullopt;
  const long ticks = sysconf(_SC_CLK_TCK);  // NOLINT(runtime/int)
  std::optional<ProcStat> stat = ParseProcStat(*line, ticks, sysconf(_SC_PAGESIZE));
  if (!stat.has_value()) return std::nullopt;
  return *boot + stat->start_ticks_since_boot / static_cast<double>(ticks);
}

// Open descriptors: entries of <proc_self>/fd, without the one reading the directory.
std::optional<double> OpenFds(const std::string& proc_self) {
  DIR* dir = opendir((proc_self + "/fd").c_str());
  if (dir == nullptr) return std::nullopt;
  const std::string own = std::to_string(dirfd(dir));
  double count = 0;
  while (dirent* entry = readdir(dir)) {
    const absl::string_view name = entry->d_name;
    if (name == "." || name == ".." || name == own) continue;
    ++count;
  }
  closedir(dir);
  return count;
}

prometheus::MetricFamily Family(std::string name, std::string help, prometheus::MetricType type,
                                double value) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

}  // namespace

std::optional<ProcStat> ParseProcStat(absl::string_view line, long ticks_per_second,  // NOLINT
                                      long page_size) {                               // NOLINT
  // "pid (comm) state ppid ...": fields after the last ')' start with field 3 (state).
  const size_t close = line.rfind(')');
  if (close == absl::string_view::npos || ticks_per_second <= 0) return std::nullopt;
  std::vector<absl::string_view> fields =
      absl::StrSplit(line.substr(close + 1), ' ', absl::SkipEmpty());
  auto field = [&fields](int n, double* value) {  // n: 1-based field number of proc(5).
    const size_t index = static_cast<size_t>(n - 3);
    return index < fields.size() &&
           absl::SimpleAtod(absl::StripAsciiWhitespace(fields[index]), value);
  };
  double utime = 0, stime = 0, start = 0, vsize = 0, rss = 0;
  if (!field(14, &utime) || !field(15, &stime) || !field(22, &start) || !field(23, &vsize) ||
      !field(24, &rss)) {
    return std::nullopt;
  }
  ProcStat stat;
  stat.cpu_seconds = (utime + stime) / static_cast<double>(ticks_per_second);
  stat.start_ticks_since_boot = start;
  stat.virtual_memory_bytes = vsize;
  stat.resident_memory_bytes = rss * static_cast<double>(page_size);
  return stat;
}

ProcessCollector::ProcessCollector(std::string proc_self, std::string proc_stat)
    : proc_self_(std::move(proc_self)), start_time_seconds_(StartTime(proc_self_, proc_stat)) {}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> families;
  if (std::optional<std::string> line = ReadFile(proc_self_ + "/stat")) {
    if (std::optional<ProcStat> stat =
            ParseProcStat(*line, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE))) {
      families.push_back(Family("process_cpu_seconds_total",
                                "Total user and system CPU time spent in seconds.",
                                MetricType::Counter, stat->cpu_seconds));
      families.push_back(Family("process_resident_memory_bytes", "Resident memory size in bytes.",
                                MetricType::Gauge, stat->resident_memory_bytes));
      families.push_back(Family("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                                MetricType::Gauge, stat->virtual_memory_bytes));
    }
  }
  if (std::optional<double> fds = OpenFds(proc_self_)) {
    families.push_back(
        Family("process_open_fds", "Number of open file descriptors.", MetricType::Gauge, *fds));
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    families.push_back(Family("process_max_fds", "Maximum number of open file descriptors.",
                              MetricType::Gauge, static_cast<double>(limit.rlim_cur)));
  }
  if (start_time_seconds_.has_value()) {
    families.push_back(Family("process_start_time_seconds",
                              "Start time of the process since unix epoch in seconds.",
                              MetricType::Gauge, *start_time_seconds_));
  }
  return families;
}

void RegisterBuildInfo(prometheus::Registry& registry, absl::string_view version,
                       absl::string_view revision) {
  prometheus::BuildGauge()
      .Name("userpilot_gateway_build_info")
      .Help("Always 1; the labels say which build of the gateway runs.")
      .Register(registry)
      .Add({{"version", std::string(version)}, {"revision", std::string(revision)}})
      .Set(1);
}

}  // namespace userpilot::gateway
