// MetricsServer: serves a MetricsRegistry on http://<listen>/metrics for Prometheus
// (prometheus-cpp's Exposer, on civetweb).
//
// Start() binds `--metrics_listen` (host:port; port 0 picks a free port, read back with
// port()). The text format is produced at each scrape by MetricsRegistry::Collect(), so collect
// hooks read component stats then.
//
// Destruction stops the HTTP server; civetweb's poll cycle makes that take up to ~2 s, so
// tests share one server per suite. Stop it after the gRPC server (a scrape during the drain
// still sees the final numbers).
//
// Thread-safety: port() and registry() are immutable after Start(); scrapes run on civetweb's
// threads, concurrently with everything else.
#ifndef USERPILOT_GATEWAY_SERVICE_METRICS_METRICS_SERVER_H_
#define USERPILOT_GATEWAY_SERVICE_METRICS_METRICS_SERVER_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "service/metrics/metrics_registry.h"

namespace prometheus {
class Exposer;
}

namespace userpilot::gateway {

struct MetricsServerOptions {
  std::string listen = "0.0.0.0:9464";  // host:port, [v6]:port; port 0 picks one.
  size_t threads = 2;                   // civetweb worker threads (one scrape each).
};

class MetricsServer {
 public:
  // Starts serving `registry` (kept alive by the server). UNAVAILABLE when `listen` cannot be
  // bound or parsed (the message names --metrics_listen).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      std::shared_ptr<MetricsRegistry> registry, const MetricsServerOptions& options);

  ~MetricsServer();

  // The bound TCP port (the real one when `listen` asked for port 0).
  int port() const { return port_; }

  MetricsRegistry& registry() { return *registry_; }

 private:
  MetricsServer(std::shared_ptr<MetricsRegistry> registry,
                std::unique_ptr<prometheus::Exposer> exposer, int port);

  std::shared_ptr<MetricsRegistry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  const int port_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_METRICS_METRICS_SERVER_H_
