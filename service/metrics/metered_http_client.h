// HTTP-level upstream metrics: bytes on the wire (a decorator of the HttpClient seam) and the
// HTTP client's load (read from CurlHttpClient::Stats() at scrape time).
//
//   MeteredHttpClient      wraps the HttpClient that HttpUserpilotStub sends through:
//                          userpilot_gateway_upstream_sent_bytes_total (request bodies, in
//                          memory or a body_source, of requests that may have reached
//                          Userpilot, once per attempt; headers and TLS not counted) and
//                          _received_bytes_total (response bodies).
//   ExportHttpClientLoad   a collect hook: userpilot_gateway_upstream_http_in_flight, _queued,
//                          _max_in_flight and _queue_full_total.
//
// Thread-safety: MeteredHttpClient is as thread-safe as the client it wraps; the callback runs
// where the wrapped client runs it. `inner` must outlive it; `metrics` must outlive its
// requests.
#ifndef USERPILOT_GATEWAY_SERVICE_METRICS_METERED_HTTP_CLIENT_H_
#define USERPILOT_GATEWAY_SERVICE_METRICS_METERED_HTTP_CLIENT_H_

#include <cstddef>
#include <functional>

#include "service/http/curl_http_client.h"
#include "service/http/http_client.h"
#include "service/metrics/gateway_metrics.h"
#include "service/metrics/metrics_registry.h"

namespace userpilot::gateway {

class MeteredHttpClient final : public HttpClient {
 public:
  // Creates the byte counters at zero.
  MeteredHttpClient(HttpClient& inner, UpstreamMetrics& metrics);

  void Send(HttpRequest request, Callback done) override;

 private:
  HttpClient& inner_;
  prometheus::Counter& sent_bytes_;
  prometheus::Counter& received_bytes_;
};

// Sets the HTTP load gauges from `stats()` at every scrape; `max_in_flight` is the client's
// configured limit. `stats` must stay callable until the returned hook is destroyed.
[[nodiscard]] MetricsRegistry::CollectHook ExportHttpClientLoad(
    MetricsRegistry& registry, UpstreamMetrics& metrics, std::function<CurlHttpClientStats()> stats,
    size_t max_in_flight);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_METRICS_METERED_HTTP_CLIENT_H_
