// userpilot-gateway: wiring only. Parse and validate the configuration once, build the gateway,
// serve until SIGTERM or SIGINT, drain within --shutdown_grace, exit 0.
#include <csignal>
#include <cstdlib>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "service/app/gateway.h"
#include "service/config/config.h"
#include "service/config/flags.h"

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

void Log(const std::string& message) { std::cerr << "userpilot-gateway: " << message << std::endl; }

}  // namespace

int main(int argc, char** argv) {
  using namespace userpilot::gateway;  // NOLINT(build/namespaces): main only wires.
  const sigset_t stop_signals = BlockStopSignals();
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
  Log(absl::StrCat("version ", kVersion, "; ", config->DebugString()));

  absl::StatusOr<std::unique_ptr<Gateway>> gateway = Gateway::Start(*config);
  if (!gateway.ok()) {
    std::cerr << "userpilot-gateway: cannot start: " << gateway.status().message() << "\n";
    return 1;
  }
  Log(absl::StrCat("serving gRPC on port ", (*gateway)->port(), ", upstream ",
                   config->upstream_url));

  const int signal = WaitForSignal(stop_signals);
  Log(absl::StrCat("received ", signal == SIGTERM ? "SIGTERM" : "SIGINT", ", draining for up to ",
                   absl::FormatDuration(config->shutdown_grace)));
  (*gateway)->Shutdown(absl::Now() + config->shutdown_grace);
  Log("stopped");
  return 0;
}
