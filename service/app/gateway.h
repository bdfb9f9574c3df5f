// The whole gateway, built from one GatewayConfig: metrics, HTTP client, the upstream stub
// The whole gateway, built from one GatewayConfig: metrics, HTTP client, the upstream stub
// stack, job watching and imports, validation, durable delivery (queue and dispatcher), caller
// authentication, the gRPC service and server, /metrics, the upstream key check.
//
// This is the composition root. main() parses the configuration, builds a Gateway and waits
// for a signal; integration tests build one on port 0 in-process against the emulator. The
// order in which upstream decorators wrap each other is stated once, in MakeUpstreamStack()
// (upstream_stack.h).
//
// Thread-safety: Start() and Shutdown() from one thread; the components it owns are
// thread-safe.
#ifndef USERPILOT_GATEWAY_SERVICE_APP_GATEWAY_H_
#define USERPILOT_GATEWAY_SERVICE_APP_GATEWAY_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/app/upstream_stack.h"
#include "service/common/scheduler.h"
#include "service/config/config.h"
#include "service/http/http_client.h"
#include "service/metrics/gateway_metrics.h"
#include "service/metrics/metrics_registry.h"
#include "service/ratelimit/budgets.h"
#include "service/ratelimit/redis_token_source_factory.h"
#include "service/upstream/userpilot_stub.h"
#include "service/validation/request_validator.h"

namespace userpilot::gateway {

class AccessLog;
class AuthObserver;
class Authenticator;
class CallerTokenStore;
class ConnectionObserver;
class CurlHttpClient;
class DeliveryFrontend;
class DeliveryStore;
class Dispatcher;
class GatewayServer;
class GatewayService;
class Importer;
class JobWatchRegistry;
class KeyChecker;
class Logger;
class MeteredHttpClient;
class MetricsServer;

// The options of the upstream stack (app/upstream_stack.h), from the configuration.
UpstreamStackOptions UpstreamStackOptionsFrom(const GatewayConfig& config);

// What the gateway needs besides its configuration.
struct GatewayEnvironment {
  // Where access logs (when config.access_log) and the key check's changes go, and whose
  // dropped lines /metrics exports (userpilot_gateway_log_*); null: not logged. Must outlive the
  // gateway.
  Logger* logger = nullptr;
  // Serve /metrics on config.metrics_listen. Off in tests that run many gateways.
  bool serve_metrics = true;
  // userpilot_gateway_build_info labels.
  std::string version = "unknown";
  std::string revision = "unknown";
};

class Gateway {
 public:
  // Builds every component and starts serving gRPC (and /metrics). Errors: the HTTP client
  // cannot start, Redis is required and unreachable, or a listening address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Gateway>> Start(const GatewayConfig& config,
                                                        GatewayEnvironment environment = {});

  ~Gateway();

  // The gRPC port actually bound (useful with --listen=...:0).
  int port() const;
  // The health-only listener's port (--health_listen); 0 without one.
  int health_port() const;
  // The /metrics port actually bound; 0 when not serving metrics.
  int metrics_port() const;
  // Every metric, as /metrics serves it (tests read it without HTTP).
  MetricsRegistry& metrics() { return *metrics_registry_; }

  // Health: SERVING once listening; NOT_SERVING while Userpilot rejects the API key (the key
  // check, upstream/key_checker.h, when config.key_check_interval > 0) and from a drain on.
  //
  // Drains: health NOT_SERVING, job watches end with UNAVAILABLE (so watchers reconnect to
  // another replica), no new calls, calls in flight may finish until shortly before
  // `deadline`; then calls still waiting for a budget or an upstream answer are answered
  // UNAVAILABLE, so the drain always ends by `deadline`. Idempotent.
  void Shutdown(absl::Time deadline);

 private:
  Gateway() = default;

  // Declaration order is construction order; destruction runs in reverse: the registry and
  // metrics outlive everything that records into them, the scheduler outlives the components
  // whose timers it runs, the HTTP client outlives the stubs that send through it, and the
  // collect hooks (which read components' statistics) go first.
  // Re-reads --caller_tokens_file on its own thread; null without the flag.
  std::unique_ptr<CallerTokenStore> caller_tokens_;
  std::shared_ptr<MetricsRegistry> metrics_registry_;
  std::unique_ptr<GatewayMetrics> metrics_;
  std::unique_ptr<ThreadScheduler> scheduler_;
  std::unique_ptr<CurlHttpClient> http_;
  std::unique_ptr<MeteredHttpClient> metered_http_;
  std::optional<RedisBudgetSources> redis_;
  Budgets budgets_;
  UpstreamStack stack_;
  std::unique_ptr<JobWatchRegistry> job_watches_;
  std::unique_ptr<Importer> importer_;
  std::unique_ptr<RequestValidator> validator_;
  // Durable delivery (config.delivery.enabled()): the queue, its dispatcher (sending through
  // stack_) and the delivery RPCs' logic.
  std::unique_ptr<DeliveryStore> delivery_store_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<DeliveryFrontend> delivery_;
  std::unique_ptr<AccessLog> access_log_;
  std::unique_ptr<AuthObserver> auth_observer_;
  std::unique_ptr<ConnectionObserver> connection_observer_;
  std::unique_ptr<Authenticator> authenticator_;
  std::unique_ptr<GatewayService> service_;
  std::unique_ptr<GatewayServer> server_;
  std::unique_ptr<MetricsServer> metrics_server_;
  // Sets the server's health from Userpilot's verdict on the key; stopped before the server.
  std::unique_ptr<KeyChecker> key_checker_;
  std::vector<MetricsRegistry::CollectHook> metric_hooks_;
  bool shut_down_ = false;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_APP_GATEWAY_H_
