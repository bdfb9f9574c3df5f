// ExportRetries and ToRetrySnapshot (component_exports.h).
#include <string>

#include "service/metrics/component_exports.h"
#include "service/retry/circuit_breaker.h"
#include "service/retry/retrying_stub.h"

namespace userpilot::gateway {

RetrySnapshot ToRetrySnapshot(const RetryStats& stats) {
  RetrySnapshot s;
  s.calls = static_cast<uint64_t>(stats.calls);
  for (size_t i = 0; i < kRetryCauseCount; ++i) {
    s.retries_by_reason.emplace_back(std::string(RetryCauseName(static_cast<RetryCause>(i))),
                                     static_cast<uint64_t>(stats.retries_by_cause[i]));
  }
  for (size_t i = 0; i < kStopReasonCount; ++i) {
    s.gave_up_by_reason.emplace_back(std::string(StopReasonName(static_cast<StopReason>(i))),
                                     static_cast<uint64_t>(stats.failed_by_stop_reason[i]));
  }
  s.recovered = static_cast<uint64_t>(stats.recovered);
  // The gauge's own scale (0 closed, 1 half-open, 2 open: worse is higher), not the enum's.
  switch (stats.circuit.state) {
    case CircuitState::kClosed:
      s.circuit_state = CircuitStateValue::kClosed;
      break;
    case CircuitState::kHalfOpen:
      s.circuit_state = CircuitStateValue::kHalfOpen;
      break;
    case CircuitState::kOpen:
      s.circuit_state = CircuitStateValue::kOpen;
      break;
  }
  s.circuit_opened = static_cast<uint64_t>(stats.circuit.times_opened);
  s.circuit_rejected = static_cast<uint64_t>(stats.circuit.rejected);
  return s;
}

MetricsRegistry::CollectHook ExportRetries(MetricsRegistry& registry, RetryMetrics& metrics,
                                           const RetryingStub& stub) {
  return registry.AddCollectHook(
      [&metrics, &stub] { metrics.Update(ToRetrySnapshot(stub.stats())); });
}

}  // namespace userpilot::gateway
