#include "service/app/gateway.h"

#include <future>
#include <thread>
#include <utility>

#include "service/http/curl_http_client.h"
#include "service/ratelimit/rate_limited_stub.h"
#include "service/retry/retrying_stub.h"
#include "service/server/gateway_server.h"
#include "service/server/gateway_service.h"
#include "service/upstream/http_userpilot_stub.h"

namespace userpilot::gateway {
namespace {

// How long before the drain deadline the gateway stops waiting politely and answers what is
// still pending, so every answer is written before the deadline.
constexpr absl::Duration kDrainCutOffMargin = absl::Milliseconds(500);

}  // namespace

std::shared_ptr<UserpilotStub> MakeUpstreamStack(const GatewayConfig& config, HttpClient& http,
                                                 Scheduler& scheduler, const Budgets& budgets) {
  UpstreamOptions options;
  options.base_url = config.upstream_url;
  options.api_key = config.api_key.Reveal();
  options.request_timeout = config.upstream_timeout;
  auto rest = std::make_shared<HttpUserpilotStub>(http, std::move(options));
  auto limited = std::make_shared<RateLimitedStub>(std::move(rest), budgets);
  RetryOptions retry = config.traffic.retry;
  retry.upstream_host = config.upstream_url;
  return std::make_shared<RetryingStub>(std::move(limited), scheduler, std::move(retry));
}

absl::StatusOr<std::unique_ptr<Gateway>> Gateway::Start(const GatewayConfig& config) {
  std::unique_ptr<Gateway> gateway(new Gateway());

  CurlHttpClientOptions http_options;
  http_options.max_in_flight = static_cast<size_t>(config.max_inflight_upstream);
  http_options.connect_timeout = config.connect_timeout;
  http_options.ca_file = config.upstream_ca_file;
  auto http = CurlHttpClient::Create(std::move(http_options));
  if (!http.ok()) return http.status();
  gateway->http_ = *std::move(http);

  gateway->scheduler_ = std::make_unique<ThreadScheduler>();
  Scheduler& scheduler = *gateway->scheduler_;
  TokenSourceFactory sources = LocalTokenSources();
  if (config.traffic.redis.has_value()) {
    auto redis =
        MakeRedisBudgetSources(*config.traffic.redis, [&scheduler] { return scheduler.Now(); });
    if (!redis.ok()) return redis.status();
    gateway->redis_ = *std::move(redis);
    sources = gateway->redis_->factory;
  }
  auto budgets = MakeBudgets(config.traffic.rate_limits, scheduler, std::move(sources));
  if (!budgets.ok()) return budgets.status();
  gateway->budgets_ = *std::move(budgets);
  gateway->stub_ = MakeUpstreamStack(config, *gateway->http_, scheduler, gateway->budgets_);
  gateway->validator_ = std::make_unique<RequestValidator>(config.limits);
  GatewayServiceOptions service_options;
  service_options.default_deadline = config.default_deadline;
  service_options.max_deadline = config.max_deadline;
  gateway->service_ =
      std::make_unique<GatewayService>(*gateway->validator_, *gateway->stub_, service_options);

  GatewayServerOptions server_options;
  server_options.listen = config.listen;
  server_options.reflection = config.reflection;
  server_options.max_connection_age = config.max_connection_age;
  server_options.max_connection_age_grace = config.max_connection_age_grace;
  server_options.keepalive_time = config.keepalive_time;
  server_options.keepalive_timeout = config.keepalive_timeout;
  server_options.min_client_ping_interval = config.min_client_ping_interval;
  // A full bulk request must fit; validation then refuses what exceeds its own bound with a
  // field-level error instead of gRPC's bare RESOURCE_EXHAUSTED.
  server_options.max_receive_message_bytes =
      static_cast<int>(gateway->validator_->limits().max_bulk_request_bytes + (1 << 20));
  auto server = GatewayServer::Start(*gateway->service_, server_options);
  if (!server.ok()) return server.status();
  gateway->server_ = *std::move(server);
  return gateway;
}

Gateway::~Gateway() { Shutdown(absl::Now()); }

int Gateway::port() const { return server_->port(); }

void Gateway::Shutdown(absl::Time deadline) {
  if (shut_down_) return;
  shut_down_ = true;
  // The server stops taking calls at once and waits for those in flight. Shortly before the
  // deadline, whatever still waits (for a budget, a retry's backoff, or Userpilot) is answered
  // UNAVAILABLE so the callers can go to another replica and the drain ends in time.
  std::promise<void> drained;
  std::future<void> drained_future = drained.get_future();
  std::thread drain([&] {
    if (server_ != nullptr) server_->Shutdown(deadline);
    drained.set_value();
  });
  const absl::Time cut_off = deadline - kDrainCutOffMargin;
  if (drained_future.wait_until(absl::ToChronoTime(cut_off)) != std::future_status::ready) {
    budgets_.Shutdown();
    if (http_ != nullptr) http_->Shutdown();
  }
  drain.join();
  budgets_.Shutdown();
  stub_.reset();  // Answers calls waiting for a retry; the scheduler outlives it.
  if (http_ != nullptr) http_->Shutdown();
}

}  // namespace userpilot::gateway
