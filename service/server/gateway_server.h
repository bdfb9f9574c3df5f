// The gRPC server process part: listening port, the UserpilotGateway service, the standard
// health service (grpc.health.v1) and server reflection.
//
// Health reports SERVING for "" (the whole server) and for
// "userpilot.gateway.v1.UserpilotGateway" once the server listens, NOT_SERVING while
// SetServing(false) holds (Userpilot rejects the gateway's key), and NOT_SERVING from the moment
// a drain starts, so load balancers stop sending before the port closes.
//
// Thread-safety: Start() once, then Shutdown() from any one thread; SetServing() from any
// thread; port() is immutable after Start().
#ifndef USERPILOT_GATEWAY_SERVICE_SERVER_GATEWAY_SERVER_H_
#define USERPILOT_GATEWAY_SERVICE_SERVER_GATEWAY_SERVER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace userpilot::gateway {

class GrpcServerMetrics;

struct GatewayServerOptions {
  std::string listen = "0.0.0.0:50051";  // host:port; port 0 picks a free port.
  bool reflection = true;                // Serve grpc.reflection.v1alpha.
  // Largest request message accepted (gRPC's default is 4 MiB, too small for a full bulk call).
  int max_receive_message_bytes = 4 * 1024 * 1024;
  // What the server's connections may hold at once (a grpc::ResourceQuota); 0: unbounded.
  int64_t memory_quota_bytes = 0;
  // Connections are closed (with GOAWAY) after this age, +-10% jitter, so clients behind a
  // Kubernetes ClusterIP Service reconnect and spread over new replicas as the deployment scales.
  absl::Duration max_connection_age = absl::Minutes(5);
  // Calls in flight on an aged connection may finish for this long.
  absl::Duration max_connection_age_grace = absl::Minutes(5);
  // Server pings an idle connection this often, and drops it when no answer in the timeout.
  absl::Duration keepalive_time = absl::Minutes(1);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  // Clients may ping this often without being told too_many_pings.
  absl::Duration min_client_ping_interval = absl::Seconds(30);
  // Where every RPC is counted (grpc_server_* metrics); null: not counted. Must outlive the
  // server.
  GrpcServerMetrics* metrics = nullptr;
};

class GatewayServer {
 public:
  // The fully-qualified name under which health reports the gateway service.
  static constexpr char kServiceName[] = "userpilot.gateway.v1.UserpilotGateway";

  // Builds and starts the server. `service` must outlive the server. Errors: the address does
  // not parse or cannot be bound.
  static absl::StatusOr<std::unique_ptr<GatewayServer>> Start(grpc::Service& service,
                                                              const GatewayServerOptions& options);

  ~GatewayServer();

  // The bound port (the real one when the options asked for 0).
  int port() const { return port_; }

  // Health of "" and of the gateway service: SERVING (true) or NOT_SERVING. Ignored once
  // Shutdown() has begun: a draining server stays NOT_SERVING.
  void SetServing(bool serving);

  // Flips health to NOT_SERVING, stops taking calls, and lets calls in flight finish until
  // `deadline`; calls still running then are cancelled. Idle client connections never hold the
  // drain: they are cut as soon as no call is in flight. Returns when the server has stopped.
  void Shutdown(absl::Time deadline);

 private:
  GatewayServer(std::unique_ptr<grpc::Server> server, int port,
                std::shared_ptr<std::atomic<int64_t>> live_calls);

  std::unique_ptr<grpc::Server> server_;
  const int port_;
  // Calls gRPC holds, counted by an interceptor; shared with it.
  const std::shared_ptr<std::atomic<int64_t>> live_calls_;
  std::mutex mu_;  // Orders SetServing() against the drain's NOT_SERVING.
  bool shut_down_ = false;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_SERVER_GATEWAY_SERVER_H_
