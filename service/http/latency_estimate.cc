#include "service/http/latency_estimate.h"

#include <algorithm>
#include <cmath>

namespace userpilot::gateway::http_internal {
namespace {

// log() needs a positive number: a loopback answer can be measured as 0.
constexpr double kFloorSeconds = 1e-6;

}  // namespace

void LatencyEstimate::Add(absl::Duration latency) {
  const double x = std::log(std::max(absl::ToDoubleSeconds(latency), kFloorSeconds));
  ++samples_;
  // A plain mean of the first kMinSamples answers, then the exponentially weighted one.
  const double weight = std::max(1.0 / static_cast<double>(samples_), kWeight);
  log_mean_ += weight * (x - log_mean_);
  if (samples_ >= kMinSamples) typical_ = absl::Seconds(std::exp(log_mean_));
}

}  // namespace userpilot::gateway::http_internal
