// UpstreamMetrics (gateway_metrics.h): families, status classes and error reasons.
#include <mutex>
#include <string>

#include "service/metrics/gateway_metrics.h"
#include "service/metrics/metrics_registry.h"
#include "service/upstream/upstream_rpcs.h"

namespace userpilot::gateway {
namespace {

constexpr size_t k2xx = 0, k4xx = 1, k5xx = 2, kOther = 3, kTransport = 4;
static_assert(kUpstreamStatusClasses[k2xx] == "2xx" && kUpstreamStatusClasses[k4xx] == "4xx" &&
              kUpstreamStatusClasses[k5xx] == "5xx" && kUpstreamStatusClasses[kOther] == "other" &&
              kUpstreamStatusClasses[kTransport] == "transport");

// UpstreamStatusClass, as an index into kUpstreamStatusClasses.
size_t StatusClassIndex(const absl::Status& status, const CallFacts& facts) {
  if (status.ok()) return k2xx;
  const int code = facts.upstream.http_status;
  if (code == 0) return kTransport;
  if (code >= 200 && code <= 299) return k2xx;
  if (code >= 400 && code <= 499) return k4xx;
  if (code >= 500 && code <= 599) return k5xx;
  return kOther;
}

}  // namespace

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
  const size_t status_class = StatusClassIndex(status, facts);
  const auto reason = static_cast<size_t>(facts.reason);
  prometheus::Counter* request = nullptr;
  prometheus::Histogram* duration = nullptr;
  prometheus::Counter* error = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = endpoints_.find(endpoint);
    if (it == endpoints_.end()) {
      it = endpoints_.emplace(std::string(endpoint), EndpointSeries()).first;
    }
    EndpointSeries& series = it->second;
    // Family::Add, on first use only: the label maps below are built once per series.
    if (series.requests[status_class] == nullptr) {
      series.requests[status_class] =
          &requests.Add({{"endpoint", std::string(endpoint)},
                         {"status_class", std::string(kUpstreamStatusClasses[status_class])}});
    }
    request = series.requests[status_class];
    if (series.duration == nullptr) {
      series.duration =
          &request_duration_seconds.Add({{"endpoint", std::string(endpoint)}}, DurationBuckets());
    }
    duration = series.duration;
    if (!status.ok()) {
      prometheus::Counter* unused = nullptr;  // A reason past kErrorReasonCount: not kept.
      prometheus::Counter*& slot = reason < series.errors.size() ? series.errors[reason] : unused;
      if (slot == nullptr) {
        slot = &errors.Add({{"endpoint", std::string(endpoint)},
                            {"reason", std::string(UpstreamErrorReason(facts))}});
      }
      error = slot;
    }
  }
  request->Increment();
  duration->Observe(absl::ToDoubleSeconds(elapsed));
  if (error != nullptr) error->Increment();
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
  return kUpstreamStatusClasses[StatusClassIndex(status, facts)];
}

absl::string_view UpstreamErrorReason(const CallFacts& facts) {
  if (facts.reason == ErrorReason::kNone) return "OTHER";
  return ErrorReasonName(facts.reason);
}

}  // namespace userpilot::gateway
