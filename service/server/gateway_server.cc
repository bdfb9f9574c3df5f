#include "service/server/gateway_server.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpc/grpc.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/impl/server_builder_option.h"
#include "grpcpp/impl/server_builder_plugin.h"
#include "service/auth/capped_listener.h"
#include "service/metrics/grpc_server_interceptor.h"

namespace userpilot::gateway {
namespace {

// Per-stream receive window: enough for a LAN round trip at import speed, small enough that
// a thousand streams cannot hold much memory between them.
constexpr int kStreamLookaheadBytes = 256 * 1024;

// How often a drain looks whether calls are still in flight.
constexpr auto kDrainPollInterval = std::chrono::milliseconds(20);

// Counts the calls gRPC holds (an interceptor lives exactly as long as its call), so that a
// drain knows when only idle connections are left.
class LiveCallCounter final : public grpc::experimental::Interceptor {
 public:
  explicit LiveCallCounter(std::shared_ptr<std::atomic<int64_t>> live) : live_(std::move(live)) {
    ++*live_;
  }
  ~LiveCallCounter() override { --*live_; }
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    methods->Proceed();
  }

 private:
  const std::shared_ptr<std::atomic<int64_t>> live_;
};

class LiveCallCounterFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit LiveCallCounterFactory(std::shared_ptr<std::atomic<int64_t>> live)
      : live_(std::move(live)) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* /*info*/) override {
    return new LiveCallCounter(live_);
  }

 private:
  const std::shared_ptr<std::atomic<int64_t>> live_;
};

// Removes the reflection plugin from one server (the plugin, once initialised, joins every
// server built afterwards): for a gateway with reflection off, and for the health listener.
class WithoutReflection final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->erase(std::remove_if(plugins->begin(), plugins->end(),
                                  [](const std::unique_ptr<grpc::ServerBuilderPlugin>& plugin) {
                                    return plugin->name() == "proto_server_reflection";
                                  }),
                   plugins->end());
  }
};

// The health listener's answer to every method but grpc.health.v1's. Registering it also gives
// that server the callback completion queue its (default) health service runs on.
class HealthOnlyService final : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext*) override {
    class Refused final : public grpc::ServerGenericBidiReactor {
     public:
      Refused() {
        Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                            "this port (--health_listen) serves only grpc.health.v1"));
      }
      void OnDone() override { delete this; }
    };
    return new Refused();
  }
};

void MarkServing(grpc::Server& server) {
  grpc::HealthCheckServiceInterface* health = server.GetHealthCheckService();
  health->SetServingStatus("", true);
  health->SetServingStatus(GatewayServer::kServiceName, true);
}

}  // namespace

absl::StatusOr<std::unique_ptr<GatewayServer>> GatewayServer::Start(
    grpc::Service& service, const GatewayServerOptions& options) {
  grpc::EnableDefaultHealthCheckService(true);
  if (options.reflection) grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  std::unique_ptr<GatewayServer> gateway(new GatewayServer());
  grpc::ServerBuilder builder;
  int port = 0;
  const std::shared_ptr<grpc::ServerCredentials> credentials =
      options.credentials != nullptr ? options.credentials : grpc::InsecureServerCredentials();
  if (options.max_connections > 0) {
    CappedListenerOptions listen;
    listen.address = options.listen;
    listen.max_connections = options.max_connections;
    listen.observer = options.connection_observer;
    auto listener = CappedListener::Listen(std::move(listen));
    if (!listener.ok()) {
      return absl::Status(listener.status().code(),
                          absl::StrCat("--listen: ", listener.status().message()));
    }
    gateway->listener_ = *std::move(listener);
    port = gateway->listener_->port();
    gateway->acceptor_ = builder.experimental().AddExternalConnectionAcceptor(
        grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD, credentials);
  } else {
    builder.AddListeningPort(options.listen, credentials, &port);
  }
  if (!options.reflection) builder.SetOption(std::make_unique<WithoutReflection>());
  if (options.max_concurrent_streams > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams);
  }
  builder.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  if (options.memory_quota_bytes > 0) {
    grpc::ResourceQuota quota("userpilot-gateway-grpc");
    quota.Resize(static_cast<size_t>(options.memory_quota_bytes));
    builder.SetResourceQuota(quota);
  }
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
  // One vector: SetInterceptorCreators replaces any earlier one.
  auto live_calls = std::make_shared<std::atomic<int64_t>>(0);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  if (options.metrics != nullptr) {
    creators.push_back(MakeServerMetricsInterceptorFactory(*options.metrics));
  }
  creators.push_back(std::make_unique<LiveCallCounterFactory>(live_calls));
  builder.experimental().SetInterceptorCreators(std::move(creators));
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for gRPC on '", options.listen,
                     "' (--listen): the address is malformed or already in use"));
  }
  gateway->server_ = std::move(server);
  gateway->port_ = port;
  gateway->live_calls_ = std::move(live_calls);
  if (gateway->listener_ != nullptr) gateway->listener_->Start(gateway->acceptor_.get());
  if (!options.health_listen.empty()) {
    grpc::ServerBuilder health_builder;
    health_builder.AddListeningPort(options.health_listen, grpc::InsecureServerCredentials(),
                                    &gateway->health_port_);
    health_builder.SetOption(std::make_unique<WithoutReflection>());
    gateway->health_only_ = std::make_unique<HealthOnlyService>();
    health_builder.RegisterCallbackGenericService(gateway->health_only_.get());
    gateway->health_server_ = health_builder.BuildAndStart();
    if (gateway->health_server_ == nullptr || gateway->health_port_ == 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot listen for health checks on '", options.health_listen,
                       "' (--health_listen): the address is malformed or already in use"));
    }
    MarkServing(*gateway->health_server_);
  }
  MarkServing(*gateway->server_);
  return gateway;
}

size_t GatewayServer::open_connections() const {
  return listener_ == nullptr ? 0 : listener_->stats().open;
}

GatewayServer::~GatewayServer() { Shutdown(absl::Now()); }

void GatewayServer::SetServing(bool serving) {
  std::lock_guard<std::mutex> lock(mu_);
  if (shut_down_) return;
  for (grpc::Server* server : {server_.get(), health_server_.get()}) {
    if (server == nullptr) continue;
    grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
    health->SetServingStatus("", serving);
    health->SetServingStatus(kServiceName, serving);
  }
}

void GatewayServer::Shutdown(absl::Time deadline) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shut_down_) return;
    shut_down_ = true;
    if (server_ == nullptr) {  // Start() failed half-way.
      if (listener_ != nullptr) listener_->Stop();
      if (health_server_ != nullptr) health_server_->Shutdown();
      return;
    }
    // SetServingStatus(false) marks every service NOT_SERVING at once; Shutdown() then refuses
    // new calls and waits for those in flight until the deadline. The capped listener stops
    // accepting first; connections already handed over belong to gRPC.
    server_->GetHealthCheckService()->SetServingStatus(false);
    if (health_server_ != nullptr) {
      health_server_->GetHealthCheckService()->SetServingStatus(false);
    }
  }
  if (listener_ != nullptr) listener_->Stop();
  // gRPC's shutdown also waits for every connection to close, and an idle client closes its
  // connection only when it pleases after the GOAWAY. So once no call is in flight, the idle
  // connections are cut (grpc_server_cancel_all_calls disconnects every channel; with no call
  // left it cancels nothing), again every poll until the shutdown completes, since a cut made
  // before gRPC started its shutdown would be followed by a reconnect.
  std::atomic<bool> stopped{false};
  std::thread cutter([this, &stopped, deadline] {
    while (!stopped.load() && absl::Now() < deadline) {
      if (live_calls_->load() == 0) grpc_server_cancel_all_calls(server_->c_server());
      std::this_thread::sleep_for(kDrainPollInterval);
    }
  });
  server_->Shutdown(absl::ToChronoTime(deadline));
  stopped.store(true);
  cutter.join();
  server_->Wait();
  if (health_server_ != nullptr) {
    health_server_->Shutdown(absl::ToChronoTime(absl::Now()));
    health_server_->Wait();
  }
}

}  // namespace userpilot::gateway
