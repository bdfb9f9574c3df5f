#include "service/server/gateway_server.h"

#include <algorithm>
#include <climits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "service/metrics/grpc_server_interceptor.h"

namespace userpilot::gateway {
namespace {

// Per-stream receive window: enough for a LAN round trip at import speed, small enough that
// a thousand streams cannot hold much memory between them.
constexpr int kStreamLookaheadBytes = 256 * 1024;

}  // namespace

absl::StatusOr<std::unique_ptr<GatewayServer>> GatewayServer::Start(
    grpc::Service& service, const GatewayServerOptions& options) {
  grpc::EnableDefaultHealthCheckService(true);
  if (options.reflection) grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options.listen, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  auto ms = [](absl::Duration d) {
    return d == absl::InfiniteDuration()
               ? INT_MAX
               : static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(d), INT_MAX));
  };
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, ms(options.max_connection_age));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                             ms(options.max_connection_age_grace));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, ms(options.keepalive_time));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, ms(options.keepalive_timeout));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             ms(options.min_client_ping_interval));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Flow control for the imports' large client streams: without BDP probing, gRPC's stream
  // window stays at the fixed lookahead instead of growing towards the connection's bandwidth-
  // delay product, so a fast client cannot park tens of MB in the server's buffers ahead of
  // the spooler (measured: a 50 MB import grew the RSS by 24-39 MB with probing, 4 MB without).
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, kStreamLookaheadBytes);
  if (options.metrics != nullptr) AddServerMetrics(builder, *options.metrics);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for gRPC on '", options.listen,
                     "' (--listen): the address is malformed or already in use"));
  }
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  health->SetServingStatus("", true);
  health->SetServingStatus(kServiceName, true);
  return std::unique_ptr<GatewayServer>(new GatewayServer(std::move(server), port));
}

GatewayServer::GatewayServer(std::unique_ptr<grpc::Server> server, int port)
    : server_(std::move(server)), port_(port) {}

GatewayServer::~GatewayServer() { Shutdown(absl::Now()); }

void GatewayServer::Shutdown(absl::Time deadline) {
  if (shut_down_) return;
  shut_down_ = true;
  // SetServingStatus(false) marks every service NOT_SERVING at once; Shutdown() then refuses new
  // calls and waits for those in flight until the deadline.
  server_->GetHealthCheckService()->SetServingStatus(false);
  server_->Shutdown(absl::ToChronoTime(deadline));
  server_->Wait();
}

}  // namespace userpilot::gateway
