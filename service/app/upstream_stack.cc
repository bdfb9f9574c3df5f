#include "service/app/upstream_stack.h"

#include <utility>

#include "service/metrics/gateway_metrics.h"
#include "service/metrics/metrics_stub.h"
#include "service/ratelimit/job_lane.h"
#include "service/ratelimit/rate_limited_stub.h"
#include "service/retry/retrying_stub.h"
#include "service/upstream/http_userpilot_stub.h"

namespace userpilot::gateway {

UpstreamStack MakeUpstreamStack(UpstreamStackOptions options, HttpClient& http,
                                Scheduler& scheduler, const Budgets* budgets,
                                UpstreamMetrics* metrics) {
  auto clock = [&scheduler] { return scheduler.Now(); };
  const std::string host = options.upstream.base_url;
  std::shared_ptr<UserpilotStub> stub =
      std::make_shared<HttpUserpilotStub>(http, std::move(options.upstream), clock);
  if (metrics != nullptr) stub = std::make_shared<MetricsStub>(std::move(stub), *metrics, clock);
  if (budgets != nullptr) stub = std::make_shared<RateLimitedStub>(std::move(stub), *budgets);
  UpstreamStack stack;
  if (options.retry.has_value()) {
    options.retry->upstream_host = host;
    auto retrying =
        std::make_shared<RetryingStub>(std::move(stub), scheduler, *std::move(options.retry));
    stack.retrying = retrying.get();
    stub = std::move(retrying);
  }
  if (options.job_lanes.has_value()) {
    auto lanes = std::make_shared<JobLaneStub>(std::move(stub), scheduler, *options.job_lanes);
    stack.job_lanes = lanes.get();
    stub = std::move(lanes);
  }
  stack.stub = std::move(stub);
  return stack;
}

KeyProbe MakeKeyCheckProbe(UpstreamOptions upstream, HttpClient& http, Scheduler& scheduler,
                           UpstreamMetrics* metrics) {
  auto clock = [&scheduler] { return scheduler.Now(); };
  auto stub = std::make_shared<HttpUserpilotStub>(http, std::move(upstream), clock);
  return [stub = std::move(stub), clock, metrics](const CallOptions& options,
                                                  absl::AnyInvocable<void(CallStatus) &&> done) {
    const absl::Time start = clock();
    stub->CheckKey(options,
                   [clock, metrics, start, done = std::move(done)](CallStatus answer) mutable {
                     if (metrics != nullptr) {
                       metrics->RecordAttempt(KeyCheckEndpoint::kEndpoint, answer.status(),
                                              answer.facts(), clock() - start);
                     }
                     std::move(done)(std::move(answer));
                   });
  };
}

}  // namespace userpilot::gateway
