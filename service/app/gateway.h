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
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/config/config.h"
#include "service/http/http_client.h"
#include "service/upstream/userpilot_stub.h"
#include "service/validation/request_validator.h"

namespace userpilot::gateway {

class CurlHttpClient;
class GatewayService;
class GatewayServer;

// The upstream stack, innermost last: today the HTTP mapping alone. Decorators (retry, rate
// limiting, metrics) are added here, in the order they apply.
std::unique_ptr<UserpilotStub> MakeUpstreamStack(const GatewayConfig& config, HttpClient& http);

class Gateway {
 public:
  // Builds every component and starts serving gRPC. Errors: the HTTP client cannot start, or
  // the listening address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Gateway>> Start(const GatewayConfig& config);

  ~Gateway();

  // The gRPC port actually bound (useful with --listen=...:0).
  int port() const;

  // Drains: health NOT_SERVING, no new calls, calls in flight finish until `deadline`, then the
  // HTTP client is stopped (anything still pending completes with CANCELLED). Idempotent.
  void Shutdown(absl::Time deadline);

 private:
  Gateway() = default;

  std::unique_ptr<CurlHttpClient> http_;
  std::unique_ptr<UserpilotStub> stub_;
  std::unique_ptr<RequestValidator> validator_;
  std::unique_ptr<GatewayService> service_;
  std::unique_ptr<GatewayServer> server_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_APP_GATEWAY_H_
