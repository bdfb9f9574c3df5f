// The upstream's typical answer time, learnt from recent answers: what CurlHttpClient uses to
// tell whether a request waiting in its queue can still be answered before its deadline.
//
// Without it, every queued request is sent once a slot frees, however little of its deadline
// is left; against a slow upstream each such request then holds a slot until its deadline
// passes, answers nothing, and keeps the requests behind it waiting: the queue collapses
// (issue 13 item 10). With it, a request that has waited and has less time left than the
// typical answer takes is answered DEADLINE_EXCEEDED from the queue, never sent, and its slot
// goes to one that can still make it.
//
// What is measured: the time from handing a request to libcurl to its complete answer, for
// every request that got an HTTP answer (any status). Streamed uploads are left out: their time
// depends on their size, not on how fast the upstream answers. Failures without an answer
// (timeouts, refused connections) are left out too: their time says when the request gave up,
// not how long the upstream takes.
//
// The statistic: the geometric mean of recent answer times, i.e. exp of an exponentially
// weighted moving average of log(latency), each new answer weighing kWeight (1/16). The first
// kMinSamples answers are averaged equally (so the first one does not stand for all), and
// until there are that many the estimate is zero (nothing is refused on too little evidence).
// Why this statistic:
//   * answer times are skewed (a long tail above a typical value); for the log-normal shape
//     they usually have, the geometric mean is the median, a "typical" answer, and one
//     outlier moves it little: an answer 10 times slower than the rest moves the estimate by
//     10^(1/16), 15%, and the effect halves every 11 answers;
//   * it follows a change in ~16 answers, which under load (when the queue is not empty, and
//     only then does the estimate decide anything) takes well under a second at Userpilot's
//     answer times and the default slot count;
//   * it costs O(1) time and memory per answer (a log and an exp) and O(1) per decision (the
//     estimate is kept ready).
// A request that finds a free slot is always sent, whatever the estimate: so the estimate keeps
// learning from fresh answers even when it was too pessimistic, and it can never stop all
// traffic (it only decides between requests competing for slots).
//
// Thread-safety: none; CurlHttpClient uses one from its event thread only.
#ifndef USERPILOT_GATEWAY_SERVICE_HTTP_LATENCY_ESTIMATE_H_
#define USERPILOT_GATEWAY_SERVICE_HTTP_LATENCY_ESTIMATE_H_

#include <cstdint>

#include "absl/time/time.h"

namespace userpilot::gateway::http_internal {

class LatencyEstimate {
 public:
  // The weight of each new answer once kMinSamples answers were seen.
  static constexpr double kWeight = 1.0 / 16;
  // Answers needed before the estimate is used.
  static constexpr int64_t kMinSamples = 16;

  // Counts one answer that took `latency` (negative counts as zero).
  void Add(absl::Duration latency);

  // The typical answer time; zero until kMinSamples answers were added.
  absl::Duration typical() const { return typical_; }

  int64_t samples() const { return samples_; }

 private:
  int64_t samples_ = 0;
  double log_mean_ = 0;  // Of latencies in seconds, each floored at 1 µs.
  absl::Duration typical_ = absl::ZeroDuration();
};

}  // namespace userpilot::gateway::http_internal

#endif  // USERPILOT_GATEWAY_SERVICE_HTTP_LATENCY_ESTIMATE_H_
