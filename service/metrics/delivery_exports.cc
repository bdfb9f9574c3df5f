// ExportDelivery and ToDeliverySnapshot (component_exports.h).
#include "service/delivery/delivery_store.h"
#include "service/delivery/dispatcher.h"
#include "service/metrics/component_exports.h"

namespace userpilot::gateway {

DeliverySnapshot ToDeliverySnapshot(const DeliveryStoreStats& stats, absl::Time now) {
  DeliverySnapshot s;
  s.backlog = stats.pending;
  if (stats.pending > 0 && stats.oldest_pending_enqueue_time != absl::InfiniteFuture() &&
      stats.oldest_pending_enqueue_time < now) {
    s.backlog_age_seconds = absl::ToDoubleSeconds(now - stats.oldest_pending_enqueue_time);
  }
  s.dead_letters = stats.dead;
  s.bytes = stats.bytes;
  s.max_bytes = stats.max_bytes;
  s.stored = stats.appends;
  s.duplicates = stats.duplicates;
  s.refused_full = stats.refused_full;
  s.fsyncs = stats.group_commit_fsyncs;
  s.fsync_seconds = absl::ToDoubleSeconds(stats.group_commit_fsync_time);
  s.replay_torn_tail_bytes = stats.torn_tail_bytes;
  s.replay_corrupt_bytes = stats.corrupt_bytes;
  return s;
}

MetricsRegistry::CollectHook ExportDelivery(MetricsRegistry& registry, DeliveryMetrics& metrics,
                                            const DeliveryStore& store,
                                            const Dispatcher& dispatcher, size_t max_in_flight) {
  metrics.Enable();
  return registry.AddCollectHook([&metrics, &store, &dispatcher, max_in_flight] {
    DeliverySnapshot s = ToDeliverySnapshot(store.Stats(), absl::Now());
    s.in_flight = dispatcher.in_flight();
    s.coalesced_rows_in_flight = dispatcher.coalesced_rows();
    s.bulk_gate_calls = dispatcher.gated_rows();
    s.max_in_flight = max_in_flight;
    metrics.Update(s);
  });
}

}  // namespace userpilot::gateway
