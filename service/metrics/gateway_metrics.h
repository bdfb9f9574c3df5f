// Every metric the gateway exposes, declared in one place: one struct per component (Envoy's
// stats structs), each created from a prometheus::Registry and handed to its component by
// constructor. Names, labels and help texts live here and nowhere else.
//
//   struct             metrics                          fed by
//   GrpcServerMetrics  grpc_server_*                    grpc_server_interceptor.h
//   UpstreamMetrics    userpilot_gateway_upstream_*     metrics_stub.h, metered_http_client.h
//   KeyCheckMetrics    userpilot_gateway_upstream_key_* the key check (app/gateway.cc)
//   LogMetrics         userpilot_gateway_log_*          Logger counts at scrape (app/gateway.cc)
//   BudgetMetrics      userpilot_gateway_budget_*       limiter Stats() at scrape (hook),
//                                                       BudgetObserver (pushed)
//   RetryMetrics       userpilot_gateway_retr*_,        RetryingStub::stats() at scrape
//                      userpilot_gateway_circuit_*
//   JobMetrics         userpilot_gateway_job_*,         JobWatchRegistry / Importer Stats()
//                      userpilot_gateway_import*        at scrape
//   JobLaneMetrics     userpilot_gateway_job_lane_*     JobLaneStub::Stats() at scrape (hook),
//                                                       JobLaneObserver (pushed)
//   SecurityMetrics    userpilot_gateway_auth_*,        Authenticator (AuthObserver),
//                      userpilot_gateway_connections_*  CappedListener (ConnectionObserver),
//                                                       through app/gateway.cc
//   DeliveryMetrics    userpilot_gateway_delivery_*     DeliveryStore Stats() at scrape (hook),
//                                                       the frontend and dispatcher (pushed)
//   process_metrics.h  process_*, _build_info           /proc at scrape
// (component_exports.h holds the hooks that read the components' Stats().)
//
// Label sets are bounded by construction: every label value comes from a fixed list in code
// (methods, endpoints, codes, status classes, reasons), from configuration (budget names, and
// caller names only where configured), or is folded into "other"/"unknown". No label ever holds
// a user id, company id, job id, event name, request content or the API key.
//
// Series on the call path are resolved once: prometheus-cpp's Family::Add builds a label map
// and looks it up on every call, while the series it returns is the same object for the same
// labels, owned by the family until Family::Remove() (which the gateway never calls). So the
// per-call methods (GrpcServerMetrics::RecordHandled, UpstreamMetrics::RecordAttempt,
// BudgetMetrics::OnAdmitted/OnRejected) keep each series' pointer once it exists and reuse it
// for the registry's lifetime, allocating nothing on later calls. A series is still created
// by the call that first uses it, as Family::Add would, so what is exported does not change.
//
// Thread-safety: the structs are created once, before use; prometheus-cpp's metrics are
// thread-safe, and so are every Record/Update/On* method here (the series pointers they keep
// are guarded by their struct's std::mutex).
#ifndef USERPILOT_GATEWAY_SERVICE_METRICS_GATEWAY_METRICS_H_
#define USERPILOT_GATEWAY_SERVICE_METRICS_GATEWAY_METRICS_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "service/common/call_facts.h"
#include "service/ratelimit/budget_observer.h"
#include "service/ratelimit/job_lane_observer.h"

namespace google::protobuf {
class ServiceDescriptor;
}

namespace userpilot::gateway {

// ---------------------------------------------------------------------------------------------
// gRPC server: the names and labels of go-grpc-prometheus / grpc-ecosystem, which existing
// Grafana dashboards for gRPC services query.
//   grpc_server_started_total{grpc_type,grpc_service,grpc_method}           counter
//   grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code} counter
//   grpc_server_msg_received_total{grpc_type,grpc_service,grpc_method}      counter
//   grpc_server_msg_sent_total{grpc_type,grpc_service,grpc_method}          counter
//   grpc_server_handling_seconds{grpc_type,grpc_service,grpc_method}        histogram
//   userpilot_gateway_requests_undecodable_total{grpc_method}               counter
// (the last one the gateway's own: requests protobuf could not decode, answered
// INVALID_ARGUMENT; grpc_method is a UserpilotGateway unary method's name).
// grpc_type: unary, client_stream, server_stream, bidi_stream. grpc_code: the code's name (OK,
// INVALID_ARGUMENT, ...). Methods are those declared with AddService/AddMethod; a call to any
// other method (a typo, a probe) is counted with grpc_service, grpc_method and grpc_type
// "unknown", so callers cannot create series.
class GrpcServerMetrics {
 public:
  enum class RpcType { kUnary, kClientStream, kServerStream, kBidiStream };

  // The series of one known method. Pointers stay valid as long as the registry.
  struct MethodSeries {
    std::map<std::string, std::string> labels;  // grpc_type, grpc_service, grpc_method
    prometheus::Counter* started = nullptr;
    prometheus::Counter* msg_received = nullptr;
    prometheus::Counter* msg_sent = nullptr;
    prometheus::Histogram* handling_seconds = nullptr;
    // grpc_server_handled_total by code, created on first use (OK at once).
    std::array<std::atomic<prometheus::Counter*>, 17> handled{};
  };

  // Creates the families, and knows grpc.health.v1.Health (Check, Watch) and
  // grpc.reflection.v1alpha.ServerReflection (ServerReflectionInfo) by name (their series
  // appear when they are called).
  explicit GrpcServerMetrics(prometheus::Registry& registry);

  // Declares every method of `service` (UserpilotGatewayDescriptor()) and creates its series
  // at zero, with handled{grpc_code="OK"}, so dashboards show
  // every method before its first call. Call before the server starts.
  void AddService(const google::protobuf::ServiceDescriptor& service);
  // Declares one method; `precreate` creates its series at zero.
  void AddMethod(absl::string_view service, absl::string_view method, RpcType type, bool precreate);

  // The series of `full_method` ("/package.Service/Method"), or of "unknown". Never null.
  MethodSeries& SeriesFor(absl::string_view full_method);

  // Counts a finished call: handled{grpc_code} and the handling time.
  void RecordHandled(MethodSeries& series, int grpc_code, double seconds);

  // 50 µs .. 30 s: gateway-only work (validation refusals) takes tens of microseconds; calls
  // that reach Userpilot take tens to hundreds of milliseconds; the deadline cap is minutes.
  static const std::vector<double>& HandlingBuckets();

  prometheus::Family<prometheus::Counter>& started;
  prometheus::Family<prometheus::Counter>& handled;
  prometheus::Family<prometheus::Counter>& msg_received;
  prometheus::Family<prometheus::Counter>& msg_sent;
  prometheus::Family<prometheus::Histogram>& handling_seconds;
  prometheus::Family<prometheus::Counter>& undecodable;

  // Counts one undecodable request of `method` ("IdentifyUser"). Thread-safe.
  void RecordUndecodable(absl::string_view method);

 private:
  // Creates the series of `series` (at zero) unless done. Requires mu_.
  void Create(MethodSeries& series);

  std::mutex mu_;
  // "/service/method" -> series; "" -> the unknown method's series. Entries are never removed.
  std::map<std::string, std::unique_ptr<MethodSeries>, std::less<>> methods_;  // guarded
};

// userpilot.gateway.v1.UserpilotGateway's descriptor, for GrpcServerMetrics::AddService.
const google::protobuf::ServiceDescriptor& UserpilotGatewayDescriptor();

// grpc_type label value ("unary", ...), and the name of a gRPC status code ("OK",
// "INVALID_ARGUMENT", ...; "UNKNOWN" for a number outside 0..16).
absl::string_view RpcTypeName(GrpcServerMetrics::RpcType type);
absl::string_view GrpcCodeName(int code);

// ---------------------------------------------------------------------------------------------
// Upstream: what the gateway sends to Userpilot. One HTTP attempt is one request (retries are
// requests too); the gateway's own refusals (budget, breaker) never reach these counters.
//   userpilot_gateway_upstream_requests_total{endpoint,status_class}        counter
//   userpilot_gateway_upstream_request_duration_seconds{endpoint}           histogram
//   userpilot_gateway_upstream_errors_total{endpoint,reason}                counter
//   userpilot_gateway_upstream_sent_bytes_total                             counter
//   userpilot_gateway_upstream_received_bytes_total                         counter
//   userpilot_gateway_upstream_http_in_flight                               gauge
//   userpilot_gateway_upstream_http_queued                                  gauge
//   userpilot_gateway_upstream_http_max_in_flight                           gauge
//   userpilot_gateway_upstream_http_queue_full_total                        counter
// endpoint: Userpilot's method and path template, as in ErrorInfo metadata
// ("POST /v1/identify", "GET /v1/background_jobs/{job_id}"; never a job id): the routes of
// upstream/upstream_rpcs.h (AllEndpoints()).
// status_class: 2xx, 4xx, 5xx, other (1xx, 3xx, > 599), or transport (no HTTP answer: connect
// failure, timeout, full HTTP queue). reason: the ErrorInfo reason of the error
// (UPSTREAM_CREDENTIALS_REJECTED for 401/403, UPSTREAM_RATE_LIMITED for 429, ...: the
// ErrorReason names of common/call_facts.h), OTHER when it has none.

// Every status_class value (UpstreamStatusClass).
inline constexpr absl::string_view kUpstreamStatusClasses[] = {"2xx", "4xx", "5xx", "other",
                                                               "transport"};

class UpstreamMetrics {
 public:
  explicit UpstreamMetrics(prometheus::Registry& registry);

  // Creates the requests (status_class="2xx") and duration series of every endpoint at zero.
  void PrecreateEndpoints();

  // Counts one finished attempt at `endpoint` with outcome `status` and its `facts` that took
  // `elapsed`. Allocates only when it creates a series.
  void RecordAttempt(absl::string_view endpoint, const absl::Status& status, const CallFacts& facts,
                     absl::Duration elapsed);

  // 1 ms .. 30 s.
  static const std::vector<double>& DurationBuckets();

  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Family<prometheus::Histogram>& request_duration_seconds;
  prometheus::Family<prometheus::Counter>& errors;
  // Single-series families: their series appear when the component feeding them is wired
  // (MeteredHttpClient, ExportHttpClientLoad), so an unwired part shows no data, not zeros.
  prometheus::Family<prometheus::Counter>& sent_bytes;
  prometheus::Family<prometheus::Counter>& received_bytes;
  prometheus::Family<prometheus::Gauge>& http_in_flight;
  prometheus::Family<prometheus::Gauge>& http_queued;
  prometheus::Family<prometheus::Gauge>& http_max_in_flight;
  prometheus::Family<prometheus::Counter>& http_queue_full;

 private:
  // The series RecordAttempt feeds for one endpoint, each set when first used.
  struct EndpointSeries {
    prometheus::Histogram* duration = nullptr;
    std::array<prometheus::Counter*, std::size(kUpstreamStatusClasses)> requests{};
    std::array<prometheus::Counter*, kErrorReasonCount> errors{};  // by ErrorReason
  };

  std::mutex mu_;
  // Endpoint label -> its series. Entries are never removed.
  absl::flat_hash_map<std::string, EndpointSeries> endpoints_;  // guarded by mu_
};

// The upstream key check (upstream/key_checker.h): whether Userpilot accepts the gateway's API
// key, asked at start-up and every --key_check_interval.
//   userpilot_gateway_upstream_key_valid                      gauge    1 accepted (or not yet
//                                                                      refused), 0 rejected
//   userpilot_gateway_upstream_key_checks_total{result}       counter  accepted | rejected |
//                                                                      inconclusive
// Families only: the series appear when the check is wired (off with --key_check_interval=0).
class KeyCheckMetrics {
 public:
  explicit KeyCheckMetrics(prometheus::Registry& registry);

  // Creates the series: key_valid 1 (the gateway starts assuming its key works, as its health
  // does) and every result at zero.
  void Enable();
  // Counts one check's `result` (KeyVerdictName) and, when conclusive, sets key_valid.
  void RecordCheck(absl::string_view result);

  prometheus::Family<prometheus::Gauge>& key_valid;
  prometheus::Family<prometheus::Counter>& key_checks;
};

// The log writer (logging/logger.h): lines are queued for a background writer, which never
// makes a call wait; a full queue drops lines instead.
//   userpilot_gateway_log_lines_dropped_total    counter  lines dropped because the queue was
//                                                         full (the output stalled or too slow)
//   userpilot_gateway_log_queue_max_lines        gauge    the queue's bound
// Families only: the series appear with the first Update(), i.e. once the logger is wired.
class LogMetrics {
 public:
  explicit LogMetrics(prometheus::Registry& registry);
  // Sets the series from the logger's own counts (Logger::dropped_lines(), queue_lines()).
  void Update(uint64_t dropped_lines, size_t queue_lines);

  prometheus::Family<prometheus::Counter>& dropped_lines;
  prometheus::Family<prometheus::Gauge>& queue_max_lines;
};

// The status_class of an attempt's outcome (one of kUpstreamStatusClasses): "2xx" for OK; else
// from the HTTP status of its facts; "transport" when no HTTP status arrived.
absl::string_view UpstreamStatusClass(const absl::Status& status, const CallFacts& facts);
// The reason label of an error: its reason's name (ErrorReasonName), or "OTHER" when it has none.
absl::string_view UpstreamErrorReason(const CallFacts& facts);

// ---------------------------------------------------------------------------------------------
// Budgets: one FairLimiter per Userpilot rate (budget = identify, track, delete, job_read:
// from configuration, four values; bulk and imports are job lanes, below). All labelled {budget}:
//   userpilot_gateway_budget_limit_per_second             gauge      configured rate
//   userpilot_gateway_budget_effective_limit_per_second   gauge      after 429 adaptation
//   userpilot_gateway_budget_tokens_available             gauge      only if the source knows
//   userpilot_gateway_budget_queued                       gauge      calls waiting
//   userpilot_gateway_budget_callers_waiting              gauge
//   userpilot_gateway_budget_paused                       gauge      1 during a 429 pause
//   userpilot_gateway_budget_admissions_total{queued}     counter    "false": admitted at once
//   userpilot_gateway_budget_rejections_total{reason}     counter    kBudgetRejectReasons
//   userpilot_gateway_budget_upstream_rate_limited_total  counter    429s seen
//   userpilot_gateway_budget_upstream_pause_capped_total  counter    pause hints cut to the cap
//   userpilot_gateway_budget_wait_seconds                 histogram  pushed (BudgetObserver)
//   userpilot_gateway_budget_caller_calls_total{caller,outcome}
//                                                         counter    pushed; caller: configured
//                                                                    name or "other"; outcome:
//                                                                    admitted | rejected
struct BudgetSnapshot {
  std::string budget;
  double limit_per_second = 0;
  double effective_limit_per_second = 0;
  double tokens_available = -1;  // < 0: unknown (series not exported)
  uint64_t queued = 0;
  uint64_t callers_waiting = 0;
  bool paused = false;
  uint64_t admitted_immediately = 0;
  uint64_t admitted_after_wait = 0;
  // By reason (kBudgetRejectReasons; any other name is counted as "other").
  std::vector<std::pair<std::string, uint64_t>> rejections;
  uint64_t upstream_rate_limited = 0;
  // Upstream pause hints (Retry-After, X-RateLimit-Reset) cut to --max_upstream_pause.
  uint64_t upstream_pauses_capped = 0;
};

inline constexpr absl::string_view kBudgetRejectReasons[] = {
    "queue_full", "caller_queue_full", "wait_exceeds_deadline", "pushed_out",
    "displaced",  "deadline_reached",  "source_error",          "shutdown",
};

struct BudgetMetricsOptions {
  // Caller names (x-caller) kept as `caller` label values: the callers named in the rate-limit
  // configuration. Every other caller is "other". Empty: all are "other".
  std::set<std::string, std::less<>> callers;
};

class BudgetMetrics final : public BudgetObserver {
 public:
  explicit BudgetMetrics(prometheus::Registry& registry, BudgetMetricsOptions options = {});

  // Copies a snapshot (taken at scrape time) into the budget's series; the first call creates
  // them, so a budget appears once it is wired.
  void Update(const BudgetSnapshot& snapshot);

  // BudgetObserver: the pushed part (wait histogram, per-caller outcomes). Allocate only when
  // they create a series.
  void OnAdmitted(absl::string_view budget, absl::string_view caller, absl::Duration wait) override;
  void OnRejected(absl::string_view budget, absl::string_view caller,
                  absl::string_view reason) override;

  // 1 ms .. 60 s.
  static const std::vector<double>& WaitBuckets();

  prometheus::Family<prometheus::Gauge>& limit_per_second;
  prometheus::Family<prometheus::Gauge>& effective_limit_per_second;
  prometheus::Family<prometheus::Gauge>& tokens_available;
  prometheus::Family<prometheus::Gauge>& queued;
  prometheus::Family<prometheus::Gauge>& callers_waiting;
  prometheus::Family<prometheus::Gauge>& paused;
  prometheus::Family<prometheus::Counter>& admissions;
  prometheus::Family<prometheus::Counter>& rejections;
  prometheus::Family<prometheus::Counter>& upstream_pauses_capped;
  prometheus::Family<prometheus::Counter>& upstream_rate_limited;
  prometheus::Family<prometheus::Histogram>& wait_seconds;
  prometheus::Family<prometheus::Counter>& caller_calls;

 private:
  enum Outcome { kAdmitted, kRejected };
  // The pushed series of one budget, each set when first used.
  struct BudgetSeries {
    prometheus::Histogram* wait = nullptr;
    // caller_calls by CallerIndex(caller), then by Outcome.
    std::vector<std::array<prometheus::Counter*, 2>> caller_calls;
  };

  // The index of `caller`'s label in caller_labels_: its own name when configured, else
  // "other" (the last).
  size_t CallerIndex(absl::string_view caller) const;
  // The series of `budget`, created empty on first use. Requires mu_.
  BudgetSeries& SeriesOf(absl::string_view budget);
  // caller_calls{budget, caller, outcome} of `series` (the series of `budget`). Requires mu_.
  prometheus::Counter& CallerCalls(BudgetSeries& series, absl::string_view budget,
                                   absl::string_view caller, Outcome outcome);

  // The caller label values: the configured callers (BudgetMetricsOptions::callers), then
  // "other"; and each configured caller's index in it. Immutable.
  const std::vector<std::string> caller_labels_;
  const absl::flat_hash_map<std::string, size_t> caller_index_;

  std::mutex mu_;
  // Budget name -> its series. Entries are never removed.
  absl::flat_hash_map<std::string, BudgetSeries> budgets_;  // guarded by mu_
};

// ---------------------------------------------------------------------------------------------
// Retries and the circuit breaker (one breaker: the gateway has one upstream host).
//   userpilot_gateway_retry_calls_total                 counter  calls through the retry layer
//   userpilot_gateway_retries_total{reason}             counter  kRetryReasons
//   userpilot_gateway_retry_gave_up_total{reason}       counter  failed calls by why retrying
//                                                                stopped (kRetryStopReasons)
//   userpilot_gateway_retry_recovered_total             counter  succeeded after >= 1 retry
//   userpilot_gateway_circuit_state                     gauge    0 closed, 1 half-open, 2 open
//   userpilot_gateway_circuit_opened_total              counter
//   userpilot_gateway_circuit_rejected_total            counter  attempts refused while open
enum class CircuitStateValue { kClosed = 0, kHalfOpen = 1, kOpen = 2 };

struct RetrySnapshot {
  uint64_t calls = 0;
  std::vector<std::pair<std::string, uint64_t>> retries_by_reason;  // unknown names: "other"
  std::vector<std::pair<std::string, uint64_t>> gave_up_by_reason;  // unknown names: "other"
  uint64_t recovered = 0;
  CircuitStateValue circuit_state = CircuitStateValue::kClosed;
  uint64_t circuit_opened = 0;
  uint64_t circuit_rejected = 0;
};

inline constexpr absl::string_view kRetryReasons[] = {"upstream_rate_limited",
                                                      "upstream_unavailable", "transport_failure"};
inline constexpr absl::string_view kRetryStopReasons[] = {"retry_policy_exhausted",
                                                          "deadline",
                                                          "retry_budget_exhausted",
                                                          "not_idempotent",
                                                          "non_retryable",
                                                          "circuit_open",
                                                          "shutdown"};

class RetryMetrics {
 public:
  explicit RetryMetrics(prometheus::Registry& registry);
  void Update(const RetrySnapshot& snapshot);

  // Families only: series appear with the first Update(), i.e. once the retry layer is wired.
  prometheus::Family<prometheus::Counter>& calls;
  prometheus::Family<prometheus::Counter>& retries;
  prometheus::Family<prometheus::Counter>& gave_up;
  prometheus::Family<prometheus::Counter>& recovered;
  prometheus::Family<prometheus::Gauge>& circuit_state;
  prometheus::Family<prometheus::Counter>& circuit_opened;
  prometheus::Family<prometheus::Counter>& circuit_rejected;
};

// ---------------------------------------------------------------------------------------------
// Job streaming and imports.
//   userpilot_gateway_job_watchers                      gauge    job watch streams open
//   userpilot_gateway_job_pollers                       gauge    jobs being polled (one each)
//   userpilot_gateway_job_polls_total{result}           counter  ok | error
//   userpilot_gateway_job_updates_fanned_out_total      counter  job changes fanned out to
//                                                                watchers (once per change)
//   userpilot_gateway_imports_in_flight                 gauge    import calls in progress
//   userpilot_gateway_import_bytes_total                counter  import file bytes received and
//   spooled userpilot_gateway_job_bound{bound}                  gauge    configured maximum:
//   watchers
//                                                                (--max_watches), pollers
//                                                                (--max_watched_jobs), imports
//                                                                (--max_concurrent_imports)
//   userpilot_gateway_job_refused_total{kind}           counter  refused at a bound: watch, import
//   userpilot_gateway_import_timeouts_total{reason}     counter  ImportData calls ended before the
//                                                                upload: idle
//                                                                (--import_idle_timeout), deadline
//                                                                (the call's)
struct JobSnapshot {
  uint64_t watchers = 0;
  uint64_t pollers = 0;
  uint64_t polls_ok = 0;
  uint64_t polls_failed = 0;
  uint64_t updates_fanned_out = 0;
  uint64_t imports_in_flight = 0;
  int64_t import_bytes = -1;  // < 0: not counted by the importer (series not exported)
  uint64_t watches_refused = 0;
  uint64_t imports_refused = 0;
  uint64_t import_idle_timeouts = 0;
  uint64_t import_deadline_timeouts = 0;
  // Configured maxima; 0: unknown (series not exported).
  uint64_t max_watchers = 0;
  uint64_t max_pollers = 0;
  uint64_t max_imports = 0;
};

class JobMetrics {
 public:
  explicit JobMetrics(prometheus::Registry& registry);
  void Update(const JobSnapshot& snapshot);

  // Families only: series appear with the first Update(), i.e. once job watching is wired.
  prometheus::Family<prometheus::Gauge>& watchers;
  prometheus::Family<prometheus::Gauge>& pollers;
  prometheus::Family<prometheus::Counter>& polls;
  prometheus::Family<prometheus::Counter>& updates_fanned_out;
  prometheus::Family<prometheus::Gauge>& imports_in_flight;
  prometheus::Family<prometheus::Counter>& import_bytes;
  prometheus::Family<prometheus::Gauge>& bound;
  prometheus::Family<prometheus::Counter>& refused;
  prometheus::Family<prometheus::Counter>& import_timeouts;
};

// ---------------------------------------------------------------------------------------------
// Job lanes (ratelimit/job_lane.h): one bulk identify job and one import job at a time, so bulk
// and import calls wait for the lane's running job in a bounded FIFO. All labelled {lane} =
// bulk | imports (fixed in code):
//   userpilot_gateway_job_lane_waiting                    gauge      calls waiting their turn
//   userpilot_gateway_job_lane_max_waiting                gauge      their bound
//                                                                    (--job_lane_max_waiting)
//   userpilot_gateway_job_lane_job_running                gauge      1 while the lane knows a job
//                                                                    that may still run (the next
//                                                                    call waits for it), else 0
//   userpilot_gateway_job_lane_admissions_total{queued}   counter    sends to Userpilot; "true":
//                                                                    after waiting
//   userpilot_gateway_job_lane_rejections_total{reason}   counter    kJobLaneRejectReasons
//   userpilot_gateway_job_lane_conflicts_total            counter    409s: a job started elsewhere
//   userpilot_gateway_job_lane_wait_seconds               histogram  pushed (JobLaneObserver)
struct JobLaneSnapshot {
  std::string lane;
  uint64_t waiting = 0;
  uint64_t max_waiting = 0;
  bool job_running = false;
  uint64_t admitted_immediately = 0;
  uint64_t admitted_after_wait = 0;
  // By reason (kJobLaneRejectReasons; any other name is counted as "other").
  std::vector<std::pair<std::string, uint64_t>> rejections;
  uint64_t conflicts = 0;
};

// queue_full: --job_lane_max_waiting calls already waited; deadline_reached: the call's deadline
// (less --admission_headroom) came while it waited its turn; wait_exceeds_deadline: the lane's
// job would not end before it. The budgets' words for the same three facts.
inline constexpr absl::string_view kJobLaneRejectReasons[] = {"queue_full", "deadline_reached",
                                                              "wait_exceeds_deadline"};

class JobLaneMetrics final : public JobLaneObserver {
 public:
  explicit JobLaneMetrics(prometheus::Registry& registry);

  // Copies a snapshot (taken at scrape time) into the lane's series; the first call creates
  // them, every reason and the wait histogram at zero, so a lane appears once it is wired.
  void Update(const JobLaneSnapshot& snapshot);

  // JobLaneObserver: the wait histogram.
  void OnSent(absl::string_view lane, absl::Duration wait) override;

  // 10 ms .. 10 min: a call sent at once waits a poll round trip at most; one that waits for a
  // bulk job waits poll intervals (2 s by default) up to its deadline (--max_deadline, 5 min).
  static const std::vector<double>& WaitBuckets();

  prometheus::Family<prometheus::Gauge>& waiting;
  prometheus::Family<prometheus::Gauge>& max_waiting;
  prometheus::Family<prometheus::Gauge>& job_running;
  prometheus::Family<prometheus::Counter>& admissions;
  prometheus::Family<prometheus::Counter>& rejections;
  prometheus::Family<prometheus::Counter>& conflicts;
  prometheus::Family<prometheus::Histogram>& wait_seconds;
};

// ---------------------------------------------------------------------------------------------
// Who may connect and call (service/auth).
//   userpilot_gateway_auth_refused_total{reason,caller}    counter  calls refused before any
//       work: reason no_credentials | bad_token | bad_certificate (caller "") or not_allowed
//       (caller: the authenticated name when configured - a token name or a --caller_allow
//       entry - else "other")
//   userpilot_gateway_connections_refused_total{reason}    counter  connections reset by the
//       listener: limit (--max_connections reached) | accept_error (out of descriptors/memory)
//   userpilot_gateway_connections_open                     gauge    connections open (only
//       with --max_connections)
// The refusal series of the unauthenticated reasons and of both connection reasons exist from
// the start at 0.
class SecurityMetrics {
 public:
  // `callers`: the names that may appear as the caller label.
  SecurityMetrics(prometheus::Registry& registry, std::set<std::string> callers = {});

  // A refused call; `reason` is an AuthRefusalName, `caller` the authenticated name or "".
  void RecordAuthRefused(absl::string_view reason, absl::string_view caller);
  // A connection reset by the listener; `reason` "limit" or "accept_error".
  void RecordConnectionRefused(absl::string_view reason);
  void SetConnectionsOpen(size_t open);

  prometheus::Family<prometheus::Counter>& auth_refused;
  prometheus::Family<prometheus::Counter>& connections_refused;
  prometheus::Family<prometheus::Gauge>& connections_open;

 private:
  const std::set<std::string, std::less<>> callers_;
};

// ---------------------------------------------------------------------------------------------
// Durable delivery (Enqueue and its dispatcher; service/delivery). Series exist once delivery
// is on (--queue_dir or --queue_redis).
//   userpilot_gateway_delivery_backlog_calls            gauge    calls neither delivered nor dead
//                                                                (in flight included)
//   userpilot_gateway_delivery_backlog_age_seconds      gauge    age of the oldest of them; 0: none
//   userpilot_gateway_delivery_dead_letters             gauge    dead letters held
//   userpilot_gateway_delivery_queue_bytes              gauge    storage the queue uses
//   userpilot_gateway_delivery_queue_max_bytes          gauge    its bound (--queue_max_bytes)
//   userpilot_gateway_delivery_in_flight                gauge    calls the dispatcher holds
//   userpilot_gateway_delivery_max_in_flight            gauge    its bound (--queue_max_in_flight)
//   userpilot_gateway_delivery_enqueued_total{result}   counter  stored | duplicate (an
//                                                                idempotency key seen before) |
//                                                                refused_full
//   userpilot_gateway_delivery_append_seconds           histogram Enqueue's append until durable
//                                                                (group commit, fsync included)
//   userpilot_gateway_delivery_fsyncs_total             counter  group-commit fdatasync() calls
//   userpilot_gateway_delivery_fsync_seconds_total      counter  time they took (embedded log)
//   userpilot_gateway_delivery_attempts_total{outcome}  counter  delivered | retry | dead
//   userpilot_gateway_delivery_in_doubt_total           counter  attempts of calls leased before
//                                                                without an outcome (a crash):
//                                                                possible duplicates
//   userpilot_gateway_delivery_coalesced_rows_in_flight gauge    rows of the dispatcher's running
//                                                                bulk job (not in in_flight)
//   userpilot_gateway_delivery_coalesced_rows_total{outcome}  counter  identify calls sent as rows
//                                                                of the dispatcher's bulk jobs:
//                                                                delivered | returned (to single
//                                                                calls, or left to the next lease
//                                                                at a stop)
//   userpilot_gateway_delivery_coalesced_jobs_total{outcome}  counter  those bulk jobs: completed
//                                                                | failed | refused | timeout |
//                                                                stopped
//   userpilot_gateway_delivery_bulk_gate_calls          gauge    calls a bulk job may still apply
//                                                                (in doubt, or of a job cut or
//                                                                unreadable), waiting for no bulk
//                                                                job to run (not in in_flight)
//   userpilot_gateway_delivery_bulk_checks_total{result}  counter  ListJobs calls made for them:
//                                                                no_job | job_running | failed
//   userpilot_gateway_delivery_bulk_gate_released_total{why}  counter  calls that stopped
//                                                                waiting: no_job | deadline
//                                                                (--queue_coalesce_job_timeout)
//   userpilot_gateway_delivery_replay_dropped_bytes{damage}  gauge  what opening the embedded
//                                                                queue dropped: torn_tail (an
//                                                                unfinished last write, never
//                                                                acknowledged) | corrupt (skipped
//                                                                regions: records may be lost)
struct DeliverySnapshot {
  uint64_t backlog = 0;
  double backlog_age_seconds = 0;
  uint64_t dead_letters = 0;
  uint64_t bytes = 0;
  uint64_t max_bytes = 0;
  uint64_t in_flight = 0;
  uint64_t max_in_flight = 0;
  uint64_t coalesced_rows_in_flight = 0;
  uint64_t bulk_gate_calls = 0;
  uint64_t stored = 0;
  uint64_t duplicates = 0;
  uint64_t refused_full = 0;
  uint64_t fsyncs = 0;
  double fsync_seconds = 0;
  uint64_t replay_torn_tail_bytes = 0;
  uint64_t replay_corrupt_bytes = 0;
};

class DeliveryMetrics {
 public:
  // Families only: Enable() (when delivery is on) creates the pushed series at zero.
  explicit DeliveryMetrics(prometheus::Registry& registry);
  void Enable();
  // Scrape-time values (the store's Stats(), the dispatcher's in-flight count).
  void Update(const DeliverySnapshot& snapshot);
  // Pushed: one acknowledged (or refused) append's latency.
  void RecordAppend(absl::Duration latency);
  // Pushed: one delivery attempt's outcome ("delivered", "retry", "dead").
  void RecordAttempt(absl::string_view outcome, bool in_doubt);
  // Pushed: one coalesced bulk job ended ("completed", ...) with `rows` rows, which were
  // "delivered" or "returned".
  void RecordCoalescedJob(absl::string_view job_outcome, absl::string_view row_outcome,
                          size_t rows);
  // Pushed: `records` leased calls another replica took over before this one recorded their
  // outcome (their lease lapsed: --queue_redis).
  void RecordLeasesLost(size_t records);
  // Pushed: one bulk check's result ("no_job", "job_running", "failed").
  void RecordBulkCheck(absl::string_view result);
  // Pushed: `calls` stopped waiting for the bulk check, `why` ("no_job", "deadline").
  void RecordGateReleased(absl::string_view why, size_t calls);

  static const std::vector<double>& AppendBuckets();

  prometheus::Family<prometheus::Gauge>& backlog;
  prometheus::Family<prometheus::Gauge>& backlog_age;
  prometheus::Family<prometheus::Gauge>& dead_letters;
  prometheus::Family<prometheus::Gauge>& bytes;
  prometheus::Family<prometheus::Gauge>& max_bytes;
  prometheus::Family<prometheus::Gauge>& in_flight;
  prometheus::Family<prometheus::Gauge>& max_in_flight;
  prometheus::Family<prometheus::Counter>& enqueued;
  prometheus::Family<prometheus::Histogram>& append_seconds;
  prometheus::Family<prometheus::Counter>& fsyncs;
  prometheus::Family<prometheus::Counter>& fsync_seconds;
  prometheus::Family<prometheus::Counter>& attempts;
  prometheus::Family<prometheus::Counter>& in_doubt;
  prometheus::Family<prometheus::Gauge>& coalesced_rows_in_flight;
  prometheus::Family<prometheus::Counter>& coalesced_rows;
  prometheus::Family<prometheus::Counter>& coalesced_jobs;
  prometheus::Family<prometheus::Counter>& leases_lost;
  prometheus::Family<prometheus::Gauge>& bulk_gate_calls;
  prometheus::Family<prometheus::Counter>& bulk_checks;
  prometheus::Family<prometheus::Counter>& bulk_gate_released;
  prometheus::Family<prometheus::Gauge>& replay_dropped_bytes;
};

// ---------------------------------------------------------------------------------------------
// All of the above on one registry: what the composition root creates and hands out.
struct GatewayMetrics {
  explicit GatewayMetrics(prometheus::Registry& registry, BudgetMetricsOptions budget = {},
                          std::set<std::string> known_callers = {})
      : grpc_server(registry),
        upstream(registry),
        key_check(registry),
        budgets(registry, std::move(budget)),
        retries(registry),
        jobs(registry),
        log(registry),
        job_lanes(registry),
        security(registry, std::move(known_callers)),
        delivery(registry) {}

  GrpcServerMetrics grpc_server;
  UpstreamMetrics upstream;
  KeyCheckMetrics key_check;
  BudgetMetrics budgets;
  RetryMetrics retries;
  JobMetrics jobs;
  LogMetrics log;
  JobLaneMetrics job_lanes;
  SecurityMetrics security;
  DeliveryMetrics delivery;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_METRICS_GATEWAY_METRICS_H_
