#include "service/app/gateway.h"

#include <utility>

#include "service/http/curl_http_client.h"
#include "service/server/gateway_server.h"
#include "service/server/gateway_service.h"
#include "service/upstream/http_userpilot_stub.h"

namespace userpilot::gateway {

std::unique_ptr<UserpilotStub> MakeUpstreamStack(const GatewayConfig& config, HttpClient& http) {
  UpstreamOptions options;
  options.base_url = config.upstream_url;
  options.api_key = config.api_key.Reveal();
  options.request_timeout = config.upstream_timeout;
  return std::make_unique<HttpUserpilotStub>(http, std::move(options));
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

  gateway->stub_ = MakeUpstreamStack(config, *gateway->http_);
  gateway->validator_ = std::make_unique<RequestValidator>(config.limits);
  GatewayServiceOptions service_options;
  service_options.default_deadline = config.default_deadline;
  service_options.max_deadline = config.max_deadline;
  gateway->service_ =
      std::make_unique<GatewayService>(*gateway->validator_, *gateway->stub_, service_options);

  GatewayServerOptions server_options;
  server_options.listen = config.listen;
  server_options.reflection = config.reflection;
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
  // Server first (stops new calls, lets those in flight finish through the HTTP client), then
  // the HTTP client, which completes anything still pending with CANCELLED.
  if (server_ != nullptr) server_->Shutdown(deadline);
  if (http_ != nullptr) http_->Shutdown();
}

}  // namespace userpilot::gateway
