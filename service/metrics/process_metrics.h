// Process metrics in the standard names every Prometheus client uses (Go's, Java's), read from
// /proc/self at scrape time, and the gateway's build_info.
//
//   process_cpu_seconds_total        counter  user + system CPU time
//   process_resident_memory_bytes    gauge
//   process_virtual_memory_bytes     gauge
//   process_open_fds                 gauge
//   process_max_fds                  gauge    soft RLIMIT_NOFILE
//   process_start_time_seconds       gauge    since the Unix epoch
//   userpilot_gateway_build_info{version,revision}  gauge, always 1
//
// Linux only (procfs). A value that cannot be read is left out of that scrape, never invented.
//
// Thread-safety: ProcessCollector::Collect() may run concurrently (it only reads files).
#ifndef USERPILOT_GATEWAY_SERVICE_METRICS_PROCESS_METRICS_H_
#define USERPILOT_GATEWAY_SERVICE_METRICS_PROCESS_METRICS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"

namespace userpilot::gateway {

class ProcessCollector final : public prometheus::Collectable {
 public:
  // `proc_self` is the procfs directory to read (tests point it at a fake one).
  explicit ProcessCollector(std::string proc_self = "/proc/self",
                            std::string proc_stat = "/proc/stat");

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const std::string proc_self_;
  const std::optional<double> start_time_seconds_;  // Fixed for the process: read once.
};

// What /proc/<pid>/stat says, in the units of the metrics.
struct ProcStat {
  double cpu_seconds = 0;
  double virtual_memory_bytes = 0;
  double resident_memory_bytes = 0;
  double start_ticks_since_boot = 0;  // clock ticks
};
// Parses the one line of /proc/<pid>/stat (`comm` may hold spaces and parentheses).
std::optional<ProcStat> ParseProcStat(absl::string_view line, long ticks_per_second,  // NOLINT
                                      long page_size);                                // NOLINT

// Registers userpilot_gateway_build_info{version=`version`,revision=`revision`} 1.
void RegisterBuildInfo(prometheus::Registry& registry, absl::string_view version,
                       absl::string_view revision);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_METRICS_PROCESS_METRICS_H_
