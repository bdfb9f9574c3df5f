#include "service/metrics/metrics_registry.h"

#include <sstream>
#include <utility>

#include "prometheus/text_serializer.h"

namespace userpilot::gateway {

struct MetricsRegistry::CollectHook::Hooks {
  std::mutex mu;
  uint64_t next_id = 1;                               // guarded
  std::map<uint64_t, std::function<void()>> refresh;  // guarded; ordered by id
};

MetricsRegistry::CollectHook::CollectHook(CollectHook&& other) noexcept
    : hooks_(std::move(other.hooks_)), id_(other.id_) {
  other.id_ = 0;
}

MetricsRegistry::CollectHook& MetricsRegistry::CollectHook::operator=(
    CollectHook&& other) noexcept {
  if (this != &other) {
    Reset();
    hooks_ = std::move(other.hooks_);
    id_ = other.id_;
    other.id_ = 0;
  }
  return *this;
}

void MetricsRegistry::CollectHook::Reset() {
  if (id_ == 0) return;
  if (std::shared_ptr<Hooks> hooks = hooks_.lock()) {
    std::function<void()> removed;  // Destroyed outside the lock.
    std::lock_guard<std::mutex> lock(hooks->mu);
    auto it = hooks->refresh.find(id_);
    if (it != hooks->refresh.end()) {
      removed = std::move(it->second);
      hooks->refresh.erase(it);
    }
  }
  hooks_.reset();
  id_ = 0;
}

MetricsRegistry::MetricsRegistry()
    : registry_(std::make_shared<prometheus::Registry>()),
      hooks_(std::make_shared<CollectHook::Hooks>()) {}

MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::CollectHook MetricsRegistry::AddCollectHook(std::function<void()> refresh) {
  std::lock_guard<std::mutex> lock(hooks_->mu);
  const uint64_t id = hooks_->next_id++;
  hooks_->refresh.emplace(id, std::move(refresh));
  return CollectHook(hooks_, id);
}

void MetricsRegistry::AddCollectable(std::shared_ptr<prometheus::Collectable> collectable) {
  std::lock_guard<std::mutex> lock(collectables_mu_);
  collectables_.push_back(std::move(collectable));
}

std::vector<prometheus::MetricFamily> MetricsRegistry::Collect() const {
  {
    std::lock_guard<std::mutex> lock(hooks_->mu);
    for (auto& [id, refresh] : hooks_->refresh) refresh();
  }
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables;
  {
    std::lock_guard<std::mutex> lock(collectables_mu_);
    collectables = collectables_;
  }
  for (const auto& collectable : collectables) {
    for (auto& family : collectable->Collect()) families.push_back(std::move(family));
  }
  return families;
}

std::string MetricsRegistry::Serialize() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, Collect());
  return out.str();
}

void SetCounterTo(prometheus::Counter& counter, double total) {
  const double delta = total - counter.Value();
  if (delta > 0) counter.Increment(delta);
}

std::optional<prometheus::ClientMetric> FindMetric(
    const std::vector<prometheus::MetricFamily>& families, absl::string_view name,
    const std::map<std::string, std::string>& labels) {
  for (const auto& family : families) {
    if (family.name != name) continue;
    for (const auto& metric : family.metric) {
      if (metric.label.size() != labels.size()) continue;
      bool same = true;
      for (const auto& pair : metric.label) {
        auto it = labels.find(pair.name);
        if (it == labels.end() || it->second != pair.value) {
          same = false;
          break;
        }
      }
      if (same) return metric;
    }
  }
  return std::nullopt;
}

}  // namespace userpilot::gateway
