#include "service/metrics/metrics_server.h"

#include <exception>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "prometheus/exposer.h"

namespace userpilot::gateway {

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    std::shared_ptr<MetricsRegistry> registry, const MetricsServerOptions& options) {
  if (options.threads < 1) {
    return absl::InvalidArgumentError("MetricsServerOptions: threads must be at least 1");
  }
  if (options.request_timeout < absl::Milliseconds(1) ||
      options.request_timeout == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        "MetricsServerOptions: request_timeout must be at least 1 ms and finite");
  }
  // civetweb's options (see the header for why each): it takes "host:port" and "[v6]:port" as
  // they are.
  std::vector<std::string> civetweb_options = {
      "listening_ports",    options.listen,
      "num_threads",        absl::StrCat(options.threads),
      "request_timeout_ms", absl::StrCat(absl::ToInt64Milliseconds(options.request_timeout)),
      "enable_keep_alive",  "no",
  };
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(std::move(civetweb_options));
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on '", options.listen,
                                               "' (--metrics_listen): the address is malformed "
                                               "or already in use (",
                                               e.what(), ")"));
  }
  const std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty() || ports.front() <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on '", options.listen,
                                               "' (--metrics_listen): no port was bound"));
  }
  exposer->RegisterCollectable(registry, "/metrics");
  return std::unique_ptr<MetricsServer>(
      new MetricsServer(std::move(registry), std::move(exposer), ports.front()));
}

MetricsServer::MetricsServer(std::shared_ptr<MetricsRegistry> registry,
                             std::unique_ptr<prometheus::Exposer> exposer, int port)
    : registry_(std::move(registry)), exposer_(std::move(exposer)), port_(port) {}

MetricsServer::~MetricsServer() = default;

}  // namespace userpilot::gateway
