#include "service/http/latency_estimate.h"

#include <cmath>

#include "gtest/gtest.h"

namespace userpilot::gateway::http_internal {
namespace {

double Seconds(const LatencyEstimate& e) { return absl::ToDoubleSeconds(e.typical()); }

TEST(LatencyEstimateTest, ZeroUntilEnoughAnswers) {
  LatencyEstimate e;
  for (int64_t i = 1; i < LatencyEstimate::kMinSamples; ++i) {
    e.Add(absl::Seconds(2));
    EXPECT_EQ(e.typical(), absl::ZeroDuration()) << i;
  }
  e.Add(absl::Seconds(2));
  EXPECT_NEAR(Seconds(e), 2.0, 1e-9);
  EXPECT_EQ(e.samples(), LatencyEstimate::kMinSamples);
}

TEST(LatencyEstimateTest, TheFirstAnswersCountEquallyAsAGeometricMean) {
  LatencyEstimate e;
  // Half at 100 ms, half at 400 ms: the geometric mean is 200 ms (the arithmetic one 250 ms).
  for (int64_t i = 0; i < LatencyEstimate::kMinSamples; ++i) {
    e.Add(absl::Milliseconds(i % 2 == 0 ? 100 : 400));
  }
  EXPECT_NEAR(Seconds(e), 0.2, 1e-9);
}

TEST(LatencyEstimateTest, OneOutlierMovesItByTheWeight) {
  LatencyEstimate e;
  for (int64_t i = 0; i < LatencyEstimate::kMinSamples; ++i) e.Add(absl::Milliseconds(100));
  e.Add(absl::Seconds(1));  // Ten times slower.
  EXPECT_NEAR(Seconds(e), 0.1 * std::pow(10.0, LatencyEstimate::kWeight), 1e-9);
  EXPECT_LT(Seconds(e), 0.116);
}

TEST(LatencyEstimateTest, FollowsAChangeWithinAFewWeights) {
  LatencyEstimate e;
  for (int i = 0; i < 100; ++i) e.Add(absl::Milliseconds(100));
  // The upstream slows down fifteenfold.
  for (int i = 0; i < 16; ++i) e.Add(absl::Milliseconds(1500));
  // After 16 answers, (15/16)^16 = 36% of the log distance is left: 0.1 * 15^0.64 s.
  EXPECT_NEAR(Seconds(e), 0.1 * std::pow(15.0, 1 - std::pow(15.0 / 16, 16)), 1e-9);
  for (int i = 0; i < 84; ++i) e.Add(absl::Milliseconds(1500));
  EXPECT_NEAR(Seconds(e), 1.5, 0.01);
  // And back.
  for (int i = 0; i < 100; ++i) e.Add(absl::Milliseconds(100));
  EXPECT_NEAR(Seconds(e), 0.1, 0.001);
}

TEST(LatencyEstimateTest, ZeroAndNegativeLatenciesAreFloored) {
  LatencyEstimate e;
  for (int64_t i = 0; i < LatencyEstimate::kMinSamples; ++i) e.Add(absl::ZeroDuration());
  EXPECT_NEAR(Seconds(e), 1e-6, 1e-12);
  e.Add(-absl::Seconds(1));
  EXPECT_NEAR(Seconds(e), 1e-6, 1e-12);
}

}  // namespace
}  // namespace userpilot::gateway::http_internal
