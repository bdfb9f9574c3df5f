// Reads a process's CPU time and resident memory from /proc, and samples its peak resident
// memory while a load phase runs: how the benchmarks cost the gateway (and the emulator, and
// the load generator itself) without instrumenting them.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace userpilot::gateway::bench {

struct ProcSample {
  bool ok = false;
  double cpu_seconds = 0;  // user + system, all threads
  int64_t rss_bytes = 0;   // VmRSS
  // Voluntary + involuntary context switches of the threads alive now (a thread that exited
  // takes its count with it). Per call, this shows how many thread hand-offs a call costs.
  int64_t context_switches = 0;
  // The same two measures summed per thread name (comm: "nexting_thread", "upgw-http", ...), so
  // a phase can say which threads the context switches and the CPU time belong to.
  struct ThreadCost {
    double cpu_seconds = 0;
    int64_t context_switches = 0;
  };
  std::map<std::string, ThreadCost> by_thread;
};

// pid 0 means this process.
ProcSample ReadProc(pid_t pid);

// Samples VmRSS of `pid` every 20 ms on its own thread until Stop().
class RssSampler {
 public:
  explicit RssSampler(pid_t pid);
  ~RssSampler() { Stop(); }
  void Stop();
  int64_t peak_bytes() const { return peak_.load(); }

 private:
  const pid_t pid_;
  std::atomic<int64_t> peak_{0};
  std::mutex mu_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace userpilot::gateway::bench
