// BudgetMetrics, RetryMetrics, JobMetrics, JobLaneMetrics and DeliveryMetrics (gateway_metrics.h):
// families, and copying the components' snapshots into them at scrape time.
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "service/metrics/gateway_metrics.h"
#include "service/metrics/metrics_registry.h"

namespace userpilot::gateway {
namespace {

// `name` if it is one of `known`, else "other": label values stay within a fixed set.
template <size_t N>
std::string Bounded(absl::string_view name, const absl::string_view (&known)[N]) {
  for (absl::string_view k : known) {
    if (k == name) return std::string(k);
  }
  return "other";
}

// Sets the counters of `family` (one label, `label`) from per-name totals. Names outside
// `known` are summed into "other".
template <size_t N>
void SetCountersByName(prometheus::Family<prometheus::Counter>& family,
                       const prometheus::Labels& base, const std::string& label,
                       const std::vector<std::pair<std::string, uint64_t>>& totals,
                       const absl::string_view (&known)[N]) {
  std::map<std::string, double> summed;
  for (const auto& [name, total] : totals) summed[Bounded(name, known)] += total;
  for (const auto& [name, total] : summed) {
    prometheus::Labels labels = base;
    labels[label] = name;
    SetCounterTo(family.Add(labels), total);
  }
}

// The caller label values of BudgetMetrics: the configured callers, then "other".
std::vector<std::string> CallerLabels(const std::set<std::string, std::less<>>& callers) {
  std::vector<std::string> labels(callers.begin(), callers.end());
  labels.push_back("other");
  return labels;
}

// Each configured caller's index in CallerLabels(callers).
absl::flat_hash_map<std::string, size_t> CallerIndexes(
    const std::set<std::string, std::less<>>& callers) {
  absl::flat_hash_map<std::string, size_t> indexes;
  for (const std::string& caller : callers) indexes.emplace(caller, indexes.size());
  return indexes;
}

}  // namespace

// --- budgets ---------------------------------------------------------------------------------

const std::vector<double>& BudgetMetrics::WaitBuckets() {
  static const auto* const kBuckets = new std::vector<double>{
      0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  return *kBuckets;
}

BudgetMetrics::BudgetMetrics(prometheus::Registry& registry, BudgetMetricsOptions options)
    : limit_per_second(prometheus::BuildGauge()
                           .Name("userpilot_gateway_budget_limit_per_second")
                           .Help("Configured rate of the budget, in requests per second.")
                           .Register(registry)),
      effective_limit_per_second(
          prometheus::BuildGauge()
              .Name("userpilot_gateway_budget_effective_limit_per_second")
              .Help("Rate the budget admits now, after slowing down on Userpilot's 429s.")
              .Register(registry)),
      tokens_available(prometheus::BuildGauge()
                           .Name("userpilot_gateway_budget_tokens_available")
                           .Help("Permits the budget could grant at once.")
                           .Register(registry)),
      queued(prometheus::BuildGauge()
                 .Name("userpilot_gateway_budget_queued")
                 .Help("Calls waiting for a permit of the budget.")
                 .Register(registry)),
      callers_waiting(prometheus::BuildGauge()
                          .Name("userpilot_gateway_budget_callers_waiting")
                          .Help("Distinct callers with calls waiting for the budget.")
                          .Register(registry)),
      paused(prometheus::BuildGauge()
                 .Name("userpilot_gateway_budget_paused")
                 .Help("1 while the budget is paused after a 429 from Userpilot, else 0.")
                 .Register(registry)),
      admissions(prometheus::BuildCounter()
                     .Name("userpilot_gateway_budget_admissions_total")
                     .Help("Calls admitted by the budget; queued=\"true\" if they had to wait.")
                     .Register(registry)),
      rejections(prometheus::BuildCounter()
                     .Name("userpilot_gateway_budget_rejections_total")
                     .Help("Calls the budget answered with an error instead of a permit, by "
                           "reason.")
                     .Register(registry)),
      upstream_pauses_capped(
          prometheus::BuildCounter()
              .Name("userpilot_gateway_budget_upstream_pause_capped_total")
              .Help("Upstream pause hints (429 Retry-After, X-RateLimit-Reset) longer than "
                    "--max_upstream_pause, cut to it.")
              .Register(registry)),
      upstream_rate_limited(prometheus::BuildCounter()
                                .Name("userpilot_gateway_budget_upstream_rate_limited_total")
                                .Help("429 answers from Userpilot to calls of the budget.")
                                .Register(registry)),
      wait_seconds(prometheus::BuildHistogram()
                       .Name("userpilot_gateway_budget_wait_seconds")
                       .Help("Time admitted calls waited for a permit of the budget.")
                       .Register(registry)),
      caller_calls(prometheus::BuildCounter()
                       .Name("userpilot_gateway_budget_caller_calls_total")
                       .Help("Calls per budget and configured caller (others: \"other\"), by "
                             "outcome (admitted, rejected).")
                       .Register(registry)),
      caller_labels_(CallerLabels(options.callers)),
      caller_index_(CallerIndexes(options.callers)) {}

void BudgetMetrics::Update(const BudgetSnapshot& s) {
  const prometheus::Labels budget = {{"budget", s.budget}};
  limit_per_second.Add(budget).Set(s.limit_per_second);
  effective_limit_per_second.Add(budget).Set(s.effective_limit_per_second);
  if (s.tokens_available >= 0) tokens_available.Add(budget).Set(s.tokens_available);
  queued.Add(budget).Set(static_cast<double>(s.queued));
  callers_waiting.Add(budget).Set(static_cast<double>(s.callers_waiting));
  paused.Add(budget).Set(s.paused ? 1 : 0);
  SetCounterTo(admissions.Add({{"budget", s.budget}, {"queued", "false"}}),
               static_cast<double>(s.admitted_immediately));
  SetCounterTo(admissions.Add({{"budget", s.budget}, {"queued", "true"}}),
               static_cast<double>(s.admitted_after_wait));
  SetCountersByName(rejections, budget, "reason", s.rejections, kBudgetRejectReasons);
  SetCounterTo(upstream_rate_limited.Add(budget), static_cast<double>(s.upstream_rate_limited));
  SetCounterTo(upstream_pauses_capped.Add(budget), static_cast<double>(s.upstream_pauses_capped));
  wait_seconds.Add(budget, WaitBuckets());  // Exists (at zero) before the first wait.
}

size_t BudgetMetrics::CallerIndex(absl::string_view caller) const {
  if (!caller.empty()) {
    if (auto it = caller_index_.find(caller); it != caller_index_.end()) return it->second;
  }
  return caller_labels_.size() - 1;  // "other"
}

BudgetMetrics::BudgetSeries& BudgetMetrics::SeriesOf(absl::string_view budget) {
  auto it = budgets_.find(budget);
  if (it == budgets_.end()) {
    BudgetSeries series;
    series.caller_calls.resize(caller_labels_.size());
    it = budgets_.emplace(std::string(budget), std::move(series)).first;
  }
  return it->second;
}

prometheus::Counter& BudgetMetrics::CallerCalls(BudgetSeries& series, absl::string_view budget,
                                                absl::string_view caller, Outcome outcome) {
  const size_t index = CallerIndex(caller);
  prometheus::Counter*& counter = series.caller_calls[index][outcome];
  if (counter == nullptr) {  // Family::Add on first use only.
    counter = &caller_calls.Add({{"budget", std::string(budget)},
                                 {"caller", caller_labels_[index]},
                                 {"outcome", outcome == kAdmitted ? "admitted" : "rejected"}});
  }
  return *counter;
}

void BudgetMetrics::OnAdmitted(absl::string_view budget, absl::string_view caller,
                               absl::Duration wait) {
  prometheus::Histogram* waits = nullptr;
  prometheus::Counter* calls = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    BudgetSeries& series = SeriesOf(budget);
    if (series.wait == nullptr) {  // Family::Add on first use only.
      series.wait = &wait_seconds.Add({{"budget", std::string(budget)}}, WaitBuckets());
    }
    waits = series.wait;
    calls = &CallerCalls(series, budget, caller, kAdmitted);
  }
  waits->Observe(absl::ToDoubleSeconds(wait));
  calls->Increment();
}

void BudgetMetrics::OnRejected(absl::string_view budget, absl::string_view caller,
                               absl::string_view /*reason*/) {
  prometheus::Counter* calls = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    calls = &CallerCalls(SeriesOf(budget), budget, caller, kRejected);
  }
  calls->Increment();
}

// --- retries ---------------------------------------------------------------------------------

RetryMetrics::RetryMetrics(prometheus::Registry& registry)
    : calls(prometheus::BuildCounter()
                .Name("userpilot_gateway_retry_calls_total")
                .Help("Calls that went through the retry layer.")
                .Register(registry)),
      retries(prometheus::BuildCounter()
                  .Name("userpilot_gateway_retries_total")
                  .Help("Retries scheduled, by what the failed attempt was.")
                  .Register(registry)),
      gave_up(prometheus::BuildCounter()
                  .Name("userpilot_gateway_retry_gave_up_total")
                  .Help("Calls that ended with an error, by why retrying stopped.")
                  .Register(registry)),
      recovered(prometheus::BuildCounter()
                    .Name("userpilot_gateway_retry_recovered_total")
                    .Help("Calls that succeeded after at least one retry.")
                    .Register(registry)),
      circuit_state(prometheus::BuildGauge()
                        .Name("userpilot_gateway_circuit_state")
                        .Help("Circuit breaker in front of Userpilot: 0 closed, "
                              "1 half-open, 2 open.")
                        .Register(registry)),
      circuit_opened(prometheus::BuildCounter()
                         .Name("userpilot_gateway_circuit_opened_total")
                         .Help("Times the circuit breaker opened.")
                         .Register(registry)),
      circuit_rejected(prometheus::BuildCounter()
                           .Name("userpilot_gateway_circuit_rejected_total")
                           .Help("Attempts the open circuit breaker refused.")
                           .Register(registry)) {}

void RetryMetrics::Update(const RetrySnapshot& s) {
  // Every reason exists (at zero) from the first update on, so rates show 0, not nothing.
  for (absl::string_view reason : kRetryReasons) retries.Add({{"reason", std::string(reason)}});
  for (absl::string_view reason : kRetryStopReasons) gave_up.Add({{"reason", std::string(reason)}});
  SetCounterTo(calls.Add({}), static_cast<double>(s.calls));
  SetCountersByName(retries, {}, "reason", s.retries_by_reason, kRetryReasons);
  SetCountersByName(gave_up, {}, "reason", s.gave_up_by_reason, kRetryStopReasons);
  SetCounterTo(recovered.Add({}), static_cast<double>(s.recovered));
  circuit_state.Add({}).Set(static_cast<double>(s.circuit_state));
  SetCounterTo(circuit_opened.Add({}), static_cast<double>(s.circuit_opened));
  SetCounterTo(circuit_rejected.Add({}), static_cast<double>(s.circuit_rejected));
}

// --- jobs ------------------------------------------------------------------------------------

JobMetrics::JobMetrics(prometheus::Registry& registry)
    : watchers(prometheus::BuildGauge()
                   .Name("userpilot_gateway_job_watchers")
                   .Help("Job watch streams open.")
                   .Register(registry)),
      pollers(prometheus::BuildGauge()
                  .Name("userpilot_gateway_job_pollers")
                  .Help("Jobs being polled (one poller per watched job).")
                  .Register(registry)),
      polls(prometheus::BuildCounter()
                .Name("userpilot_gateway_job_polls_total")
                .Help("Job reads made by pollers, by result (ok, error).")
                .Register(registry)),
      updates_fanned_out(
          prometheus::BuildCounter()
              .Name("userpilot_gateway_job_updates_fanned_out_total")
              .Help("Job state changes fanned out to watchers (once per change, however many "
                    "watchers).")
              .Register(registry)),
      imports_in_flight(prometheus::BuildGauge()
                            .Name("userpilot_gateway_imports_in_flight")
                            .Help("Import calls in progress.")
                            .Register(registry)),
      import_bytes(prometheus::BuildCounter()
                       .Name("userpilot_gateway_import_bytes_total")
                       .Help("Import file bytes received from callers and spooled.")
                       .Register(registry)),
      bound(prometheus::BuildGauge()
                .Name("userpilot_gateway_job_bound")
                .Help("Configured maximum of watchers (--max_watches), pollers "
                      "(--max_watched_jobs) and imports (--max_concurrent_imports).")
                .Register(registry)),
      refused(prometheus::BuildCounter()
                  .Name("userpilot_gateway_job_refused_total")
                  .Help("Job watch streams (kind=watch) and import calls (kind=import) refused "
                        "with RESOURCE_EXHAUSTED at a bound.")
                  .Register(registry)),
      import_timeouts(prometheus::BuildCounter()
                          .Name("userpilot_gateway_import_timeouts_total")
                          .Help("ImportData calls ended with DEADLINE_EXCEEDED before the upload, "
                                "by reason: idle (the caller sent nothing for "
                                "--import_idle_timeout), deadline (the call's deadline).")
                          .Register(registry)) {}

void JobMetrics::Update(const JobSnapshot& s) {
  watchers.Add({}).Set(static_cast<double>(s.watchers));
  pollers.Add({}).Set(static_cast<double>(s.pollers));
  SetCounterTo(polls.Add({{"result", "ok"}}), static_cast<double>(s.polls_ok));
  SetCounterTo(polls.Add({{"result", "error"}}), static_cast<double>(s.polls_failed));
  SetCounterTo(updates_fanned_out.Add({}), static_cast<double>(s.updates_fanned_out));
  imports_in_flight.Add({}).Set(static_cast<double>(s.imports_in_flight));
  if (s.import_bytes >= 0) SetCounterTo(import_bytes.Add({}), static_cast<double>(s.import_bytes));
  SetCounterTo(refused.Add({{"kind", "watch"}}), static_cast<double>(s.watches_refused));
  SetCounterTo(refused.Add({{"kind", "import"}}), static_cast<double>(s.imports_refused));
  SetCounterTo(import_timeouts.Add({{"reason", "idle"}}),
               static_cast<double>(s.import_idle_timeouts));
  SetCounterTo(import_timeouts.Add({{"reason", "deadline"}}),
               static_cast<double>(s.import_deadline_timeouts));
  const std::pair<const char*, uint64_t> bounds[] = {
      {"watchers", s.max_watchers}, {"pollers", s.max_pollers}, {"imports", s.max_imports}};
  for (const auto& [name, value] : bounds) {
    if (value > 0) bound.Add({{"bound", name}}).Set(static_cast<double>(value));
  }
}

// --- job lanes -------------------------------------------------------------------------------

const std::vector<double>& JobLaneMetrics::WaitBuckets() {
  static const auto* const kBuckets =
      new std::vector<double>{0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
  return *kBuckets;
}

JobLaneMetrics::JobLaneMetrics(prometheus::Registry& registry)
    : waiting(prometheus::BuildGauge()
                  .Name("userpilot_gateway_job_lane_waiting")
                  .Help("Bulk or import calls waiting their turn on the job lane.")
                  .Register(registry)),
      max_waiting(prometheus::BuildGauge()
                      .Name("userpilot_gateway_job_lane_max_waiting")
                      .Help("Most calls that may wait their turn on the job lane "
                            "(--job_lane_max_waiting); beyond, calls are refused at once.")
                      .Register(registry)),
      job_running(prometheus::BuildGauge()
                      .Name("userpilot_gateway_job_lane_job_running")
                      .Help("1 while the job lane knows a job that may still run (the next call "
                            "on the lane waits for it), else 0.")
                      .Register(registry)),
      admissions(prometheus::BuildCounter()
                     .Name("userpilot_gateway_job_lane_admissions_total")
                     .Help("Calls the job lane sent to Userpilot; queued=\"true\" if they had to "
                           "wait.")
                     .Register(registry)),
      rejections(prometheus::BuildCounter()
                     .Name("userpilot_gateway_job_lane_rejections_total")
                     .Help("Calls the job lane refused with FAILED_PRECONDITION/JOB_IN_PROGRESS, "
                           "nothing sent, by reason.")
                     .Register(registry)),
      conflicts(prometheus::BuildCounter()
                    .Name("userpilot_gateway_job_lane_conflicts_total")
                    .Help("409s from Userpilot to the job lane's calls: a job started elsewhere "
                          "(another replica, another client of the key).")
                    .Register(registry)),
      wait_seconds(prometheus::BuildHistogram()
                       .Name("userpilot_gateway_job_lane_wait_seconds")
                       .Help("Time calls sent by the job lane waited on it (their turn and the "
                             "running job).")
                       .Register(registry)) {}

void JobLaneMetrics::Update(const JobLaneSnapshot& s) {
  const prometheus::Labels lane = {{"lane", s.lane}};
  waiting.Add(lane).Set(static_cast<double>(s.waiting));
  max_waiting.Add(lane).Set(static_cast<double>(s.max_waiting));
  job_running.Add(lane).Set(s.job_running ? 1 : 0);
  SetCounterTo(admissions.Add({{"lane", s.lane}, {"queued", "false"}}),
               static_cast<double>(s.admitted_immediately));
  SetCounterTo(admissions.Add({{"lane", s.lane}, {"queued", "true"}}),
               static_cast<double>(s.admitted_after_wait));
  // Every reason exists (at zero) from the first update on, so rates show 0, not nothing.
  for (absl::string_view reason : kJobLaneRejectReasons) {
    rejections.Add({{"lane", s.lane}, {"reason", std::string(reason)}});
  }
  SetCountersByName(rejections, lane, "reason", s.rejections, kJobLaneRejectReasons);
  SetCounterTo(conflicts.Add(lane), static_cast<double>(s.conflicts));
  wait_seconds.Add(lane, WaitBuckets());  // Exists (at zero) before the first send.
}

void JobLaneMetrics::OnSent(absl::string_view lane, absl::Duration wait) {
  wait_seconds.Add({{"lane", std::string(lane)}}, WaitBuckets())
      .Observe(absl::ToDoubleSeconds(wait));
}

// --- delivery --------------------------------------------------------------------------------

const std::vector<double>& DeliveryMetrics::AppendBuckets() {
  static const auto* const kBuckets = new std::vector<double>{
      0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
  return *kBuckets;
}

DeliveryMetrics::DeliveryMetrics(prometheus::Registry& registry)
    : backlog(prometheus::BuildGauge()
                  .Name("userpilot_gateway_delivery_backlog_calls")
                  .Help("Enqueued calls neither delivered nor dead (in flight included).")
                  .Register(registry)),
      backlog_age(prometheus::BuildGauge()
                      .Name("userpilot_gateway_delivery_backlog_age_seconds")
                      .Help("Age of the oldest enqueued call not yet delivered nor dead; 0 when "
                            "there is none.")
                      .Register(registry)),
      dead_letters(prometheus::BuildGauge()
                       .Name("userpilot_gateway_delivery_dead_letters")
                       .Help("Dead letters held: enqueued calls Userpilot refused for good.")
                       .Register(registry)),
      bytes(prometheus::BuildGauge()
                .Name("userpilot_gateway_delivery_queue_bytes")
                .Help("Storage the durable queue uses, bytes.")
                .Register(registry)),
      max_bytes(prometheus::BuildGauge()
                    .Name("userpilot_gateway_delivery_queue_max_bytes")
                    .Help("The durable queue's bound (--queue_max_bytes): Enqueue answers "
                          "RESOURCE_EXHAUSTED beyond it.")
                    .Register(registry)),
      in_flight(prometheus::BuildGauge()
                    .Name("userpilot_gateway_delivery_in_flight")
                    .Help("Enqueued calls the dispatcher holds (leased: waiting for their pace "
                          "or sent).")
                    .Register(registry)),
      max_in_flight(prometheus::BuildGauge()
                        .Name("userpilot_gateway_delivery_max_in_flight")
                        .Help("The dispatcher's bound (--queue_max_in_flight).")
                        .Register(registry)),
      enqueued(prometheus::BuildCounter()
                   .Name("userpilot_gateway_delivery_enqueued_total")
                   .Help("Enqueue appends by result: stored, duplicate (an idempotency key seen "
                         "before: nothing stored), refused_full (RESOURCE_EXHAUSTED).")
                   .Register(registry)),
      append_seconds(prometheus::BuildHistogram()
                         .Name("userpilot_gateway_delivery_append_seconds")
                         .Help("Time from an Enqueue append to its acknowledgement (durable: "
                               "group commit and fsync included).")
                         .Register(registry)),
      fsyncs(prometheus::BuildCounter()
                 .Name("userpilot_gateway_delivery_fsyncs_total")
                 .Help("Group commits of the embedded queue: fdatasync() calls that made "
                       "appends and outcomes durable.")
                 .Register(registry)),
      fsync_seconds(prometheus::BuildCounter()
                        .Name("userpilot_gateway_delivery_fsync_seconds_total")
                        .Help("Time the group commits' fdatasync() calls took.")
                        .Register(registry)),
      attempts(prometheus::BuildCounter()
                   .Name("userpilot_gateway_delivery_attempts_total")
                   .Help("Delivery attempts of enqueued calls by outcome: delivered, retry "
                         "(sent again later), dead (a dead letter).")
                   .Register(registry)),
      in_doubt(prometheus::BuildCounter()
                   .Name("userpilot_gateway_delivery_in_doubt_total")
                   .Help("Delivery attempts of calls leased before without a recorded outcome "
                         "(the gateway died meanwhile): possible duplicates at Userpilot.")
                   .Register(registry)),
      coalesced_rows_in_flight(
          prometheus::BuildGauge()
              .Name("userpilot_gateway_delivery_coalesced_rows_in_flight")
              .Help("Enqueued identify calls held as rows of the dispatcher's running bulk "
                    "identify job, waiting for its end (not counted in ..._delivery_in_flight).")
              .Register(registry)),
      coalesced_rows(
          prometheus::BuildCounter()
              .Name("userpilot_gateway_delivery_coalesced_rows_total")
              .Help("Enqueued identify calls the dispatcher sent as rows of its bulk "
                    "identify jobs, by outcome: delivered (the job completed), "
                    "returned (sent as single calls next, or left to the next lease at a stop).")
              .Register(registry)),
      coalesced_jobs(prometheus::BuildCounter()
                         .Name("userpilot_gateway_delivery_coalesced_jobs_total")
                         .Help("Bulk identify jobs the dispatcher sent for coalesced calls, by "
                               "outcome: completed, failed, refused (the bulk call failed), "
                               "timeout (--queue_coalesce_job_timeout, or unreadable), stopped.")
                         .Register(registry)),
      leases_lost(prometheus::BuildCounter()
                      .Name("userpilot_gateway_delivery_leases_lost_total")
                      .Help("Enqueued calls this replica held leased and unsent (rows of a "
                            "coalesced job, or waiting for their pace) that another replica took "
                            "over after their lease lapsed (--queue_redis): no outcome is "
                            "recorded for them here.")
                      .Register(registry)),
      bulk_gate_calls(prometheus::BuildGauge()
                          .Name("userpilot_gateway_delivery_bulk_gate_calls")
                          .Help("Enqueued identify calls a bulk job may still apply (leased in "
                                "doubt, or rows of a job cut by --queue_coalesce_job_timeout or "
                                "unreadable), held until ListJobs shows no bulk job running "
                                "(not counted in ..._delivery_in_flight).")
                          .Register(registry)),
      bulk_checks(prometheus::BuildCounter()
                      .Name("userpilot_gateway_delivery_bulk_checks_total")
                      .Help("ListJobs calls the dispatcher made for the calls a bulk job may "
                            "still apply, by result: no_job (they go), job_running, failed "
                            "(tried again after a backoff).")
                      .Register(registry)),
      bulk_gate_released(
          prometheus::BuildCounter()
              .Name("userpilot_gateway_delivery_bulk_gate_released_total")
              .Help("Calls that stopped waiting for no bulk job to run, by why: no_job (a "
                    "check found none), deadline (--queue_coalesce_job_timeout passed first: "
                    "sent all the same).")
              .Register(registry)),
      replay_dropped_bytes(
          prometheus::BuildGauge()
              .Name("userpilot_gateway_delivery_replay_dropped_bytes")
              .Help("Bytes the embedded queue dropped when it was opened, by damage: torn_tail "
                    "(an unfinished last write, never acknowledged), corrupt (regions skipped "
                    "for a checksum failure: the records in them may be lost).")
              .Register(registry)) {}

void DeliveryMetrics::Enable() {
  append_seconds.Add({}, AppendBuckets());
  for (const char* outcome : {"delivered", "retry", "dead"}) attempts.Add({{"outcome", outcome}});
  in_doubt.Add({});
  for (const char* outcome : {"delivered", "returned"}) coalesced_rows.Add({{"outcome", outcome}});
  for (const char* outcome : {"completed", "failed", "refused", "timeout", "stopped"}) {
    coalesced_jobs.Add({{"outcome", outcome}});
  }
  leases_lost.Add({});
  for (const char* result : {"no_job", "job_running", "failed"}) {
    bulk_checks.Add({{"result", result}});
  }
  for (const char* why : {"no_job", "deadline"}) bulk_gate_released.Add({{"why", why}});
}

void DeliveryMetrics::Update(const DeliverySnapshot& s) {
  backlog.Add({}).Set(static_cast<double>(s.backlog));
  backlog_age.Add({}).Set(s.backlog_age_seconds);
  dead_letters.Add({}).Set(static_cast<double>(s.dead_letters));
  bytes.Add({}).Set(static_cast<double>(s.bytes));
  max_bytes.Add({}).Set(static_cast<double>(s.max_bytes));
  in_flight.Add({}).Set(static_cast<double>(s.in_flight));
  max_in_flight.Add({}).Set(static_cast<double>(s.max_in_flight));
  coalesced_rows_in_flight.Add({}).Set(static_cast<double>(s.coalesced_rows_in_flight));
  bulk_gate_calls.Add({}).Set(static_cast<double>(s.bulk_gate_calls));
  SetCounterTo(enqueued.Add({{"result", "stored"}}), static_cast<double>(s.stored));
  SetCounterTo(enqueued.Add({{"result", "duplicate"}}), static_cast<double>(s.duplicates));
  SetCounterTo(enqueued.Add({{"result", "refused_full"}}), static_cast<double>(s.refused_full));
  SetCounterTo(fsyncs.Add({}), static_cast<double>(s.fsyncs));
  SetCounterTo(fsync_seconds.Add({}), s.fsync_seconds);
  replay_dropped_bytes.Add({{"damage", "torn_tail"}})
      .Set(static_cast<double>(s.replay_torn_tail_bytes));
  replay_dropped_bytes.Add({{"damage", "corrupt"}})
      .Set(static_cast<double>(s.replay_corrupt_bytes));
}

void DeliveryMetrics::RecordAppend(absl::Duration latency) {
  append_seconds.Add({}, AppendBuckets()).Observe(absl::ToDoubleSeconds(latency));
}

void DeliveryMetrics::RecordCoalescedJob(absl::string_view job_outcome,
                                         absl::string_view row_outcome, size_t rows) {
  coalesced_jobs.Add({{"outcome", std::string(job_outcome)}}).Increment();
  coalesced_rows.Add({{"outcome", std::string(row_outcome)}}).Increment(static_cast<double>(rows));
}

void DeliveryMetrics::RecordLeasesLost(size_t records) {
  leases_lost.Add({}).Increment(static_cast<double>(records));
}

void DeliveryMetrics::RecordBulkCheck(absl::string_view result) {
  bulk_checks.Add({{"result", std::string(result)}}).Increment();
}

void DeliveryMetrics::RecordGateReleased(absl::string_view why, size_t calls) {
  bulk_gate_released.Add({{"why", std::string(why)}}).Increment(static_cast<double>(calls));
}

void DeliveryMetrics::RecordAttempt(absl::string_view outcome, bool in_doubt_attempt) {
  attempts.Add({{"outcome", std::string(outcome)}}).Increment();
  if (in_doubt_attempt) in_doubt.Add({}).Increment();
}

}  // namespace userpilot::gateway
