// Collect hooks that export the gateway components' own Stats() at scrape time, through the
// metric structs of gateway_metrics.h:
//
//   ExportBudgets   Budgets (every FairLimiter)         -> BudgetMetrics   (upgw_metrics_ratelimit)
//   ExportJobLanes  JobLaneStub::Stats()                -> JobLaneMetrics  (upgw_metrics_ratelimit)
//   ExportRetries   RetryingStub::stats()               -> RetryMetrics    (upgw_metrics_retry)
//   ExportJobs      JobWatchRegistry, Importer Stats()  -> JobMetrics      (upgw_metrics_jobs)
//   ExportDelivery  DeliveryStore Stats(), Dispatcher   -> DeliveryMetrics (upgw_metrics_delivery,
//                                                          built in service/delivery/)
//
// Each lives in its own small library (linked by the composition root) so that the metrics
// core does not depend on the components. The To*Snapshot functions are the whole mapping,
// tested on their own.
//
// Lifetimes: a hook reads its component until it is destroyed: destroy (or Reset) the hook
// before the component. Thread-safety: as MetricsRegistry's hooks.
#ifndef USERPILOT_GATEWAY_SERVICE_METRICS_COMPONENT_EXPORTS_H_
#define USERPILOT_GATEWAY_SERVICE_METRICS_COMPONENT_EXPORTS_H_

#include "service/metrics/gateway_metrics.h"
#include "service/metrics/metrics_registry.h"

namespace userpilot::gateway {

struct Budgets;
struct FairLimiterStats;
class JobLaneStub;
struct JobLaneStats;
class RetryingStub;
struct RetryStats;
class JobWatchRegistry;
struct JobWatchStats;
class Importer;
struct ImportStats;
class DeliveryStore;
struct DeliveryStoreStats;
class Dispatcher;

// --- upgw_metrics_ratelimit ---
BudgetSnapshot ToBudgetSnapshot(const FairLimiterStats& stats);
// Copies budgets (shared pointers) and reads every limiter's Stats() at each scrape.
[[nodiscard]] MetricsRegistry::CollectHook ExportBudgets(MetricsRegistry& registry,
                                                         BudgetMetrics& metrics,
                                                         const Budgets& budgets);

JobLaneSnapshot ToJobLaneSnapshot(const JobLaneStats& stats);
// Reads every lane's Stats() at each scrape.
[[nodiscard]] MetricsRegistry::CollectHook ExportJobLanes(MetricsRegistry& registry,
                                                          JobLaneMetrics& metrics,
                                                          const JobLaneStub& lanes);

// --- upgw_metrics_retry ---
RetrySnapshot ToRetrySnapshot(const RetryStats& stats);
[[nodiscard]] MetricsRegistry::CollectHook ExportRetries(MetricsRegistry& registry,
                                                         RetryMetrics& metrics,
                                                         const RetryingStub& stub);

// --- upgw_metrics_jobs ---
// `imports` may be null (no imports served): the import metrics then stay at zero.
JobSnapshot ToJobSnapshot(const JobWatchStats& watches, const ImportStats* imports);
[[nodiscard]] MetricsRegistry::CollectHook ExportJobs(MetricsRegistry& registry,
                                                      JobMetrics& metrics,
                                                      const JobWatchRegistry& watches,
                                                      const Importer* importer);

// --- upgw_metrics_delivery ---
// `now` dates the backlog's age.
DeliverySnapshot ToDeliverySnapshot(const DeliveryStoreStats& stats, absl::Time now);
// Enables the delivery series, then reads the store's Stats() and the dispatcher's in-flight
// count at each scrape. `max_in_flight`: the dispatcher's bound.
[[nodiscard]] MetricsRegistry::CollectHook ExportDelivery(MetricsRegistry& registry,
                                                          DeliveryMetrics& metrics,
                                                          const DeliveryStore& store,
                                                          const Dispatcher& dispatcher,
                                                          size_t max_in_flight);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_METRICS_COMPONENT_EXPORTS_H_
