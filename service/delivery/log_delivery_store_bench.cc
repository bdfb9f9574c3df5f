// upgw-delivery-log-bench: acknowledged appends per second and acknowledgement latency (fsync
// included) of the embedded delivery log, for closed-loop appenders: each of N appenders
// issues its next Append as soon as the previous one is acknowledged, the way N concurrent
// Enqueue callers would. Prints one line per concurrency. Not a test: numbers depend on the
// disk and on whatever else the machine is doing.
//
//   upgw-delivery-log-bench [--dir=/path/on/the/disk] [--seconds=3] [--payload_bytes=300]
//                           [--concurrency=1,16,64]
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "service/delivery/log_delivery_store.h"

ABSL_FLAG(std::string, dir, "", "Folder for the log (default: a fresh one under TMPDIR or /tmp)");
ABSL_FLAG(double, seconds, 3, "Measured seconds per concurrency");
ABSL_FLAG(int, payload_bytes, 300, "Payload size (a serialized identify is a few hundred bytes)");
ABSL_FLAG(std::string, concurrency, "1,16,64", "Comma-separated appender counts");

namespace userpilot::gateway {
namespace {

struct Result {
  uint64_t acked = 0;
  double seconds = 0;
  std::vector<double> latencies_us;
  uint64_t fsyncs = 0;
};

class ClosedLoop {
 public:
  ClosedLoop(LogDeliveryStore& store, int payload_bytes)
      : store_(store), payload_(static_cast<size_t>(payload_bytes), 'p') {}

  Result Run(int concurrency, absl::Duration duration) {
    const uint64_t fsyncs_before = store_.Stats().fsyncs;
    stop_at_ = absl::Now() + duration;
    const absl::Time start = absl::Now();
    outstanding_ = concurrency;
    for (int i = 0; i < concurrency; ++i) Issue(i);
    while (outstanding_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    Result r;
    r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
    std::lock_guard<std::mutex> lock(mu_);
    r.latencies_us = std::move(latencies_us_);
    latencies_us_.clear();
    r.acked = r.latencies_us.size();
    r.fsyncs = store_.Stats().fsyncs - fsyncs_before;
    return r;
  }

 private:
  void Issue(int appender) {
    if (absl::Now() >= stop_at_) {
      --outstanding_;
      return;
    }
    NewDelivery d;
    d.payload = payload_;
    d.ordering_keys = {absl::StrCat("user:", appender, "-", next_++ % 1000)};
    const absl::Time sent = absl::Now();
    store_.Append(std::move(d), [this, appender, sent](absl::StatusOr<AppendResult> r) {
      if (!r.ok()) {
        std::fprintf(stderr, "append failed: %s\n", r.status().ToString().c_str());
        std::exit(1);
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        latencies_us_.push_back(absl::ToDoubleMicroseconds(absl::Now() - sent));
      }
      Issue(appender);  // On the writer thread: Append never blocks.
    });
  }

  LogDeliveryStore& store_;
  const std::string payload_;
  absl::Time stop_at_;
  std::atomic<int> outstanding_{0};
  std::atomic<uint64_t> next_{0};
  std::mutex mu_;
  std::vector<double> latencies_us_;
};

double Percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

int Main() {
  std::string dir = absl::GetFlag(FLAGS_dir);
  std::string made;
  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = absl::StrCat(tmp ? tmp : "/tmp", "/upgw-delivery-bench-XXXXXX");
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    dir = made = tmpl;
  }
  std::vector<int> levels;
  for (absl::string_view s : absl::StrSplit(absl::GetFlag(FLAGS_concurrency), ',')) {
    int n = 0;
    if (!absl::SimpleAtoi(s, &n) || n < 1) {
      std::fprintf(stderr, "--concurrency: '%s' is not a positive number\n",
                   std::string(s).c_str());
      return 2;
    }
    levels.push_back(n);
  }
  LogDeliveryStoreOptions options;
  options.dir = dir + "/queue";
  options.max_bytes = uint64_t{4} << 30;
  absl::StatusOr<std::unique_ptr<LogDeliveryStore>> store = LogDeliveryStore::Open(options);
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    return 1;
  }
  std::printf("delivery log on %s, %d-byte payloads, %.1f s per level\n", options.dir.c_str(),
              absl::GetFlag(FLAGS_payload_bytes), absl::GetFlag(FLAGS_seconds));
  std::printf("%-12s %12s %10s %10s %10s %14s\n", "appenders", "appends/s", "p50 ms", "p99 ms",
              "fsyncs", "appends/fsync");
  ClosedLoop loop(**store, absl::GetFlag(FLAGS_payload_bytes));
  for (int n : levels) {
    Result r = loop.Run(n, absl::Seconds(absl::GetFlag(FLAGS_seconds)));
    const double p50 = Percentile(r.latencies_us, 0.50) / 1000;
    const double p99 = Percentile(r.latencies_us, 0.99) / 1000;
    std::printf("%-12d %12.0f %10.2f %10.2f %10llu %14.1f\n", n,
                static_cast<double>(r.acked) / r.seconds, p50, p99,
                static_cast<unsigned long long>(r.fsyncs),
                r.fsyncs ? static_cast<double>(r.acked) / static_cast<double>(r.fsyncs) : 0.0);
    std::fflush(stdout);
  }
  (*store)->Close();
  store->reset();
  if (!made.empty()) std::filesystem::remove_all(made);
  return 0;
}

}  // namespace
}  // namespace userpilot::gateway

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return userpilot::gateway::Main();
}
