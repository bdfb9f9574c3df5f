#include "service/metrics/metered_http_client.h"

#include <utility>

namespace userpilot::gateway {

MeteredHttpClient::MeteredHttpClient(HttpClient& inner, UpstreamMetrics& metrics)
    : inner_(inner),
      sent_bytes_(metrics.sent_bytes.Add({})),
      received_bytes_(metrics.received_bytes.Add({})) {}

void MeteredHttpClient::Send(HttpRequest request, Callback done) {
  const double body_bytes = request.body_source != nullptr
                                ? static_cast<double>(request.body_source->size())
                                : static_cast<double>(request.body.size());
  // The callback holds the counters (owned by the registry), not this object.
  inner_.Send(std::move(request), [&sent = sent_bytes_, &received = received_bytes_, body_bytes,
                                   done = std::move(done)](HttpResult result) mutable {
    if (result.request_may_have_been_sent) sent.Increment(body_bytes);
    if (result.transport_status.ok()) {
      received.Increment(static_cast<double>(result.response.body.size()));
    }
    std::move(done)(std::move(result));
  });
}

MetricsRegistry::CollectHook ExportHttpClientLoad(MetricsRegistry& registry,
                                                  UpstreamMetrics& metrics,
                                                  std::function<CurlHttpClientStats()> stats,
                                                  size_t max_in_flight) {
  prometheus::Gauge& in_flight = metrics.http_in_flight.Add({});
  prometheus::Gauge& queued = metrics.http_queued.Add({});
  prometheus::Gauge& max = metrics.http_max_in_flight.Add({});
  prometheus::Counter& queue_full = metrics.http_queue_full.Add({});
  max.Set(static_cast<double>(max_in_flight));
  return registry.AddCollectHook([stats = std::move(stats), &in_flight, &queued, &queue_full] {
    const CurlHttpClientStats s = stats();
    in_flight.Set(static_cast<double>(s.in_flight));
    queued.Set(static_cast<double>(s.queued));
    SetCounterTo(queue_full, static_cast<double>(s.rejected_queue_full));
  });
}

}  // namespace userpilot::gateway
