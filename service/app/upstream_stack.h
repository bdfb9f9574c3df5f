// MakeUpstreamStack: the one place that composes the UserpilotStub layers, and so the one place
// that states their order. The gateway (gateway.h) and every test that needs a stack build it
// here.
//
// Outermost first (the order a call passes through them):
//   JobLaneStub        one bulk job and one import job at a time: a bulk or import call waits
//                      for the lane's running job (service/ratelimit/job_lane.h); when
//                      `job_lanes` is set
//   RetryingStub       retry policy, backoff, retry budget, circuit breaker (service/retry);
//                      when `retry` is set
//   RateLimitedStub    one admission per attempt from the call's budget (service/ratelimit);
//                      when budgets are given
//   MetricsStub        counts and times every attempt that reaches HTTP (service/metrics);
//                      when metrics are given
//   HttpUserpilotStub  the REST mapping over the HTTP client (service/upstream)
// so every attempt, retries included, is admitted by a budget and never exceeds Userpilot's
// limits; the breaker refuses before a budget is asked; the upstream metrics count exactly what
// Userpilot receives (never the gateway's own refusals); and every layer's facts reach the
// caller in one Result.
//
// The key check (upstream/key_checker.h) is not an RPC and passes none of these layers but the
// metrics: MakeKeyCheckProbe below builds what it sends through.
//
// The clock of every layer is the scheduler's (Scheduler::Now), so a FakeScheduler moves the
// whole stack's time at once.
//
// Thread-safety: MakeUpstreamStack is a plain function; the stack it returns is as thread-safe
// as UserpilotStub requires.
#ifndef USERPILOT_GATEWAY_SERVICE_APP_UPSTREAM_STACK_H_
#define USERPILOT_GATEWAY_SERVICE_APP_UPSTREAM_STACK_H_

#include <memory>
#include <optional>

#include "service/common/scheduler.h"
#include "service/http/http_client.h"
#include "service/ratelimit/rate_limit_options.h"
#include "service/retry/retry_options.h"
#include "service/upstream/key_checker.h"
#include "service/upstream/upstream_options.h"
#include "service/upstream/userpilot_stub.h"

namespace userpilot::gateway {

class JobLaneStub;
class RetryingStub;
struct Budgets;
class UpstreamMetrics;

// What the stack needs to know, and nothing else.
struct UpstreamStackOptions {
  // Where and how to reach Userpilot.
  UpstreamOptions upstream;
  // The retry layer's options (its `upstream_host` is set to upstream.base_url, the host the
  // breaker guards); nullopt: no retry layer, every call is one attempt.
  std::optional<RetryOptions> retry = RetryOptions();
  // The job lanes' options; nullopt: no lanes (bulk and import calls go straight through, and a
  // second job meets Userpilot's 409).
  std::optional<JobLaneOptions> job_lanes;
};

struct UpstreamStack {
  std::shared_ptr<UserpilotStub> stub;  // The outermost layer: what callers use.
  RetryingStub* retrying = nullptr;     // Inside `stub` when there is a retry layer.
  JobLaneStub* job_lanes = nullptr;     // `stub` itself when there are lanes.
};

// Builds the stack. `http` and `scheduler` must outlive it and every call made through it;
// `budgets` (null: no rate limiting) and `metrics` (null: not counted) must outlive it. Options
// must be valid (configuration checks them at start-up; the retry layer aborts otherwise).
UpstreamStack MakeUpstreamStack(UpstreamStackOptions options, HttpClient& http,
                                Scheduler& scheduler, const Budgets* budgets = nullptr,
                                UpstreamMetrics* metrics = nullptr);

// The key check's probe: one `GET /v1/validate` attempt per check (KeyCheckEndpoint) through an
// HttpUserpilotStub of its own over `http`, the client every call goes through (same headers,
// per-attempt cap and error mapping), timed and counted in `metrics` (null: not counted) under
// its endpoint like any attempt. No budget, retry layer, breaker or job lane: Userpilot
// documents no limit for the endpoint, and a check that finds no verdict waits for the next.
// `http`, `scheduler` and `metrics` must outlive the probe and its checks.
KeyProbe MakeKeyCheckProbe(UpstreamOptions upstream, HttpClient& http, Scheduler& scheduler,
                           UpstreamMetrics* metrics = nullptr);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_APP_UPSTREAM_STACK_H_
