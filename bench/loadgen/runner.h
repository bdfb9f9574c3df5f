// RunLoad: drives one Target with a RequestMix, open-loop (constant rate) or closed-loop
// (a fixed number of calls always outstanding), and measures every call.
//
// Open loop: call i is due at start + i / rate. Its latency is measured from that *intended*
// time, not from when it was actually sent, so a stall in the target (or in this process) shows
// up as latency of every call that should have gone out meanwhile (no coordinated omission).
// Closed loop: latency is measured from the actual send; the number that matters there is the
// completed calls per second.
//
// Only calls due (open) or sent (closed) inside the measurement window
// [start + warmup, start + warmup + duration) are counted; warm-up calls are sent but not
// reported. A run ends when the window closes or max_calls have been sent, then waits for calls
// in flight (at most the call deadline plus 2 s).
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "absl/time/time.h"
#include "bench/loadgen/histogram.h"
#include "bench/loadgen/request_mix.h"
#include "bench/loadgen/target.h"

namespace userpilot::gateway::bench {

struct LoadOptions {
  bool open_loop = true;
  double rate = 500;        // calls/s, open loop
  int concurrency = 16;     // calls outstanding, closed loop
  int max_inflight = 4096;  // open loop: the pacer waits (and latency grows) beyond this
  absl::Duration warmup = absl::Seconds(1);
  absl::Duration duration = absl::Seconds(10);
  int64_t max_calls = 10'000'000;  // sent, warm-up included
  absl::Duration deadline = absl::Seconds(5);
};

struct OpStats {
  LatencyHistogram latency;     // every completed call, whatever its status
  LatencyHistogram latency_ok;  // successful calls only
  std::map<int, int64_t> codes;
};

struct RunStats {
  std::map<Op, OpStats> by_op;
  OpStats total;
  int64_t sent = 0;             // all calls started, warm-up included
  int64_t measured = 0;         // calls inside the window
  int64_t unfinished = 0;       // calls that never completed before the drain gave up
  double window_seconds = 0;    // length of the measurement window actually used
  int64_t late_sends = 0;       // open loop: calls sent more than 1 ms after they were due
  int64_t max_send_lag_ns = 0;  // open loop: the worst such lag
};

RunStats RunLoad(Target& target, const RequestMix& mix, const LoadOptions& options);

}  // namespace userpilot::gateway::bench
