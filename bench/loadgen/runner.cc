#include "bench/loadgen/runner.h"

#include <sys/prctl.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

namespace userpilot::gateway::bench {
namespace {

using Clock = std::chrono::steady_clock;

int64_t Nanos(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}
Clock::duration ToClock(absl::Duration d) {
  return std::chrono::duration_cast<Clock::duration>(absl::ToChronoNanoseconds(d));
}

// Shared by the driver and the completion callbacks.
class Recorder {
 public:
  Recorder(Clock::time_point window_start, Clock::time_point window_end)
      : window_start_(window_start), window_end_(window_end) {}

  bool InWindow(Clock::time_point t) const { return t >= window_start_ && t < window_end_; }

  void Started() {
    std::lock_guard<std::mutex> lock(mu_);
    ++inflight_;
    ++sent_;
  }
  void Finished(Op op, Clock::time_point from, bool measured, Outcome outcome) {
    const int64_t latency = Nanos(Clock::now() - from);
    std::lock_guard<std::mutex> lock(mu_);
    if (measured) {
      for (OpStats* s : {&stats_.by_op[op], &stats_.total}) {
        s->latency.Record(latency);
        if (outcome.ok) s->latency_ok.Record(latency);
        ++s->codes[outcome.code];
      }
      ++stats_.measured;
    }
    --inflight_;
    cv_.notify_all();
  }
  // Waits until fewer than `limit` calls are in flight, or `until`. False on timeout.
  bool WaitBelow(int64_t limit, Clock::time_point until) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_until(lock, until, [&] { return inflight_ < limit; });
  }
  int64_t sent() {
    std::lock_guard<std::mutex> lock(mu_);
    return sent_;
  }
  RunStats Take(int64_t* inflight) {
    std::lock_guard<std::mutex> lock(mu_);
    *inflight = inflight_;
    stats_.sent = sent_;
    return std::move(stats_);
  }

 private:
  const Clock::time_point window_start_;
  const Clock::time_point window_end_;
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t inflight_ = 0;
  int64_t sent_ = 0;
  RunStats stats_;
};

// Closed loop: every completion starts the next call until `stop`.
// Callbacks hold it (and the Recorder) by shared_ptr, so a call that completes after RunLoad
// gave up on it touches nothing freed.
struct ClosedLoop : std::enable_shared_from_this<ClosedLoop> {
  ClosedLoop(Target* t, const RequestMix* m, std::shared_ptr<Recorder> r, int64_t max)
      : target(t), mix(m), recorder(std::move(r)), max_calls(max) {}
  Target* target;
  const RequestMix* mix;
  std::shared_ptr<Recorder> recorder;
  int64_t max_calls;
  std::atomic<uint64_t> next_seq{0};
  std::atomic<bool> stop{false};

  void Launch() {
    if (stop.load()) return;
    const uint64_t seq = next_seq.fetch_add(1);
    if (static_cast<int64_t>(seq) >= max_calls) return;
    const Op op = mix->OpFor(seq);
    const Clock::time_point sent = Clock::now();
    const bool measured = recorder->InWindow(sent);
    recorder->Started();
    target->Start(op, seq, [self = shared_from_this(), op, sent, measured](Outcome outcome) {
      self->recorder->Finished(op, sent, measured, outcome);
      self->Launch();
    });
  }
};

}  // namespace

RunStats RunLoad(Target& target, const RequestMix& mix, const LoadOptions& options) {
  // Sleeps of the pacer end within microseconds instead of the default 50 us slack.
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
  const Clock::time_point start = Clock::now() + std::chrono::milliseconds(5);
  const Clock::time_point window_start = start + ToClock(options.warmup);
  const Clock::time_point end = window_start + ToClock(options.duration);
  auto recorder = std::make_shared<Recorder>(window_start, end);
  int64_t late = 0;
  int64_t max_lag = 0;
  Clock::time_point stopped_at = end;

  if (options.open_loop) {
    const double period_ns = 1e9 / std::max(options.rate, 1e-3);
    for (int64_t i = 0; i < options.max_calls; ++i) {
      const Clock::time_point due =
          start +
          std::chrono::nanoseconds(static_cast<int64_t>(period_ns * static_cast<double>(i)));
      if (due >= end) break;
      std::this_thread::sleep_until(due);
      if (!recorder->WaitBelow(options.max_inflight, end)) {
        stopped_at = Clock::now();
        break;
      }
      const int64_t lag = Nanos(Clock::now() - due);
      if (lag > 1'000'000) ++late;
      max_lag = std::max(max_lag, lag);
      const Op op = mix.OpFor(static_cast<uint64_t>(i));
      const bool measured = recorder->InWindow(due);
      recorder->Started();
      target.Start(op, static_cast<uint64_t>(i), [recorder, op, due, measured](Outcome outcome) {
        recorder->Finished(op, due, measured, outcome);
      });
      if (i + 1 == options.max_calls) {
        stopped_at = std::min(end, due + std::chrono::nanoseconds(static_cast<int64_t>(period_ns)));
      }
    }
  } else {
    auto loop = std::make_shared<ClosedLoop>(&target, &mix, recorder, options.max_calls);
    for (int i = 0; i < std::max(1, options.concurrency); ++i) loop->Launch();
    // Wake early when max_calls is reached before the window ends.
    while (Clock::now() < end && recorder->sent() < options.max_calls) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    stopped_at = std::min(Clock::now(), end);
    loop->stop = true;
    recorder->WaitBelow(1, Clock::now() + ToClock(options.deadline + absl::Seconds(2)));
    int64_t inflight = 0;
    RunStats stats = recorder->Take(&inflight);
    stats.unfinished = inflight;
    stats.window_seconds = std::max(0.0, Nanos(stopped_at - window_start) / 1e9);
    return stats;
  }
  recorder->WaitBelow(1, Clock::now() + ToClock(options.deadline + absl::Seconds(2)));
  int64_t inflight = 0;
  RunStats stats = recorder->Take(&inflight);
  stats.unfinished = inflight;
  stats.window_seconds = std::max(0.0, Nanos(stopped_at - window_start) / 1e9);
  stats.late_sends = late;
  stats.max_send_lag_ns = max_lag;
  return stats;
}

}  // namespace userpilot::gateway::bench
