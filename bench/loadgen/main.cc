// upgw-bench: the load generator of the benchmarks (see BENCHMARKS.md).
//
// Sends one request mix to each of --targets in turn (the gateway over gRPC, and/or the
// emulator's REST API directly with libcurl), open-loop at --rate or closed-loop with
// --concurrency calls outstanding, and writes one JSON document with latency percentiles,
// status-code counts and, for the processes named by --gateway_pid/--emulator_pid, CPU seconds
// and resident memory per phase. A one-line summary per target goes to stderr.
//
//   upgw-bench --targets=direct,gateway --gateway=127.0.0.1:50051
//       --direct_url=http://127.0.0.1:8089 --mode=open --rate=2000 --duration=10s --out=r.json
//   upgw-bench --wait_serving=127.0.0.1:50051   # prints the CLOCK_MONOTONIC ns of SERVING
#include <sys/types.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench/loadgen/grpc_target.h"
#include "bench/loadgen/http_target.h"
#include "bench/loadgen/jobs_client.h"
#include "bench/loadgen/proc_stats.h"
#include "bench/loadgen/runner.h"

ABSL_FLAG(std::string, targets, "gateway", "Comma-separated phases, in order: gateway, direct");
ABSL_FLAG(std::string, gateway, "127.0.0.1:50051", "The gateway's gRPC address");
ABSL_FLAG(std::string, direct_url, "", "REST base URL for the direct baseline (the emulator)");
ABSL_FLAG(std::string, api_key, "emulator-key", "API key for the direct baseline (never printed)");
ABSL_FLAG(std::string, mode, "open", "open (constant rate) or closed (max throughput)");
ABSL_FLAG(double, rate, 500, "Open loop: calls per second");
ABSL_FLAG(int, concurrency, 16, "Closed loop: calls outstanding");
ABSL_FLAG(int, max_inflight, 4096, "Open loop: most calls in flight (the pacer waits beyond)");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(10), "Measured time per target");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1), "Unmeasured time before it per target");
ABSL_FLAG(int64_t, max_calls, 10'000'000, "Most calls sent per target (warm-up included)");
ABSL_FLAG(absl::Duration, deadline, absl::Seconds(5), "Deadline of every call");
ABSL_FLAG(std::string, mix, "identify=1",
          "Weighted request mix: identify, identify_company, track");
ABSL_FLAG(std::string, caller, "bench", "x-caller metadata sent to the gateway ('' = none)");
ABSL_FLAG(int, channels, 1, "gRPC channels (HTTP/2 connections) to the gateway");
ABSL_FLAG(int, connections, 64, "Direct baseline: most keep-alive connections");
ABSL_FLAG(int, gateway_pid, 0, "Report CPU and memory of this process as the gateway's");
ABSL_FLAG(int, emulator_pid, 0, "Report CPU and memory of this process as the emulator's");
ABSL_FLAG(std::string, out, "", "Write the JSON here (default: stdout)");
ABSL_FLAG(std::string, label, "", "Free text copied into the JSON");
ABSL_FLAG(std::string, wait_serving, "",
          "Instead of a load run: poll this address's gRPC health check until SERVING and print "
          "the CLOCK_MONOTONIC time (ns) it was first seen");
ABSL_FLAG(absl::Duration, wait_timeout, absl::Seconds(20), "Give-up time for --wait_serving");
ABSL_FLAG(std::string, watch_jobs, "",
          "Instead of a load run: a file of job ids (one a line) to watch with --watchers "
          "WatchJob streams; prints 'ready N', then JSON with each watcher's CLOCK_MONOTONIC ns "
          "of --watch_status (watcher i watches job i mod jobs)");
ABSL_FLAG(int, watchers, 100, "--watch_jobs: streams to open");
ABSL_FLAG(std::string, watch_status, "processing", "--watch_jobs: the status to time");
ABSL_FLAG(absl::Duration, watch_timeout, absl::Seconds(90), "--watch_jobs: give-up time");
ABSL_FLAG(int64_t, import_mb, 0,
          "Instead of a load run: stream a users NDJSON file of about this many MB through "
          "ImportData and print JSON with its size and duration");

namespace userpilot::gateway::bench {
namespace {

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", c);
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string Ms(int64_t nanos) { return absl::StrFormat("%.4f", static_cast<double>(nanos) / 1e6); }

std::string LatencyJson(const LatencyHistogram& h) {
  return absl::StrCat(
      "{\"count\":", h.count(), ",\"p50\":", Ms(h.ValueAtQuantile(0.5)),
      ",\"p90\":", Ms(h.ValueAtQuantile(0.9)), ",\"p99\":", Ms(h.ValueAtQuantile(0.99)),
      ",\"p999\":", Ms(h.ValueAtQuantile(0.999)), ",\"max\":", Ms(h.max()),
      ",\"min\":", Ms(h.min()), ",\"mean\":", Ms(static_cast<int64_t>(h.mean())), "}");
}

// The distribution as [quantile, ms] pairs on a fixed grid (every percentile, then the tail to
// the maximum), for plotting CDFs without shipping the whole histogram.
std::string CdfJson(const LatencyHistogram& h) {
  std::vector<double> quantiles;
  for (int i = 0; i < 100; ++i) quantiles.push_back(i / 100.0);
  for (double q : {0.995, 0.999, 0.9995, 0.9999, 1.0}) quantiles.push_back(q);
  std::vector<std::string> points;
  for (double q : quantiles)
    points.push_back(absl::StrFormat("[%g,%s]", q, Ms(h.ValueAtQuantile(q))));
  return absl::StrCat("[", absl::StrJoin(points, ","), "]");
}

std::string OpJson(const OpStats& s, const Target& target) {
  std::vector<std::string> codes;
  int64_t ok = 0;
  for (const auto& [code, n] : s.codes)
    codes.push_back(absl::StrCat(Quote(target.CodeName(code)), ":", n));
  ok = s.latency_ok.count();
  return absl::StrCat("{\"completed\":", s.latency.count(), ",\"ok\":", ok,
                      ",\"not_ok\":", s.latency.count() - ok, ",\"codes\":{",
                      absl::StrJoin(codes, ","), "},\"latency_ms\":", LatencyJson(s.latency),
                      ",\"latency_ok_ms\":", LatencyJson(s.latency_ok), "}");
}

struct ProcPhase {
  std::string role;
  pid_t pid;
  ProcSample before;
  std::unique_ptr<RssSampler> sampler;
};

std::string PhaseJson(ProcPhase& p, int64_t calls) {
  p.sampler->Stop();
  const ProcSample after = ReadProc(p.pid);
  if (!p.before.ok || !after.ok) return absl::StrCat(Quote(p.role), ":null");
  const double cpu = after.cpu_seconds - p.before.cpu_seconds;
  // Per thread name: what each kind of thread spent per call (threads that ended during the
  // phase took their counts with them; threads that started count from zero).
  std::vector<std::string> threads;
  for (const auto& [name, cost] : after.by_thread) {
    ProcSample::ThreadCost was;
    if (auto it = p.before.by_thread.find(name); it != p.before.by_thread.end()) was = it->second;
    const double thread_cpu = cost.cpu_seconds - was.cpu_seconds;
    const int64_t switches = cost.context_switches - was.context_switches;
    if (calls <= 0 || (thread_cpu <= 0 && switches <= 0)) continue;
    threads.push_back(
        absl::StrFormat("%s:{\"cpu_s_per_1k_calls\":%.5f,\"context_switches_per_call\":%.3f}",
                        Quote(name), thread_cpu / (static_cast<double>(calls) / 1000),
                        static_cast<double>(switches) / static_cast<double>(calls)));
  }
  return absl::StrFormat(
      "%s:{\"pid\":%d,\"cpu_s\":%.3f,\"cpu_s_per_1k_calls\":%.5f,"
      "\"context_switches_per_call\":%.2f,\"rss_start_mb\":%.2f,\"rss_end_mb\":%.2f,"
      "\"rss_peak_mb\":%.2f,\"threads\":{%s}}",
      Quote(p.role), p.pid, cpu, calls > 0 ? cpu / (static_cast<double>(calls) / 1000) : 0,
      calls > 0 ? static_cast<double>(after.context_switches - p.before.context_switches) /
                      static_cast<double>(calls)
                : 0,
      p.before.rss_bytes / 1048576.0, after.rss_bytes / 1048576.0,
      std::max(p.sampler->peak_bytes(), after.rss_bytes) / 1048576.0, absl::StrJoin(threads, ","));
}

int Main() {
  if (const std::string address = absl::GetFlag(FLAGS_wait_serving); !address.empty()) {
    absl::StatusOr<int64_t> at = WaitServing(address, absl::GetFlag(FLAGS_wait_timeout));
    if (!at.ok()) {
      std::cerr << "upgw-bench: " << at.status().message() << "\n";
      return 1;
    }
    std::cout << *at << "\n";
    return 0;
  }

  if (const std::string file = absl::GetFlag(FLAGS_watch_jobs); !file.empty()) {
    std::ifstream in(file);
    std::vector<std::string> ids;
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) ids.push_back(line);
    }
    absl::StatusOr<WatchResult> watched =
        WatchMany(absl::GetFlag(FLAGS_gateway), ids, absl::GetFlag(FLAGS_watchers),
                  absl::GetFlag(FLAGS_channels), absl::GetFlag(FLAGS_watch_status),
                  absl::GetFlag(FLAGS_watch_timeout));
    if (!watched.ok()) {
      std::cerr << "upgw-bench: " << watched.status().message() << "\n";
      return 1;
    }
    std::cout << "{\"started\":" << watched->started << ",\"arrivals_ns\":["
              << absl::StrJoin(watched->arrivals, ",") << "]}" << std::endl;
    return 0;
  }
  if (const int64_t megabytes = absl::GetFlag(FLAGS_import_mb); megabytes > 0) {
    absl::StatusOr<ImportResult> imported =
        ImportNdjson(absl::GetFlag(FLAGS_gateway), megabytes, absl::Minutes(5));
    if (!imported.ok()) {
      std::cerr << "upgw-bench: " << imported.status().message() << "\n";
      return 1;
    }
    std::cout << absl::StrFormat("{\"bytes\":%d,\"seconds\":%.4f,\"job_id\":%s}\n", imported->bytes,
                                 imported->seconds, Quote(imported->job_id));
    return 0;
  }

  absl::StatusOr<RequestMix> mix = RequestMix::Parse(absl::GetFlag(FLAGS_mix));
  if (!mix.ok()) {
    std::cerr << "upgw-bench: " << mix.status().message() << "\n";
    return 2;
  }
  const std::string mode = absl::GetFlag(FLAGS_mode);
  if (mode != "open" && mode != "closed") {
    std::cerr << "upgw-bench: --mode must be open or closed\n";
    return 2;
  }
  LoadOptions load;
  load.open_loop = mode == "open";
  load.rate = absl::GetFlag(FLAGS_rate);
  load.concurrency = absl::GetFlag(FLAGS_concurrency);
  load.max_inflight = absl::GetFlag(FLAGS_max_inflight);
  load.duration = absl::GetFlag(FLAGS_duration);
  load.warmup = absl::GetFlag(FLAGS_warmup);
  load.max_calls = absl::GetFlag(FLAGS_max_calls);
  load.deadline = absl::GetFlag(FLAGS_deadline);
  if (load.rate <= 0 || load.concurrency <= 0 || load.max_inflight <= 0 || load.max_calls <= 0 ||
      load.duration <= absl::ZeroDuration() || load.deadline <= absl::ZeroDuration()) {
    std::cerr << "upgw-bench: rate, concurrency, max_inflight, max_calls, duration and deadline "
                 "must be positive\n";
    return 2;
  }

  std::vector<std::string> results;
  const std::vector<std::string> names =
      absl::StrSplit(absl::GetFlag(FLAGS_targets), ',', absl::SkipWhitespace());
  for (const std::string& name : names) {
    std::unique_ptr<Target> target;
    if (name == "gateway") {
      GrpcTargetOptions options;
      options.address = absl::GetFlag(FLAGS_gateway);
      options.channels = absl::GetFlag(FLAGS_channels);
      options.caller = absl::GetFlag(FLAGS_caller);
      options.deadline = load.deadline;
      auto t = GrpcTarget::Connect(options, absl::Seconds(10));
      if (!t.ok()) {
        std::cerr << "upgw-bench: " << t.status().message() << "\n";
        return 1;
      }
      target = std::move(*t);
    } else if (name == "direct") {
      HttpTargetOptions options;
      options.base_url = absl::GetFlag(FLAGS_direct_url);
      options.api_key = absl::GetFlag(FLAGS_api_key);
      options.connections = absl::GetFlag(FLAGS_connections);
      options.deadline = load.deadline;
      if (options.base_url.empty()) {
        std::cerr << "upgw-bench: the direct target needs --direct_url\n";
        return 2;
      }
      auto t = HttpTarget::Create(options);
      if (!t.ok()) {
        std::cerr << "upgw-bench: " << t.status().message() << "\n";
        return 1;
      }
      target = std::move(*t);
    } else {
      std::cerr << "upgw-bench: unknown target '" << name << "' (gateway, direct)\n";
      return 2;
    }

    std::vector<ProcPhase> procs;
    for (auto [role, pid] :
         {std::pair<std::string, pid_t>{"gateway", absl::GetFlag(FLAGS_gateway_pid)},
          {"emulator", absl::GetFlag(FLAGS_emulator_pid)},
          {"loadgen", 0}}) {
      if (role != "loadgen" && pid == 0) continue;
      procs.push_back(ProcPhase{role, pid, ReadProc(pid), std::make_unique<RssSampler>(pid)});
    }
    const RunStats stats = RunLoad(*target, *mix, load);
    std::vector<std::string> proc_json;
    for (ProcPhase& p : procs) proc_json.push_back(PhaseJson(p, stats.sent));

    std::vector<std::string> by_op;
    for (const auto& [op, s] : stats.by_op)
      by_op.push_back(absl::StrCat(Quote(OpName(op)), ":", OpJson(s, *target)));
    const double window = stats.window_seconds;
    const int64_t completed = stats.total.latency.count();
    const int64_t ok = stats.total.latency_ok.count();
    results.push_back(absl::StrFormat(
        "{\"target\":%s,\"sent\":%d,\"measured\":%d,\"unfinished\":%d,\"window_s\":%.3f,"
        "\"completed_per_s\":%.1f,\"ok_per_s\":%.1f,\"late_sends\":%d,\"max_send_lag_ms\":%s,"
        "\"total\":%s,\"latency_cdf_ms\":%s,\"by_op\":{%s},\"processes\":{%s}}",
        Quote(target->name()), stats.sent, stats.measured, stats.unfinished, window,
        window > 0 ? completed / window : 0, window > 0 ? ok / window : 0, stats.late_sends,
        Ms(stats.max_send_lag_ns), OpJson(stats.total, *target), CdfJson(stats.total.latency),
        absl::StrJoin(by_op, ","), absl::StrJoin(proc_json, ",")));
    const LatencyHistogram& h = stats.total.latency;
    std::cerr << absl::StrFormat(
        "upgw-bench: %-7s %s: %d calls measured, %.0f/s completed, %d ok, %d not ok, %d "
        "unfinished; latency ms p50 %.3f p90 %.3f p99 %.3f p99.9 %.3f max %.3f\n",
        target->name(), mode, stats.measured, window > 0 ? completed / window : 0, ok,
        completed - ok, stats.unfinished, h.ValueAtQuantile(0.5) / 1e6,
        h.ValueAtQuantile(0.9) / 1e6, h.ValueAtQuantile(0.99) / 1e6, h.ValueAtQuantile(0.999) / 1e6,
        h.max() / 1e6);
  }

  const std::string json = absl::StrFormat(
      "{\"label\":%s,\"config\":{\"mode\":%s,\"rate\":%.1f,\"concurrency\":%d,\"duration_s\":%.3f,"
      "\"warmup_s\":%.3f,\"max_calls\":%d,\"deadline_s\":%.3f,\"mix\":%s,\"caller\":%s,"
      "\"channels\":%d,\"connections\":%d},\"results\":[%s]}\n",
      Quote(absl::GetFlag(FLAGS_label)), Quote(mode), load.rate, load.concurrency,
      absl::ToDoubleSeconds(load.duration), absl::ToDoubleSeconds(load.warmup), load.max_calls,
      absl::ToDoubleSeconds(load.deadline), Quote(mix->ToString()),
      Quote(absl::GetFlag(FLAGS_caller)), absl::GetFlag(FLAGS_channels),
      absl::GetFlag(FLAGS_connections), absl::StrJoin(results, ","));
  if (const std::string out = absl::GetFlag(FLAGS_out); !out.empty()) {
    std::ofstream file(out);
    file << json;
    if (!file.good()) {
      std::cerr << "upgw-bench: cannot write " << out << "\n";
      return 1;
    }
  } else {
    std::cout << json;
  }
  return 0;
}

}  // namespace
}  // namespace userpilot::gateway::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Load generator for userpilot-gateway benchmarks (gRPC and direct REST). See BENCHMARKS.md.");
  absl::ParseCommandLine(argc, argv);
  return userpilot::gateway::bench::Main();
}
