// MetricsRegistry: the one collection of metrics the gateway exposes on /metrics.
//
// It wraps a prometheus::Registry (where gateway_metrics.h creates every metric family) and adds
// two ways for values that live elsewhere to be read at scrape time:
//  - collect hooks: functions run at the start of every Collect(), which copy a component's
//    Stats() snapshot into its metric families (gauges set, counters moved up to the
//    snapshot's total with SetCounterTo). Components keep their own counters; nothing is
//    pushed on their hot path.
//  - extra collectables (the process collector), whose families are appended to the output.
//
// The MetricsServer serves a MetricsRegistry; tests build a private one and read it with
// Collect() or Serialize(), checking metrics by exact name and labels.
//
// Thread-safety: every method is thread-safe. Hooks run one at a time (under one lock), so
// two concurrent scrapes never move a counter twice; a hook must not block, and must not add
// or remove hooks. Destroying a CollectHook waits for a Collect() that is running hooks.
#ifndef USERPILOT_GATEWAY_SERVICE_METRICS_METRICS_REGISTRY_H_
#define USERPILOT_GATEWAY_SERVICE_METRICS_METRICS_REGISTRY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"

namespace userpilot::gateway {

class MetricsRegistry final : public prometheus::Collectable {
 public:
  // Keeps a hook registered; destroying (or Reset()ting) it unregisters the hook. Destroy it
  // before whatever the hook reads (declare it after that member, or reset it first).
  class CollectHook {
   public:
    CollectHook() = default;
    CollectHook(CollectHook&& other) noexcept;
    CollectHook& operator=(CollectHook&& other) noexcept;
    CollectHook(const CollectHook&) = delete;
    CollectHook& operator=(const CollectHook&) = delete;
    ~CollectHook() { Reset(); }

    // Unregisters now; waits for a Collect() running hooks. Idempotent.
    void Reset();
    bool active() const { return id_ != 0; }

   private:
    friend class MetricsRegistry;
    struct Hooks;
    CollectHook(std::weak_ptr<Hooks> hooks, uint64_t id) : hooks_(std::move(hooks)), id_(id) {}
    std::weak_ptr<Hooks> hooks_;
    uint64_t id_ = 0;
  };

  MetricsRegistry();
  ~MetricsRegistry() override;

  // Where metric families are created (the Build*() helpers of prometheus-cpp, or the structs
  // of gateway_metrics.h). Lives as long as this object.
  prometheus::Registry& registry() { return *registry_; }

  // Runs `refresh` at the start of every Collect(), in the order hooks were added.
  [[nodiscard]] CollectHook AddCollectHook(std::function<void()> refresh);

  // Appends `collectable`'s families to every Collect() (kept alive by this registry).
  void AddCollectable(std::shared_ptr<prometheus::Collectable> collectable);

  // Runs the hooks, then collects the registry and every extra collectable.
  std::vector<prometheus::MetricFamily> Collect() const override;

  // Collect() in Prometheus' text exposition format (what /metrics serves).
  std::string Serialize() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<CollectHook::Hooks> hooks_;
  mutable std::mutex collectables_mu_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;  // guarded
};

// Moves `counter` up to `total` (a component's own monotonic count, read from a snapshot).
// A smaller `total` is ignored: a Prometheus counter never goes down.
void SetCounterTo(prometheus::Counter& counter, double total);

// Finds one sample in `families`: the family named `name` (for a histogram, its base name),
// the metric whose labels are exactly `labels`; a copy, or nullopt when absent. For tests and
// tools.
std::optional<prometheus::ClientMetric> FindMetric(
    const std::vector<prometheus::MetricFamily>& families, absl::string_view name,
    const std::map<std::string, std::string>& labels = {});

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_METRICS_METRICS_REGISTRY_H_
