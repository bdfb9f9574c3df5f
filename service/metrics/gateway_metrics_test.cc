#include "service/metrics/gateway_metrics.h"

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/common/call_result.h"
#include "service/metrics/metrics_registry.h"

namespace userpilot::gateway {
namespace {

using Labels = std::map<std::string, std::string>;

constexpr char kService[] = "userpilot.gateway.v1.UserpilotGateway";

double CounterValue(const MetricsRegistry& registry, const std::string& name,
                    const Labels& labels = {}) {
  const std::optional<prometheus::ClientMetric> metric =
      FindMetric(registry.Collect(), name, labels);
  EXPECT_NE(metric, std::nullopt) << name;
  return !metric.has_value() ? -1 : metric->counter.value;
}

double GaugeValue(const MetricsRegistry& registry, const std::string& name,
                  const Labels& labels = {}) {
  const std::optional<prometheus::ClientMetric> metric =
      FindMetric(registry.Collect(), name, labels);
  EXPECT_NE(metric, std::nullopt) << name;
  return !metric.has_value() ? -1 : metric->gauge.value;
}

// An attempt's error with its reason and HTTP status (0: none arrived), as the error mapping
// would report it.
CallStatus ErrorWith(absl::StatusCode code, ErrorReason reason, int http_status) {
  CallFacts facts;
  facts.reason = reason;
  facts.upstream.http_status = http_status;
  return CallStatus(absl::Status(code, "failed"), std::move(facts));
}

// --- gRPC server -----------------------------------------------------------------------------

TEST(GrpcServerMetricsTest, AddServicePrecreatesEveryMethodWithCodeOk) {
  MetricsRegistry registry;
  GrpcServerMetrics metrics(registry.registry());
  metrics.AddService(UserpilotGatewayDescriptor());
  auto families = registry.Collect();
  for (const char* method :
       {"IdentifyUser", "IdentifyCompany", "BulkIdentifyUsers", "BulkIdentifyCompanies",
        "TrackEvent", "ListJobs", "GetJob", "DeleteUsers", "DeleteCompanies"}) {
    const Labels labels = {
        {"grpc_service", kService}, {"grpc_method", method}, {"grpc_type", "unary"}};
    Labels ok = labels;
    ok["grpc_code"] = "OK";
    EXPECT_NE(FindMetric(families, "grpc_server_started_total", labels), std::nullopt) << method;
    EXPECT_NE(FindMetric(families, "grpc_server_handled_total", ok), std::nullopt) << method;
    EXPECT_NE(FindMetric(families, "grpc_server_msg_received_total", labels), std::nullopt)
        << method;
    EXPECT_NE(FindMetric(families, "grpc_server_msg_sent_total", labels), std::nullopt) << method;
    EXPECT_NE(FindMetric(families, "grpc_server_handling_seconds", labels), std::nullopt) << method;
  }
  // Health and reflection are known but not pre-created; nothing is "unknown" yet.
  for (const auto& family : families) {
    for (const auto& metric : family.metric) {
      for (const auto& label : metric.label) {
        if (label.name == "grpc_service") {
          EXPECT_EQ(label.value, kService);
        }
      }
    }
  }
}

TEST(GrpcServerMetricsTest, StreamingMethodsGetTheirType) {
  MetricsRegistry registry;
  GrpcServerMetrics metrics(registry.registry());
  metrics.AddMethod("pkg.Svc", "Watch", GrpcServerMetrics::RpcType::kServerStream, true);
  metrics.AddMethod("pkg.Svc", "Upload", GrpcServerMetrics::RpcType::kClientStream, true);
  metrics.AddMethod("pkg.Svc", "Chat", GrpcServerMetrics::RpcType::kBidiStream, true);
  auto families = registry.Collect();
  EXPECT_NE(
      FindMetric(
          families, "grpc_server_started_total",
          {{"grpc_service", "pkg.Svc"}, {"grpc_method", "Watch"}, {"grpc_type", "server_stream"}}),
      std::nullopt);
  EXPECT_NE(
      FindMetric(
          families, "grpc_server_started_total",
          {{"grpc_service", "pkg.Svc"}, {"grpc_method", "Upload"}, {"grpc_type", "client_stream"}}),
      std::nullopt);
  EXPECT_NE(
      FindMetric(
          families, "grpc_server_started_total",
          {{"grpc_service", "pkg.Svc"}, {"grpc_method", "Chat"}, {"grpc_type", "bidi_stream"}}),
      std::nullopt);
}

TEST(GrpcServerMetricsTest, UnknownMethodsShareOneBoundedSeries) {
  MetricsRegistry registry;
  GrpcServerMetrics metrics(registry.registry());
  GrpcServerMetrics::MethodSeries& a = metrics.SeriesFor("/evil.Svc/user-12345");
  GrpcServerMetrics::MethodSeries& b = metrics.SeriesFor("/another/thing");
  GrpcServerMetrics::MethodSeries& c = metrics.SeriesFor("garbage");
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(&a, &c);
  a.started->Increment();
  metrics.RecordHandled(a, 12, 0.001);
  EXPECT_EQ(CounterValue(registry, "grpc_server_handled_total",
                         {{"grpc_service", "unknown"},
                          {"grpc_method", "unknown"},
                          {"grpc_type", "unknown"},
                          {"grpc_code", "UNIMPLEMENTED"}}),
            1);
}

TEST(GrpcServerMetricsTest, KnownHealthMethodAppearsOnFirstUse) {
  MetricsRegistry registry;
  GrpcServerMetrics metrics(registry.registry());
  EXPECT_EQ(FindMetric(registry.Collect(), "grpc_server_started_total",
                       {{"grpc_service", "grpc.health.v1.Health"},
                        {"grpc_method", "Check"},
                        {"grpc_type", "unary"}}),
            std::nullopt);
  metrics.SeriesFor("/grpc.health.v1.Health/Check").started->Increment();
  EXPECT_EQ(CounterValue(registry, "grpc_server_started_total",
                         {{"grpc_service", "grpc.health.v1.Health"},
                          {"grpc_method", "Check"},
                          {"grpc_type", "unary"}}),
            1);
}

TEST(GrpcServerMetricsTest, RecordHandledNamesTheCodeAndObservesTheTime) {
  MetricsRegistry registry;
  GrpcServerMetrics metrics(registry.registry());
  metrics.AddService(UserpilotGatewayDescriptor());
  auto& series = metrics.SeriesFor(std::string("/") + kService + "/TrackEvent");
  metrics.RecordHandled(series, 0, 0.00003);
  metrics.RecordHandled(series, 3, 0.2);
  metrics.RecordHandled(series, 3, 0.2);
  metrics.RecordHandled(series, 99, 0.2);  // Out of range: UNKNOWN.
  const Labels labels = {
      {"grpc_service", kService}, {"grpc_method", "TrackEvent"}, {"grpc_type", "unary"}};
  auto with_code = [&](const char* code) {
    Labels l = labels;
    l["grpc_code"] = code;
    return l;
  };
  EXPECT_EQ(CounterValue(registry, "grpc_server_handled_total", with_code("OK")), 1);
  EXPECT_EQ(CounterValue(registry, "grpc_server_handled_total", with_code("INVALID_ARGUMENT")), 2);
  EXPECT_EQ(CounterValue(registry, "grpc_server_handled_total", with_code("UNKNOWN")), 1);
  const auto histogram = FindMetric(registry.Collect(), "grpc_server_handling_seconds", labels);
  ASSERT_TRUE(histogram.has_value());
  EXPECT_EQ(histogram->histogram.sample_count, 4u);
  ASSERT_FALSE(histogram->histogram.bucket.empty());
  EXPECT_DOUBLE_EQ(histogram->histogram.bucket.front().upper_bound, 0.00005);
  EXPECT_EQ(histogram->histogram.bucket.front().cumulative_count, 1u);  // 30 µs fits 50 µs
}

TEST(GrpcCodeNameTest, MatchesGrpcNames) {
  EXPECT_EQ(GrpcCodeName(0), "OK");
  EXPECT_EQ(GrpcCodeName(1), "CANCELLED");
  EXPECT_EQ(GrpcCodeName(3), "INVALID_ARGUMENT");
  EXPECT_EQ(GrpcCodeName(4), "DEADLINE_EXCEEDED");
  EXPECT_EQ(GrpcCodeName(8), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(GrpcCodeName(14), "UNAVAILABLE");
  EXPECT_EQ(GrpcCodeName(16), "UNAUTHENTICATED");
  EXPECT_EQ(GrpcCodeName(-1), "UNKNOWN");
  EXPECT_EQ(GrpcCodeName(17), "UNKNOWN");
}

// --- upstream --------------------------------------------------------------------------------

TEST(UpstreamStatusClassTest, FromTheOutcome) {
  using C = absl::StatusCode;
  using R = ErrorReason;
  struct Case {
    CallStatus status;
    absl::string_view want;
  };
  const Case cases[] = {
      {absl::OkStatus(), "2xx"},
      {ErrorWith(C::kInvalidArgument, R::kUpstreamRejectedRequest, 400), "4xx"},
      {ErrorWith(C::kInternal, R::kUpstreamCredentialsRejected, 401), "4xx"},
      {ErrorWith(C::kResourceExhausted, R::kUpstreamRateLimited, 429), "4xx"},
      {ErrorWith(C::kUnavailable, R::kUpstreamUnavailable, 503), "5xx"},
      {ErrorWith(C::kInternal, R::kUpstreamBadResponse, 200), "2xx"},
      {ErrorWith(C::kInternal, R::kUpstreamBadResponse, 302), "other"},
      {ErrorWith(C::kInternal, R::kUpstreamBadResponse, 600), "other"},
      {ErrorWith(C::kUnavailable, R::kUpstreamUnavailable, 0), "transport"},
      {absl::DeadlineExceededError("no facts at all"), "transport"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(UpstreamStatusClass(c.status.status(), c.status.facts()), c.want) << c.status;
  }
}

TEST(UpstreamErrorReasonTest, TheReasonsNameOrOther) {
  EXPECT_EQ(UpstreamErrorReason(ErrorWith(absl::StatusCode::kInternal,
                                          ErrorReason::kUpstreamCredentialsRejected, 401)
                                    .facts()),
            "UPSTREAM_CREDENTIALS_REJECTED");
  EXPECT_EQ(UpstreamErrorReason(
                ErrorWith(absl::StatusCode::kUnavailable, ErrorReason::kCircuitOpen, 0).facts()),
            "CIRCUIT_OPEN");
  EXPECT_EQ(UpstreamErrorReason(CallFacts()), "OTHER");
}

TEST(UpstreamMetricsTest, RecordAttemptCountsRequestsLatencyAndErrors) {
  MetricsRegistry registry;
  UpstreamMetrics metrics(registry.registry());
  metrics.PrecreateEndpoints();
  EXPECT_EQ(
      CounterValue(registry, "userpilot_gateway_upstream_requests_total",
                   {{"endpoint", "GET /v1/background_jobs/{job_id}"}, {"status_class", "2xx"}}),
      0);
  metrics.RecordAttempt("POST /v1/track", absl::OkStatus(), CallFacts(), absl::Milliseconds(40));
  const CallStatus rejected =
      ErrorWith(absl::StatusCode::kInternal, ErrorReason::kUpstreamCredentialsRejected, 403);
  metrics.RecordAttempt("POST /v1/track", rejected.status(), rejected.facts(),
                        absl::Milliseconds(5));
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_upstream_requests_total",
                         {{"endpoint", "POST /v1/track"}, {"status_class", "2xx"}}),
            1);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_upstream_requests_total",
                         {{"endpoint", "POST /v1/track"}, {"status_class", "4xx"}}),
            1);
  EXPECT_EQ(
      CounterValue(registry, "userpilot_gateway_upstream_errors_total",
                   {{"endpoint", "POST /v1/track"}, {"reason", "UPSTREAM_CREDENTIALS_REJECTED"}}),
      1);
  const auto duration =
      FindMetric(registry.Collect(), "userpilot_gateway_upstream_request_duration_seconds",
                 {{"endpoint", "POST /v1/track"}});
  ASSERT_TRUE(duration.has_value());
  EXPECT_EQ(duration->histogram.sample_count, 2u);
  EXPECT_NEAR(duration->histogram.sample_sum, 0.045, 1e-9);
}

// RecordAttempt keeps each series' pointer after its first use: the series it feeds is the
// family's own for those labels, whether the family made it before (fresh, here) or for the
// call, and counts go where the labels of each call say.
TEST(UpstreamMetricsTest, RecordAttemptReusesTheFamilysSeries) {
  MetricsRegistry registry;
  UpstreamMetrics metrics(registry.registry());
  const Labels track_2xx = {{"endpoint", "POST /v1/track"}, {"status_class", "2xx"}};
  const Labels identify_5xx = {{"endpoint", "POST /v1/identify"}, {"status_class", "5xx"}};
  const Labels identify_unavailable = {{"endpoint", "POST /v1/identify"},
                                       {"reason", "UPSTREAM_UNAVAILABLE"}};
  prometheus::Counter& fresh = metrics.requests.Add(track_2xx);  // Before any call.
  const CallStatus unavailable =
      ErrorWith(absl::StatusCode::kUnavailable, ErrorReason::kUpstreamUnavailable, 503);
  const CallStatus not_found =
      ErrorWith(absl::StatusCode::kNotFound, ErrorReason::kUpstreamNotFound, 404);
  for (int i = 0; i < 3; ++i) {
    metrics.RecordAttempt("POST /v1/track", absl::OkStatus(), CallFacts(), absl::Milliseconds(1));
    metrics.RecordAttempt("POST /v1/identify", unavailable.status(), unavailable.facts(),
                          absl::Milliseconds(2));
    metrics.RecordAttempt("POST /v1/identify", absl::OkStatus(), CallFacts(),
                          absl::Milliseconds(3));
    if (i == 1) fresh.Increment(10);  // Between calls that use the kept pointer.
  }
  metrics.RecordAttempt("POST /v1/track", not_found.status(), not_found.facts(),
                        absl::Milliseconds(4));

  EXPECT_EQ(&metrics.requests.Add(track_2xx), &fresh);
  EXPECT_EQ(fresh.Value(), 13);
  // Made for a call, then resolved afresh: the same object, holding every call's count.
  prometheus::Counter& identify_5xx_series = metrics.requests.Add(identify_5xx);
  EXPECT_EQ(identify_5xx_series.Value(), 3);
  EXPECT_EQ(metrics.errors.Add(identify_unavailable).Value(), 3);
  metrics.RecordAttempt("POST /v1/identify", unavailable.status(), unavailable.facts(),
                        absl::Milliseconds(2));
  EXPECT_EQ(identify_5xx_series.Value(), 4);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_upstream_requests_total", identify_5xx), 4);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_upstream_requests_total",
                         {{"endpoint", "POST /v1/identify"}, {"status_class", "2xx"}}),
            3);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_upstream_requests_total",
                         {{"endpoint", "POST /v1/track"}, {"status_class", "4xx"}}),
            1);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_upstream_errors_total",
                         {{"endpoint", "POST /v1/track"}, {"reason", "UPSTREAM_NOT_FOUND"}}),
            1);
  const auto families = registry.Collect();
  const auto identify_duration =
      FindMetric(families, "userpilot_gateway_upstream_request_duration_seconds",
                 {{"endpoint", "POST /v1/identify"}});
  ASSERT_TRUE(identify_duration.has_value());
  EXPECT_EQ(identify_duration->histogram.sample_count, 7u);
  const auto track_duration =
      FindMetric(families, "userpilot_gateway_upstream_request_duration_seconds",
                 {{"endpoint", "POST /v1/track"}});
  ASSERT_TRUE(track_duration.has_value());
  EXPECT_EQ(track_duration->histogram.sample_count, 4u);
  // Only the label sets the calls used exist (nothing precreated here): 4 requests series.
  for (const auto& family : families) {
    if (family.name == "userpilot_gateway_upstream_requests_total") {
      EXPECT_EQ(family.metric.size(), 4u);
    }
  }
}

// Concurrent calls on the same and different series lose no count (run under TSan too).
TEST(UpstreamMetricsTest, ConcurrentRecordAttemptsAllCount) {
  MetricsRegistry registry;
  UpstreamMetrics metrics(registry.registry());
  constexpr int kThreads = 4;
  constexpr int kCalls = 500;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&metrics, t] {
      const absl::string_view endpoint = t % 2 == 0 ? "POST /v1/track" : "POST /v1/identify";
      for (int i = 0; i < kCalls; ++i) {
        metrics.RecordAttempt(endpoint, absl::OkStatus(), CallFacts(), absl::Milliseconds(1));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const char* endpoint : {"POST /v1/track", "POST /v1/identify"}) {
    EXPECT_EQ(CounterValue(registry, "userpilot_gateway_upstream_requests_total",
                           {{"endpoint", endpoint}, {"status_class", "2xx"}}),
              kThreads / 2 * kCalls)
        << endpoint;
  }
}

TEST(UpstreamMetricsTest, UnwiredPartsExportNoSeries) {
  MetricsRegistry registry;
  UpstreamMetrics metrics(registry.registry());
  auto families = registry.Collect();
  for (const char* name :
       {"userpilot_gateway_upstream_sent_bytes_total", "userpilot_gateway_upstream_http_in_flight",
        "userpilot_gateway_upstream_http_queued", "userpilot_gateway_upstream_requests_total"}) {
    for (const auto& family : families) {
      if (family.name == name) {
        EXPECT_TRUE(family.metric.empty()) << name;
      }
    }
  }
}

TEST(KeyCheckMetricsTest, NoSeriesUntilEnabledThenTheKeysStanding) {
  MetricsRegistry registry;
  KeyCheckMetrics metrics(registry.registry());
  for (const auto& family : registry.Collect()) {
    if (family.name == "userpilot_gateway_upstream_key_valid" ||
        family.name == "userpilot_gateway_upstream_key_checks_total") {
      EXPECT_TRUE(family.metric.empty()) << family.name;
    }
  }
  metrics.Enable();
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_upstream_key_valid"), 1);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_upstream_key_checks_total",
                         {{"result", "rejected"}}),
            0);
  metrics.RecordCheck("rejected");
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_upstream_key_valid"), 0);
  metrics.RecordCheck("inconclusive");  // No verdict: the standing stays.
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_upstream_key_valid"), 0);
  metrics.RecordCheck("accepted");
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_upstream_key_valid"), 1);
  for (const char* result : {"accepted", "rejected", "inconclusive"}) {
    EXPECT_EQ(
        CounterValue(registry, "userpilot_gateway_upstream_key_checks_total", {{"result", result}}),
        1)
        << result;
  }
}

TEST(LogMetricsTest, NoSeriesUntilUpdatedThenTheLoggersCounts) {
  MetricsRegistry registry;
  LogMetrics metrics(registry.registry());
  for (const auto& family : registry.Collect()) {
    if (family.name == "userpilot_gateway_log_lines_dropped_total" ||
        family.name == "userpilot_gateway_log_queue_max_lines") {
      EXPECT_TRUE(family.metric.empty()) << family.name;
    }
  }
  metrics.Update(0, 4096);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_log_lines_dropped_total", {}), 0);
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_log_queue_max_lines"), 4096);
  metrics.Update(7, 4096);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_log_lines_dropped_total", {}), 7);
}

// --- budgets ---------------------------------------------------------------------------------

BudgetSnapshot Snapshot() {
  BudgetSnapshot s;
  s.budget = "track";
  s.limit_per_second = 10;
  s.effective_limit_per_second = 7;
  s.queued = 4;
  s.callers_waiting = 2;
  s.paused = true;
  s.admitted_immediately = 100;
  s.admitted_after_wait = 20;
  s.rejections = {{"queue_full", 3}, {"pushed_out", 1}, {"brand_new_reason", 2}};
  s.upstream_rate_limited = 5;
  s.upstream_pauses_capped = 6;
  return s;
}

TEST(BudgetMetricsTest, NoSeriesUntilTheFirstUpdate) {
  MetricsRegistry registry;
  BudgetMetrics metrics(registry.registry());
  for (const auto& family : registry.Collect()) {
    EXPECT_TRUE(family.metric.empty()) << family.name;
  }
}

TEST(BudgetMetricsTest, UpdateCopiesTheSnapshot) {
  MetricsRegistry registry;
  BudgetMetrics metrics(registry.registry());
  metrics.Update(Snapshot());
  const Labels track = {{"budget", "track"}};
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_budget_limit_per_second", track), 10);
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_budget_effective_limit_per_second", track), 7);
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_budget_queued", track), 4);
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_budget_callers_waiting", track), 2);
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_budget_paused", track), 1);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_budget_admissions_total",
                         {{"budget", "track"}, {"queued", "false"}}),
            100);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_budget_admissions_total",
                         {{"budget", "track"}, {"queued", "true"}}),
            20);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_budget_rejections_total",
                         {{"budget", "track"}, {"reason", "queue_full"}}),
            3);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_budget_rejections_total",
                         {{"budget", "track"}, {"reason", "other"}}),
            2);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_budget_upstream_rate_limited_total", track),
            5);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_budget_upstream_pause_capped_total", track),
            6);
  // tokens_available < 0 means the source does not know: no series.
  EXPECT_EQ(FindMetric(registry.Collect(), "userpilot_gateway_budget_tokens_available", track),
            std::nullopt);
  // The wait histogram exists at zero before the first observation.
  const auto wait = FindMetric(registry.Collect(), "userpilot_gateway_budget_wait_seconds", track);
  ASSERT_TRUE(wait.has_value());
  EXPECT_EQ(wait->histogram.sample_count, 0u);

  BudgetSnapshot later = Snapshot();
  later.admitted_immediately = 130;
  later.queued = 0;
  later.tokens_available = 3;
  metrics.Update(later);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_budget_admissions_total",
                         {{"budget", "track"}, {"queued", "false"}}),
            130);
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_budget_queued", track), 0);
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_budget_tokens_available", track), 3);
}

TEST(BudgetMetricsTest, ObserverRecordsWaitsAndBoundedCallers) {
  MetricsRegistry registry;
  BudgetMetrics metrics(registry.registry(), BudgetMetricsOptions{{"billing", "crm"}});
  BudgetObserver& observer = metrics;
  observer.OnAdmitted("identify", "billing", absl::Milliseconds(3));
  observer.OnAdmitted("identify", "billing", absl::Seconds(2));
  observer.OnAdmitted("identify", "user-98765", absl::ZeroDuration());  // Not configured.
  observer.OnAdmitted("identify", "", absl::ZeroDuration());            // Anonymous.
  observer.OnRejected("identify", "crm", "queue_full");
  const auto wait = FindMetric(registry.Collect(), "userpilot_gateway_budget_wait_seconds",
                               {{"budget", "identify"}});
  ASSERT_TRUE(wait.has_value());
  EXPECT_EQ(wait->histogram.sample_count, 4u);
  EXPECT_NEAR(wait->histogram.sample_sum, 2.003, 1e-9);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_budget_caller_calls_total",
                         {{"budget", "identify"}, {"caller", "billing"}, {"outcome", "admitted"}}),
            2);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_budget_caller_calls_total",
                         {{"budget", "identify"}, {"caller", "other"}, {"outcome", "admitted"}}),
            2);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_budget_caller_calls_total",
                         {{"budget", "identify"}, {"caller", "crm"}, {"outcome", "rejected"}}),
            1);
  EXPECT_EQ(registry.Serialize().find("user-98765"), std::string::npos);
}

// The observer keeps each series' pointer after its first use: the family's own for those
// labels; counts go to each call's budget, bounded caller and outcome.
TEST(BudgetMetricsTest, ObserverReusesTheFamilysSeries) {
  MetricsRegistry registry;
  BudgetMetrics metrics(registry.registry(), BudgetMetricsOptions{{"billing", "crm"}});
  const Labels identify_billing = {
      {"budget", "identify"}, {"caller", "billing"}, {"outcome", "admitted"}};
  prometheus::Counter& fresh = metrics.caller_calls.Add(identify_billing);  // Before any call.
  for (int i = 0; i < 3; ++i) {
    metrics.OnAdmitted("identify", "billing", absl::Milliseconds(1));
    metrics.OnAdmitted("track", "billing", absl::Milliseconds(2));
    metrics.OnAdmitted("identify", "crm", absl::Milliseconds(3));
    metrics.OnAdmitted("identify", "user-1", absl::ZeroDuration());  // "other"
    metrics.OnAdmitted("identify", "", absl::ZeroDuration());        // "other"
    metrics.OnRejected("identify", "billing", "queue_full");
    metrics.OnRejected("track", "user-2", "pushed_out");  // "other"
    if (i == 1) fresh.Increment(10);
  }

  EXPECT_EQ(&metrics.caller_calls.Add(identify_billing), &fresh);
  EXPECT_EQ(fresh.Value(), 13);
  prometheus::Counter& identify_other = metrics.caller_calls.Add(
      {{"budget", "identify"}, {"caller", "other"}, {"outcome", "admitted"}});
  EXPECT_EQ(identify_other.Value(), 6);
  metrics.OnAdmitted("identify", "user-3", absl::ZeroDuration());
  EXPECT_EQ(identify_other.Value(), 7);
  const std::pair<Labels, double> expected[] = {
      {{{"budget", "track"}, {"caller", "billing"}, {"outcome", "admitted"}}, 3},
      {{{"budget", "identify"}, {"caller", "crm"}, {"outcome", "admitted"}}, 3},
      {{{"budget", "identify"}, {"caller", "billing"}, {"outcome", "rejected"}}, 3},
      {{{"budget", "track"}, {"caller", "other"}, {"outcome", "rejected"}}, 3},
  };
  for (const auto& [labels, value] : expected) {
    EXPECT_EQ(CounterValue(registry, "userpilot_gateway_budget_caller_calls_total", labels), value);
  }
  const auto families = registry.Collect();
  const auto identify_wait =
      FindMetric(families, "userpilot_gateway_budget_wait_seconds", {{"budget", "identify"}});
  ASSERT_TRUE(identify_wait.has_value());
  EXPECT_EQ(identify_wait->histogram.sample_count, 13u);
  EXPECT_EQ(metrics.wait_seconds.Add({{"budget", "track"}}, BudgetMetrics::WaitBuckets())
                .Collect()
                .histogram.sample_count,
            3u);
  for (const auto& family : families) {
    if (family.name == "userpilot_gateway_budget_caller_calls_total") {
      EXPECT_EQ(family.metric.size(), 6u);  // Only the label sets the calls used.
    }
  }
}

// --- retries and jobs ------------------------------------------------------------------------

TEST(RetryMetricsTest, NoSeriesUntilWiredThenEveryReason) {
  MetricsRegistry registry;
  RetryMetrics metrics(registry.registry());
  for (const auto& family : registry.Collect()) {
    EXPECT_TRUE(family.metric.empty()) << family.name;
  }
  RetrySnapshot s;
  s.calls = 50;
  s.retries_by_reason = {{"upstream_rate_limited", 4}, {"something_new", 1}};
  s.gave_up_by_reason = {{"deadline", 2}};
  s.recovered = 3;
  s.circuit_state = CircuitStateValue::kHalfOpen;
  s.circuit_opened = 1;
  s.circuit_rejected = 9;
  metrics.Update(s);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_retry_calls_total"), 50);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_retries_total",
                         {{"reason", "upstream_rate_limited"}}),
            4);
  EXPECT_EQ(
      CounterValue(registry, "userpilot_gateway_retries_total", {{"reason", "transport_failure"}}),
      0);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_retries_total", {{"reason", "other"}}), 1);
  EXPECT_EQ(
      CounterValue(registry, "userpilot_gateway_retry_gave_up_total", {{"reason", "deadline"}}), 2);
  EXPECT_EQ(
      CounterValue(registry, "userpilot_gateway_retry_gave_up_total", {{"reason", "circuit_open"}}),
      0);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_retry_recovered_total"), 3);
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_circuit_state"), 1);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_circuit_opened_total"), 1);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_circuit_rejected_total"), 9);
  s.circuit_state = CircuitStateValue::kOpen;
  metrics.Update(s);
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_circuit_state"), 2);
}

TEST(JobMetricsTest, UpdateCopiesTheSnapshot) {
  MetricsRegistry registry;
  JobMetrics metrics(registry.registry());
  EXPECT_EQ(FindMetric(registry.Collect(), "userpilot_gateway_job_watchers"), std::nullopt);
  JobSnapshot s{5, 2, 40, 1, 12, 1};
  metrics.Update(s);
  // No importer wired (import_bytes < 0): no series rather than a false zero.
  EXPECT_EQ(FindMetric(registry.Collect(), "userpilot_gateway_import_bytes_total"), std::nullopt);
  // Unknown bounds: no series either.
  EXPECT_EQ(FindMetric(registry.Collect(), "userpilot_gateway_job_bound", {{"bound", "watchers"}}),
            std::nullopt);
  s.import_bytes = 1 << 20;
  s.watches_refused = 4;
  s.imports_refused = 1;
  s.import_idle_timeouts = 3;
  s.import_deadline_timeouts = 2;
  s.max_watchers = 20000;
  s.max_pollers = 1000;
  s.max_imports = 8;
  metrics.Update(s);
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_job_watchers"), 5);
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_job_pollers"), 2);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_job_polls_total", {{"result", "ok"}}), 40);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_job_polls_total", {{"result", "error"}}), 1);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_job_updates_fanned_out_total"), 12);
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_imports_in_flight"), 1);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_import_bytes_total"), 1 << 20);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_job_refused_total", {{"kind", "watch"}}), 4);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_job_refused_total", {{"kind", "import"}}), 1);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_import_timeouts_total", {{"reason", "idle"}}),
            3);
  EXPECT_EQ(
      CounterValue(registry, "userpilot_gateway_import_timeouts_total", {{"reason", "deadline"}}),
      2);
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_job_bound", {{"bound", "watchers"}}), 20000);
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_job_bound", {{"bound", "pollers"}}), 1000);
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_job_bound", {{"bound", "imports"}}), 8);
}

TEST(JobLaneMetricsTest, NoSeriesUntilTheFirstUpdateThenEveryReasonAndTheWaits) {
  MetricsRegistry registry;
  JobLaneMetrics metrics(registry.registry());
  for (const auto& family : registry.Collect()) {
    EXPECT_TRUE(family.metric.empty()) << family.name;
  }
  JobLaneSnapshot s;
  s.lane = "bulk";
  s.waiting = 2;
  s.max_waiting = 4;
  s.job_running = true;
  s.admitted_immediately = 7;
  s.admitted_after_wait = 3;
  s.rejections = {{"queue_full", 1}, {"wait_exceeds_deadline", 2}, {"something_new", 5}};
  s.conflicts = 6;
  metrics.Update(s);
  const Labels bulk = {{"lane", "bulk"}};
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_job_lane_waiting", bulk), 2);
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_job_lane_max_waiting", bulk), 4);
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_job_lane_job_running", bulk), 1);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_job_lane_admissions_total",
                         {{"lane", "bulk"}, {"queued", "false"}}),
            7);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_job_lane_admissions_total",
                         {{"lane", "bulk"}, {"queued", "true"}}),
            3);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_job_lane_rejections_total",
                         {{"lane", "bulk"}, {"reason", "queue_full"}}),
            1);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_job_lane_rejections_total",
                         {{"lane", "bulk"}, {"reason", "deadline_reached"}}),
            0);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_job_lane_rejections_total",
                         {{"lane", "bulk"}, {"reason", "wait_exceeds_deadline"}}),
            2);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_job_lane_rejections_total",
                         {{"lane", "bulk"}, {"reason", "other"}}),
            5);
  EXPECT_EQ(CounterValue(registry, "userpilot_gateway_job_lane_conflicts_total", bulk), 6);
  auto wait = FindMetric(registry.Collect(), "userpilot_gateway_job_lane_wait_seconds", bulk);
  ASSERT_TRUE(wait.has_value());
  EXPECT_EQ(wait->histogram.sample_count, 0u);

  JobLaneObserver& observer = metrics;
  observer.OnSent("bulk", absl::ZeroDuration());
  observer.OnSent("bulk", absl::Seconds(4));
  wait = FindMetric(registry.Collect(), "userpilot_gateway_job_lane_wait_seconds", bulk);
  ASSERT_TRUE(wait.has_value());
  EXPECT_EQ(wait->histogram.sample_count, 2u);
  EXPECT_DOUBLE_EQ(wait->histogram.sample_sum, 4);

  s.job_running = false;
  s.waiting = 0;
  metrics.Update(s);
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_job_lane_job_running", bulk), 0);
  EXPECT_EQ(GaugeValue(registry, "userpilot_gateway_job_lane_waiting", bulk), 0);
}

TEST(GatewayMetricsTest, AllFamiliesOnOneRegistryWithoutClashes) {
  MetricsRegistry registry;
  GatewayMetrics metrics(registry.registry());
  // A registry drops families without series: give each component one update.
  metrics.grpc_server.AddService(UserpilotGatewayDescriptor());
  metrics.upstream.PrecreateEndpoints();
  metrics.upstream.RecordAttempt("POST /v1/track", absl::InternalError("x"), CallFacts(),
                                 absl::Seconds(1));
  metrics.budgets.Update(Snapshot());
  metrics.budgets.OnAdmitted("track", "", absl::ZeroDuration());
  metrics.retries.Update({});
  metrics.jobs.Update({});
  metrics.job_lanes.Update({});
  std::set<std::string> names;
  for (const auto& family : registry.Collect()) {
    EXPECT_TRUE(names.insert(family.name).second) << family.name;
    EXPECT_FALSE(family.help.empty()) << family.name;
  }
  // gRPC 5, upstream 3 (no HTTP parts), budgets 11 (no tokens), retries 7, jobs 7 (no bytes,
  // no bounds), job lanes 7, security 2 (refusals at 0; no open-connection gauge without a
  // listener).
  EXPECT_EQ(names.size(), 5u + 3u + 11u + 7u + 7u + 7u + 2u);
}

TEST(SecurityMetricsTest, RefusalsByReasonWithTheCallerBoundedToConfiguredNames) {
  MetricsRegistry registry;
  SecurityMetrics metrics(registry.registry(), {"billing"});
  metrics.RecordAuthRefused("bad_token", "");
  metrics.RecordAuthRefused("bad_token", "");
  metrics.RecordAuthRefused("not_allowed", "billing");
  metrics.RecordAuthRefused("not_allowed", "made-up-by-a-certificate");
  metrics.RecordConnectionRefused("limit");
  const char* refused = "userpilot_gateway_auth_refused_total";
  EXPECT_EQ(CounterValue(registry, refused, {{"reason", "bad_token"}, {"caller", ""}}), 2);
  EXPECT_EQ(CounterValue(registry, refused, {{"reason", "not_allowed"}, {"caller", "billing"}}), 1);
  EXPECT_EQ(CounterValue(registry, refused, {{"reason", "not_allowed"}, {"caller", "other"}}), 1);
  EXPECT_EQ(
      CounterValue(registry, "userpilot_gateway_connections_refused_total", {{"reason", "limit"}}),
      1);
}

}  // namespace
}  // namespace userpilot::gateway
