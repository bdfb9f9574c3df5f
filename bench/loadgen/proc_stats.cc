#include "bench/loadgen/proc_stats.h"

#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

namespace userpilot::gateway::bench {

namespace {

// utime + stime in seconds from a /proc/.../stat line, and its comm (field 2, which may hold
// spaces: the fields are parsed after its closing parenthesis; utime and stime are fields 14
// and 15, i.e. the 12th and 13th after it).
bool ParseStat(const std::string& line, std::string* comm, double* cpu_seconds) {
  const size_t open = line.find('(');
  const size_t close = line.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open) return false;
  *comm = line.substr(open + 1, close - open - 1);
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  *cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  return true;
}

}  // namespace

ProcSample ReadProc(pid_t pid) {
  ProcSample sample;
  const std::string dir = pid == 0 ? "/proc/self" : "/proc/" + std::to_string(pid);
  std::ifstream stat(dir + "/stat");
  std::string line;
  std::string comm;
  if (!std::getline(stat, line) || !ParseStat(line, &comm, &sample.cpu_seconds)) return sample;
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
      const std::string task_dir = dir + "/task/" + task->d_name;
      std::ifstream task_stat(task_dir + "/stat");
      double task_cpu = 0;
      if (!std::getline(task_stat, line) || !ParseStat(line, &comm, &task_cpu)) continue;
      ProcSample::ThreadCost& cost = sample.by_thread[comm];
      cost.cpu_seconds += task_cpu;
      std::ifstream task_status(task_dir + "/status");
      while (std::getline(task_status, line)) {
        if (line.find("ctxt_switches:") != std::string::npos) {
          const int64_t n = std::stoll(line.substr(line.find(':') + 1));
          sample.context_switches += n;
          cost.context_switches += n;
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
