// UpstreamMetrics (gateway_metrics.h): families, status classes and error reasons.
#include <string>

#include "service/metrics/gateway_metrics.h"
#include "service/metrics/metrics_registry.h"
#include "service/upstream/upstream_rpcs.h"

namespace userpilot::gateway {
const std::vector<double>& UpstreamMetrics::DurationBuckets() {
  static const auto* const kBuckets = new std::vector<double>{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
  return *kBuckets;
}

UpstreamMetrics::UpstreamMetrics(prometheus::Registry& registry)
    : requests(prometheus::BuildCounter()
                   .Name("userpilot_gateway_upstream_requests_total")
                   .Help("HTTP attempts sent to Userpilot (retries included), by endpoint and "
                         "response status class (transport: no HTTP answer).")
                   .Register(registry)),
      request_duration_seconds(
          prometheus::BuildHistogram()
              .Name("userpilot_gateway_upstream_request_duration_seconds")
              .Help("Duration of one HTTP attempt to Userpilot, HTTP client queue included.")
              .Register(registry)),
      errors(prometheus::BuildCounter()
                 .Name("userpilot_gateway_upstream_errors_total")
                 .Help("Failed HTTP attempts to Userpilot, by endpoint and ErrorInfo reason "
                       "(UPSTREAM_CREDENTIALS_REJECTED: Userpilot refused the gateway's key).")
                 .Register(registry)),
      sent_bytes(prometheus::BuildCounter()
                     .Name("userpilot_gateway_upstream_sent_bytes_total")
                     .Help("Request body bytes of HTTP attempts that may have reached "
                           "Userpilot.")
                     .Register(registry)),
      received_bytes(prometheus::BuildCounter()
                         .Name("userpilot_gateway_upstream_received_bytes_total")
                         .Help("Response body bytes received from Userpilot.")
                         .Register(registry)),
      http_in_flight(prometheus::BuildGauge()
                         .Name("userpilot_gateway_upstream_http_in_flight")
                         .Help("HTTP requests handed to libcurl and not yet complete.")
                         .Register(registry)),
      http_queued(prometheus::BuildGauge()
                      .Name("userpilot_gateway_upstream_http_queued")
                      .Help("HTTP requests waiting for an in-flight slot.")
                      .Register(registry)),
      http_max_in_flight(prometheus::BuildGauge()
                             .Name("userpilot_gateway_upstream_http_max_in_flight")
                             .Help("In-flight HTTP request limit (--max_inflight_upstream).")
                             .Register(registry)),
      http_queue_full(prometheus::BuildCounter()
                          .Name("userpilot_gateway_upstream_http_queue_full_total")
                          .Help("HTTP requests refused, never sent, because the HTTP "
                                "client's queue was full.")
                          .Register(registry)) {}

void UpstreamMetrics::PrecreateEndpoints() {
  for (absl::string_view endpoint : AllEndpoints()) {
    requests.Add({{"endpoint", std::string(endpoint)}, {"status_class", "2xx"}});
    request_duration_seconds.Add({{"endpoint", std::string(endpoint)}}, DurationBuckets());
  }
}

void UpstreamMetrics::RecordAttempt(absl::string_view endpoint, const absl::Status& status,
                                    const CallFacts& facts, absl::Duration elapsed) {
  const std::string endpoint_label(endpoint);
  requests
      .Add({{"endpoint", endpoint_label},
            {"status_class", std::string(UpstreamStatusClass(status, facts))}})
      .Increment();
  request_duration_seconds.Add({{"endpoint", endpoint_label}}, DurationBuckets())
      .Observe(absl::ToDoubleSeconds(elapsed));
  if (!status.ok()) {
    errors.Add({{"endpoint", endpoint_label}, {"reason", std::string(UpstreamErrorReason(facts))}})
        .Increment();
  }
}

KeyCheckMetrics::KeyCheckMetrics(prometheus::Registry& registry)
    : key_valid(prometheus::BuildGauge()
                    .Name("userpilot_gateway_upstream_key_valid")
                    .Help("1 while Userpilot accepts the gateway's API key (or no check has "
                          "refused it yet), 0 after a check was answered 401/403 (health is "
                          "then NOT_SERVING).")
                    .Register(registry)),
      key_checks(prometheus::BuildCounter()
                     .Name("userpilot_gateway_upstream_key_checks_total")
                     .Help("Checks of the API key against Userpilot, by result: accepted, "
                           "rejected (401/403), inconclusive (no verdict: 5xx, 429, any other "
                           "status, network, timeout).")
                     .Register(registry)) {}

void KeyCheckMetrics::Enable() {
  key_valid.Add({}).Set(1);
  for (const char* result : {"accepted", "rejected", "inconclusive"}) {
    key_checks.Add({{"result", result}});
  }
}

void KeyCheckMetrics::RecordCheck(absl::string_view result) {
  key_checks.Add({{"result", std::string(result)}}).Increment();
  if (result == "accepted") key_valid.Add({}).Set(1);
  if (result == "rejected") key_valid.Add({}).Set(0);
}

LogMetrics::LogMetrics(prometheus::Registry& registry)
    : dropped_lines(prometheus::BuildCounter()
                        .Name("userpilot_gateway_log_lines_dropped_total")
                        .Help("Log lines dropped because the log writer's queue was full (stderr "
                              "stalled or slower than the lines arrive); calls never wait for "
                              "the log.")
                        .Register(registry)),
      queue_max_lines(prometheus::BuildGauge()
                          .Name("userpilot_gateway_log_queue_max_lines")
                          .Help("The bound of the log writer's queue, in lines.")
                          .Register(registry)) {}

void LogMetrics::Update(uint64_t dropped, size_t queue_lines) {
  SetCounterTo(dropped_lines.Add({}), static_cast<double>(dropped));
  queue_max_lines.Add({}).Set(static_cast<double>(queue_lines));
}

absl::string_view UpstreamStatusClass(const absl::Status& status, const CallFacts& facts) {
  if (status.ok()) return "2xx";
  const int code = facts.upstream.http_status;
  if (code == 0) return "transport";
  if (code >= 200 && code <= 299) return "2xx";
  if (code >= 400 && code <= 499) return "4xx";
  if (code >= 500 && code <= 599) return "5xx";
  return "other";
}

absl::string_view UpstreamErrorReason(const CallFacts& facts) {
  if (facts.reason == ErrorReason::kNone) return "OTHER";
  return ErrorReasonName(facts.reason);
}

}  // namespace userpilot::gateway
