// MetricsServer: serves a MetricsRegistry on http://<listen>/metrics for Prometheus
// (prometheus-cpp's Exposer, on civetweb).
//
// Start() binds `--metrics_listen` (host:port; port 0 picks a free port, read back with
// port()). The text format is produced at each scrape by MetricsRegistry::Collect(), so collect
// hooks read component stats then.
//
// Idle and slow clients cannot blind Prometheus. civetweb serves each connection on one of a
// fixed set of worker threads, from accept until the connection closes, so a client that
// connects and sends nothing (a port scanner, a stuck load-balancer probe) or sends its request
// a byte at a time (slow loris) holds a worker; once every worker is held, a scrape waits in the
// accept queue. Hence: `threads` workers (16), far more than the scrapers and stray clients of a
// metrics port; a request must arrive whole within `request_timeout` (5 s, half of
// Prometheus' default scrape timeout: a real scrape request arrives at once), or the
// connection is closed and its worker freed; and no keep-alive, so a connection ends with its
// answer instead of holding a worker while idle (Prometheus scrapes every 15 s or so, so a new
// connection per scrape costs nothing). A scrape is then served at once while fewer than
// `threads` connections are held, and after at most `request_timeout` however many are.
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
#include "absl/time/time.h"
#include "service/metrics/metrics_registry.h"

namespace prometheus {
class Exposer;
}

namespace userpilot::gateway {

struct MetricsServerOptions {
  std::string listen = "0.0.0.0:9464";  // host:port, [v6]:port; port 0 picks one.
  // civetweb worker threads: connections served at once (one each, until it closes). >= 1.
  size_t threads = 16;
  // A connection whose request has not fully arrived by then is closed. >= 1 ms.
  absl::Duration request_timeout = absl::Seconds(5);
};

class MetricsServer {
 public:
  // Starts serving `registry` (kept alive by the server). UNAVAILABLE when `listen` cannot be
  // bound or parsed (the message names --metrics_listen); INVALID_ARGUMENT when `threads` or
  // `request_timeout` is out of range.
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
