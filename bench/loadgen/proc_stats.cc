#include "bench/loadgen/proc_stats.h"

#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

namespace userpilot::gateway::bench {

ProcSample ReadProc(pid_t pid) {
  ProcSample sample;
  const std::string dir = pid == 0 ? "/proc/self" : "/proc/" + std::to_string(pid);
  std::ifstream stat(dir + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return sample;
  // Field 2 (comm) may hold spaces: parse after its closing parenthesis. utime and stime are
  // fields 14 and 15, i.e. the 12th and 13th after it.
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return sample;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  sample.cpu_seconds =
      static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  std::ifstream status(dir + "/status");
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      sample.rss_bytes = std::stoll(line.substr(6)) * 1024;
      break;
    }
  }
  if (DIR* tasks = opendir((dir + "/task").c_str())) {
    while (dirent* task = readdir(tasks)) {
      if (task->d_name[0] == '.') continue;
      std::ifstream task_status(dir + "/task/" + task->d_name + "/status");
      while (std::getline(task_status, line)) {
        if (line.find("ctxt_switches:") != std::string::npos) {
          sample.context_switches += std::stoll(line.substr(line.find(':') + 1));
        }
      }
    }
    closedir(tasks);
  }
  sample.ok = true;
  return sample;
}

RssSampler::RssSampler(pid_t pid) : pid_(pid) {
  thread_ = std::thread([this] {
    while (true) {
      const ProcSample s = ReadProc(pid_);
      if (s.ok && s.rss_bytes > peak_.load()) peak_.store(s.rss_bytes);
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stop_) return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
}

void RssSampler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace userpilot::gateway::bench
