#include "service/metrics/metrics_stub.h"

#include <utility>

namespace userpilot::gateway {

MetricsStub::MetricsStub(std::shared_ptr<UserpilotStub> inner, UpstreamMetrics& metrics,
                         std::function<absl::Time()> clock)
    : ForwardingStub(std::move(inner)), metrics_(metrics), clock_(std::move(clock)) {
  metrics_.PrecreateEndpoints();
}

template <typename Rpc>
void MetricsStub::Call(const CallOptions& options, const typename Rpc::Request& request,
                       StubCallback<typename Rpc::Response> done) {
  const absl::Time start = clock_();
  Forward<Rpc>(options, request,
               // Not `this`: the stub may go before its calls' answers come.
               [&metrics = metrics_, clock = clock_, endpoint = Routing<Rpc>::For(request).endpoint,
                start, done = std::move(done)](Result<typename Rpc::Response> result) mutable {
                 metrics.RecordAttempt(endpoint, result.status(), result.facts(), clock() - start);
                 std::move(done)(std::move(result));
               });
}

// Every method of the interface, each calling its row's Call (declared extern in the header).
template class RpcDispatcher<MetricsStub>;

}  // namespace userpilot::gateway
