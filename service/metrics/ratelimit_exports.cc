// ExportBudgets, ToBudgetSnapshot, ExportJobLanes and ToJobLaneSnapshot (component_exports.h).
#include "service/metrics/component_exports.h"
#include "service/ratelimit/budgets.h"
#include "service/ratelimit/fair_limiter.h"
#include "service/ratelimit/job_lane.h"

namespace userpilot::gateway {

BudgetSnapshot ToBudgetSnapshot(const FairLimiterStats& stats) {
  BudgetSnapshot s;
  s.budget = stats.budget;
  const double window = absl::ToDoubleSeconds(stats.window);
  if (window > 0) {
    s.limit_per_second = static_cast<double>(stats.configured_limit) / window;
    s.effective_limit_per_second = stats.current_limit / window;
  }
  s.queued = stats.queued;
  s.callers_waiting = stats.callers_waiting;
  s.paused = stats.paused;
  s.admitted_immediately = stats.admitted_without_wait;
  s.admitted_after_wait = stats.admitted_after_wait;
  s.rejections = {
      {"queue_full", stats.rejected_queue_full},
      {"caller_queue_full", stats.rejected_caller_cap},
      {"wait_exceeds_deadline", stats.rejected_wait_exceeds_deadline},
      {"pushed_out", stats.pushed_out},
      {"displaced", stats.displaced},
      {"deadline_reached", stats.deadline_exceeded},
      {"source_error", stats.source_errors},
      {"shutdown", stats.cancelled_by_shutdown},
  };
  s.upstream_rate_limited = stats.upstream_rate_limited;
  s.upstream_pauses_capped = stats.upstream_pauses_capped;
  s.tokens_available = stats.tokens_available;
  return s;
}

MetricsRegistry::CollectHook ExportBudgets(MetricsRegistry& registry, BudgetMetrics& metrics,
                                           const Budgets& budgets) {
  return registry.AddCollectHook([&metrics, limiters = budgets.All()] {
    for (const auto& limiter : limiters) {
      if (limiter != nullptr) metrics.Update(ToBudgetSnapshot(limiter->Stats()));
    }
  });
}

JobLaneSnapshot ToJobLaneSnapshot(const JobLaneStats& stats) {
  JobLaneSnapshot s;
  s.lane = stats.lane;
  s.waiting = stats.waiting;
  s.max_waiting = stats.max_waiting;
  s.job_running = !stats.remembered_job.empty();
  s.admitted_after_wait = stats.waited;
  s.admitted_immediately = stats.sent - stats.waited;
  s.rejections = {
      {"queue_full", stats.refused_lane_full},
      {"deadline_reached", stats.refused_deadline},
      {"wait_exceeds_deadline", stats.refused_job_unfinished},
  };
  s.conflicts = stats.conflicts;
  return s;
}

MetricsRegistry::CollectHook ExportJobLanes(MetricsRegistry& registry, JobLaneMetrics& metrics,
                                            const JobLaneStub& lanes) {
  return registry.AddCollectHook([&metrics, &lanes] {
    for (const JobLaneStats& stats : lanes.Stats()) metrics.Update(ToJobLaneSnapshot(stats));
  });
}

}  // namespace userpilot::gateway
