#include "service/metrics/metered_http_client.h"

#include <atomic>
#include <utility>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "service/metrics/metrics_registry.h"
#include "tests/mocks/fake_http_client.h"

namespace userpilot::gateway {
namespace {

double Counter(const MetricsRegistry& registry, const std::string& name) {
  const auto metric = FindMetric(registry.Collect(), name);
  return !metric.has_value() ? -1 : metric->counter.value;
}

double Gauge(const MetricsRegistry& registry, const std::string& name) {
  const auto metric = FindMetric(registry.Collect(), name);
  return !metric.has_value() ? -1 : metric->gauge.value;
}

HttpRequest Post(std::string body) {
  HttpRequest request;
  request.method = "POST";
  request.url = "http://127.0.0.1:1/v1/track";
  request.body = std::move(body);
  request.deadline = absl::Now() + absl::Seconds(5);
  return request;
}

class FixedBody : public HttpBodySource {
 public:
  int64_t size() const override { return 1000; }
  absl::StatusOr<size_t> ReadAt(int64_t, char*, size_t) const override { return 0; }
};

TEST(MeteredHttpClientTest, CountsBodiesThatMayHaveBeenSentAndResponsesReceived) {
  MetricsRegistry registry;
  UpstreamMetrics metrics(registry.registry());
  FakeHttpClient fake;
  MeteredHttpClient client(fake, metrics);
  EXPECT_EQ(Counter(registry, "userpilot_gateway_upstream_sent_bytes_total"), 0);
  EXPECT_EQ(Counter(registry, "userpilot_gateway_upstream_received_bytes_total"), 0);

  fake.EnqueueResponse(202, "0123456789");
  fake.Enqueue(FakeHttpClient::TransportFailure(absl::UnavailableError("refused"),
                                                /*request_may_have_been_sent=*/false));
  fake.Enqueue(FakeHttpClient::TransportFailure(absl::DeadlineExceededError("slow")));
  fake.EnqueueResponse(202, "");
  std::atomic<int> done{0};
  absl::Notification all;
  auto count = [&](HttpResult) {
    if (++done == 4) all.Notify();
  };
  client.Send(Post("abcde"), count);       // sent, 10 bytes back
  client.Send(Post("never-sent"), count);  // refused before sending
  client.Send(Post("xyz"), count);         // may have been sent
  HttpRequest upload = Post("");
  upload.body_source = std::make_shared<FixedBody>();
  client.Send(std::move(upload), count);  // streamed body
  ASSERT_TRUE(all.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(Counter(registry, "userpilot_gateway_upstream_sent_bytes_total"), 5 + 3 + 1000);
  EXPECT_EQ(Counter(registry, "userpilot_gateway_upstream_received_bytes_total"), 10);
  EXPECT_EQ(fake.requests().size(), 4u);
  EXPECT_EQ(fake.requests()[0].body, "abcde");
}

TEST(ExportHttpClientLoadTest, ReadsStatsAtEachScrapeUntilTheHookGoes) {
  MetricsRegistry registry;
  UpstreamMetrics metrics(registry.registry());
  CurlHttpClientStats stats{3, 7, 2};
  int reads = 0;
  {
    MetricsRegistry::CollectHook hook = ExportHttpClientLoad(
        registry, metrics,
        [&] {
          ++reads;
          return stats;
        },
        256);
    EXPECT_EQ(Gauge(registry, "userpilot_gateway_upstream_http_queued"), 3);
    EXPECT_EQ(Gauge(registry, "userpilot_gateway_upstream_http_in_flight"), 7);
    EXPECT_EQ(Gauge(registry, "userpilot_gateway_upstream_http_max_in_flight"), 256);
    EXPECT_EQ(Counter(registry, "userpilot_gateway_upstream_http_queue_full_total"), 2);
    stats = {0, 1, 5};
    EXPECT_EQ(Gauge(registry, "userpilot_gateway_upstream_http_queued"), 0);
    EXPECT_EQ(Counter(registry, "userpilot_gateway_upstream_http_queue_full_total"), 5);
  }
  const int before = reads;
  registry.Collect();
  EXPECT_EQ(reads, before);
}

}  // namespace
}  // namespace userpilot::gateway
