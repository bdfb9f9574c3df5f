// The whole gateway, built from one GatewayConfig: HTTP client, the upstream stub stack,
// validation, the gRPC service and server.
//
// This is the composition root. main() parses the configuration, builds a Gateway and waits
// for a signal; integration tests build one on port 0 in-process against the emulator. The
// order in which upstream decorators wrap each other is visible in MakeUpstreamStack() alone.
//
// Thread-safety: Start() and Shutdown() from one thread; the components it owns are
// thread-safe.
#ifndef USERPILOT_GATEWAY_SERVICE_APP_GATEWAY_H_
#define USERPILOT_GATEWAY_SERVICE_APP_GATEWAY_H_

#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/common/scheduler.h"
#include "service/config/config.h"
#include "service/http/http_client.h"
#include "service/ratelimit/budgets.h"
#include "service/ratelimit/redis_token_source_factory.h"
#include "service/upstream/userpilot_stub.h"
#include "service/validation/request_validator.h"

namespace userpilot::gateway {

class CurlHttpClient;
class GatewayService;
class GatewayServer;

// The upstream stack, outermost first (the order a call passes through them):
//   RetryingStub       retry policy, backoff, retry budget, circuit breaker (service/retry)
//   RateLimitedStub    one admission per attempt from the right budget (service/ratelimit)
//   HttpUserpilotStub  REST mapping over the HTTP client (service/upstream)
// so every attempt, retries included, is admitted by a budget and never exceeds Userpilot's
// limits.
std::shared_ptr<UserpilotStub> MakeUpstreamStack(const GatewayConfig& config, HttpClient& http,
                                                 Scheduler& scheduler, const Budgets& budgets);

class Gateway {
 public:
  // Builds every component and starts serving gRPC. Errors: the HTTP client cannot start, or
  // the listening address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Gateway>> Start(const GatewayConfig& config);

  ~Gateway();

  // The gRPC port actually bound (useful with --listen=...:0).
  int port() const;

  // Drains: health NOT_SERVING, no new calls, calls in flight may finish until shortly before
  // `deadline`; then calls still waiting for a budget or an upstream answer are answered
  // UNAVAILABLE, so the drain always ends by `deadline`. Idempotent.
  void Shutdown(absl::Time deadline);

 private:
  Gateway() = default;

  // Declaration order is destruction order in reverse: the scheduler outlives the stack whose
  // timers it runs; the HTTP client outlives the stubs that send through it.
  std::unique_ptr<ThreadScheduler> scheduler_;
  std::unique_ptr<CurlHttpClient> http_;
  std::optional<RedisBudgetSources> redis_;
  Budgets budgets_;
  std::shared_ptr<UserpilotStub> stub_;
  std::unique_ptr<RequestValidator> validator_;
  std::unique_ptr<GatewayService> service_;
  std::unique_ptr<GatewayServer> server_;
  bool shut_down_ = false;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_APP_GATEWAY_H_
