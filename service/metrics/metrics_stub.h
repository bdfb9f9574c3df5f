// MetricsStub: the UserpilotStub decorator that counts what reaches Userpilot - requests by
// endpoint and HTTP status class, their latency, and errors by ErrorInfo reason - into
// UpstreamMetrics.
//
// Stack position: directly around the HTTP stub, innermost of the decorators,
//     RetryingStub -> RateLimitedStub -> MetricsStub -> HttpUserpilotStub
// so that each HTTP attempt (retries included) is one request, its latency is the attempt's,
// and the gateway's own refusals (budget, circuit breaker) never count as upstream traffic.
// The status class and error reason come from the attempt's own facts (its HTTP status and
// reason, as the error mapping set them).
//
// Lifetimes: `inner` is shared with calls in flight; `metrics` must outlive the stub and every
// call it started.
//
// Thread-safety: as UserpilotStub. The callback runs where the inner stub runs it (the HTTP
// event thread), after one short metrics update.
#ifndef USERPILOT_GATEWAY_SERVICE_METRICS_METRICS_STUB_H_
#define USERPILOT_GATEWAY_SERVICE_METRICS_METRICS_STUB_H_

#include <functional>
#include <memory>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "service/metrics/gateway_metrics.h"
#include "service/upstream/forwarding_stub.h"

namespace userpilot::gateway {

class MetricsStub final : public ForwardingStub<MetricsStub> {
 public:
  // Creates every endpoint's series at zero (UpstreamMetrics::PrecreateEndpoints). `clock`
  // times the attempts.
  MetricsStub(std::shared_ptr<UserpilotStub> inner, UpstreamMetrics& metrics,
              std::function<absl::Time()> clock = absl::Now);

  // Every RPC (ForwardingStub's hook): counted under the endpoint of the call's route.
  template <typename Rpc>
  void Call(const CallOptions& options, const typename Rpc::Request& request,
            StubCallback<typename Rpc::Response> done);

 private:
  UpstreamMetrics& metrics_;
  const std::function<absl::Time()> clock_;
};

// Instantiated in the .cc file, where Call<Rpc> is defined.
extern template class RpcDispatcher<MetricsStub>;

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_METRICS_METRICS_STUB_H_
