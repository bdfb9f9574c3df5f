// The gRPC server process part: listening port, the UserpilotGateway service, the standard
// health service (grpc.health.v1) and server reflection.
//
// Listeners: gRPC's own on `listen`, or, with `max_connections`, a CappedListener
// (auth/capped_listener.h) that accepts connections itself and hands them to gRPC; either with
// `credentials` (TLS, auth/tls_credentials.h) or plaintext. With `health_listen`, a second,
// plaintext server serves only grpc.health.v1 (kubelet gRPC probes cannot speak TLS), with the
// same statuses as the main one.
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
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/security/server_credentials.h"

namespace userpilot::gateway {

class CappedListener;
class ConnectionObserver;
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
  // The listener's credentials; null: plaintext.
  std::shared_ptr<grpc::ServerCredentials> credentials = nullptr;
  // Most connections open at once (CappedListener); 0: gRPC listens itself, uncapped.
  int max_connections = 0;
  // Told about every connection the cap refuses; may be null. Must outlive the server.
  ConnectionObserver* connection_observer = nullptr;
  // HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS per connection; 0: gRPC's default.
  int max_concurrent_streams = 0;
  // host:port of the plaintext health-only listener; empty: none.
  std::string health_listen = "";
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
  // The health-only listener's port; 0 without one.
  int health_port() const { return health_port_; }
  // Connections open, per the CappedListener; 0 without --max_connections.
  size_t open_connections() const;

  // Health of "" and of the gateway service: SERVING (true) or NOT_SERVING. Ignored once
  // Shutdown() has begun: a draining server stays NOT_SERVING.
  void SetServing(bool serving);

  // Flips health to NOT_SERVING, stops taking calls, and lets calls in flight finish until
  // `deadline`; calls still running then are cancelled. Idle client connections never hold the
  // drain: they are cut as soon as no call is in flight. Returns when the server has stopped.
  void Shutdown(absl::Time deadline);

 private:
  GatewayServer() = default;

  std::unique_ptr<CappedListener> listener_;  // Outlives the acceptor below.
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::CallbackGenericService> health_only_;  // Outlives health_server_.
  std::unique_ptr<grpc::Server> health_server_;
  int port_ = 0;
  int health_port_ = 0;
  // Calls gRPC holds, counted by an interceptor; shared with it.
  std::shared_ptr<std::atomic<int64_t>> live_calls_;
  std::mutex mu_;  // Orders SetServing() against the drain's NOT_SERVING.
  bool shut_down_ = false;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_SERVER_GATEWAY_SERVER_H_
