// userpilot-gateway: wiring only. Parse and validate the configuration once, build the gateway,
// serve until SIGTERM or SIGINT, drain within --shutdown_grace, exit 0.
#include <csignal>
#include <cstdlib>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "service/app/gateway.h"
#include "service/config/config.h"
#include "service/config/flags.h"
#include "service/logging/logger.h"

namespace {

constexpr char kVersion[] = UPGW_VERSION " (" UPGW_GIT_REVISION ")";

// Blocks SIGINT and SIGTERM in this thread and every thread started after, so that only
// WaitForSignal() receives them.
sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

int WaitForSignal(const sigset_t& signals) {
  int signal = 0;
  while (sigwait(&signals, &signal) != 0) {
  }
  return signal;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace userpilot::gateway;  // NOLINT(build/namespaces): main only wires.
  const sigset_t stop_signals = BlockStopSignals();
  // gRPC locks absl::Mutex on every call; Debian's Abseil keeps its lock-order graph for
  // deadlock detection on, which cost ~1% of the gateway's CPU in the profile (BENCHMARKS.md).
  // The gateway's own code uses std::mutex; the sanitizer builds still check it all.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const std::vector<std::string> args = ParseFlagsWithEnv(argc, argv, kVersion);
  if (!args.empty()) {
    std::cerr << "userpilot-gateway takes no positional arguments (got '" << args.front()
              << "'); see --help\n";
    return 2;
  }
  absl::StatusOr<GatewayConfig> config = LoadConfig(ConfigInputFromFlags());
  if (!config.ok()) {
    std::cerr << "userpilot-gateway: " << config.status().message() << "\n";
    return 2;
  }

  // From here on every line is JSON on stderr, gRPC's own included, with the key redacted.
  LoggerOptions log_options;
  log_options.level =
      ParseLogSeverity(LogLevelName(config->log_level)).value_or(LogSeverity::kInfo);
  log_options.api_key = std::string(config->api_key.Reveal());
  // Lines are written by a background thread, so no call waits for stderr.
  log_options.queue_lines = kDefaultLogQueueLines;
  Logger logger(log_options);
  CaptureGrpcLogs(&logger);
  logger.Info("starting", {{"version", kVersion}, {"config", config->DebugString()}});

  GatewayEnvironment environment;
  environment.logger = &logger;
  environment.version = UPGW_VERSION;
  environment.revision = UPGW_GIT_REVISION;
  absl::StatusOr<std::unique_ptr<Gateway>> gateway = Gateway::Start(*config, environment);
  if (!gateway.ok()) {
    logger.Error("cannot start", {{"error", gateway.status().message()}});
    CaptureGrpcLogs(nullptr);
    return 1;
  }
  // The message stays readable (and stable: scripts wait for "serving gRPC on port N").
  const int health_port = (*gateway)->health_port();
  logger.Info(absl::StrCat("serving gRPC on port ", (*gateway)->port(), ", /metrics on port ",
                           (*gateway)->metrics_port(),
                           health_port != 0 ? absl::StrCat(", health on port ", health_port) : "",
                           ", upstream ", config->upstream_url),
              {{"grpc_port", (*gateway)->port()},
               {"metrics_port", (*gateway)->metrics_port()},
               {"health_port", health_port},
               {"upstream", config->upstream_url}});

  const int signal = WaitForSignal(stop_signals);
  logger.Info("draining", {{"signal", signal == SIGTERM ? "SIGTERM" : "SIGINT"},
                           {"grace", absl::FormatDuration(config->shutdown_grace)}});
  (*gateway)->Shutdown(absl::Now() + config->shutdown_grace);
  gateway->reset();
  logger.Info("stopped");
  CaptureGrpcLogs(nullptr);
  return 0;
}
