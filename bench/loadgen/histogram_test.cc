#include "bench/loadgen/histogram.h"

#include <cmath>
#include <random>
#include <vector>

#include "bench/loadgen/request_mix.h"
#include "gtest/gtest.h"

namespace userpilot::gateway::bench {
namespace {

TEST(LatencyHistogramTest, EmptyReportsZeros) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0);
  EXPECT_EQ(h.ValueAtQuantile(0.5), 0);
  EXPECT_EQ(h.max(), 0);
  EXPECT_EQ(h.min(), 0);
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram h;
  for (int v = 1; v <= 100; ++v) h.Record(v);
  EXPECT_EQ(h.ValueAtQuantile(0.5), 50);
  EXPECT_EQ(h.ValueAtQuantile(0.99), 99);
  EXPECT_EQ(h.ValueAtQuantile(1.0), 100);
  EXPECT_EQ(h.min(), 1);
  EXPECT_DOUBLE_EQ(h.mean(), 50.5);
}

// Every quantile of a wide log-uniform sample is within 0.5 % of the exact order statistic.
TEST(LatencyHistogramTest, QuantilesWithinHalfAPercent) {
  std::mt19937_64 random(7);
  std::uniform_real_distribution<double> exponent(2, 10);  // 100 ns .. 10 s
  std::vector<int64_t> values;
  LatencyHistogram h;
  for (int i = 0; i < 100000; ++i) {
    const int64_t v = static_cast<int64_t>(std::pow(10.0, exponent(random)));
    values.push_back(v);
    h.Record(v);
  }
  std::sort(values.begin(), values.end());
  for (double q : {0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999}) {
    const int64_t rank = static_cast<int64_t>(std::ceil(q * values.size()));
    const double exact = static_cast<double>(values[rank - 1]);
    EXPECT_NEAR(h.ValueAtQuantile(q), exact, exact * 0.005) << "q=" << q;
  }
  EXPECT_EQ(h.ValueAtQuantile(1.0), values.back());
  EXPECT_EQ(h.max(), values.back());
  EXPECT_EQ(h.min(), values.front());
}

TEST(LatencyHistogramTest, MergeAddsCountsAndKeepsExtremes) {
  LatencyHistogram a, b;
  for (int i = 0; i < 90; ++i) a.Record(1'000'000);
  for (int i = 0; i < 10; ++i) b.Record(50'000'000);
  a.Merge(b);
  EXPECT_EQ(a.count(), 100);
  EXPECT_NEAR(a.ValueAtQuantile(0.9), 1'000'000, 5'000);
  EXPECT_NEAR(a.ValueAtQuantile(0.91), 50'000'000, 250'000);
  EXPECT_EQ(a.max(), 50'000'000);
  EXPECT_EQ(a.min(), 1'000'000);
}

TEST(LatencyHistogramTest, ClampsAtTheCeilingAndCountsIt) {
  LatencyHistogram h;
  h.Record(-5);
  h.Record(LatencyHistogram::kCeilingNanos * 2);
  EXPECT_EQ(h.min(), 0);
  EXPECT_EQ(h.clamped(), 1);
  EXPECT_EQ(h.max(), LatencyHistogram::kCeilingNanos - 1);
}

TEST(RequestMixTest, InterleavesByWeight) {
  auto mix = RequestMix::Parse("identify=2,track=1");
  ASSERT_TRUE(mix.ok());
  EXPECT_EQ(mix->OpFor(0), Op::kIdentify);
  EXPECT_EQ(mix->OpFor(1), Op::kTrack);
  EXPECT_EQ(mix->OpFor(2), Op::kIdentify);
  EXPECT_EQ(mix->OpFor(3), Op::kIdentify);
  EXPECT_EQ(mix->ToString(), "identify=2,track=1");
  EXPECT_FALSE(RequestMix::Parse("nope=1").ok());
  EXPECT_FALSE(RequestMix::Parse("identify=0").ok());
}

TEST(RequestMixTest, RestBodyMatchesTheGrpcRequest) {
  v1::TrackEventRequest track;
  RequestMix::Fill(12345, &track);
  const std::string body = RequestMix::RestBody(Op::kTrack, 12345);
  EXPECT_NE(body.find("\"user_id\":\"" + track.user_id() + "\""), std::string::npos);
  EXPECT_NE(body.find("\"event_name\":\"bench_event\""), std::string::npos);
}

}  // namespace
}  // namespace userpilot::gateway::bench
