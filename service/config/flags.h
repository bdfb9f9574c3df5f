// The gateway's command-line flags and their environment fallbacks.
//
// Every setting of config.h is a flag (ABSL_FLAG, defined in flags.cc) that can also come from
// the environment variable USERPILOT_GATEWAY_<FLAG NAME IN CAPITALS>; for example
// USERPILOT_GATEWAY_LISTEN=0.0.0.0:50051. Precedence: command line > environment > default.
// (The API key itself is not a flag: see LoadConfig.)
//
// Only main uses this file:
//
//   int main(int argc, char** argv) {
//     std::vector<std::string> args = userpilot::gateway::ParseFlagsWithEnv(argc, argv);
//     // args: positional arguments; the gateway takes none.
//     absl::StatusOr<GatewayConfig> config = LoadConfig(ConfigInputFromFlags());
//     if (!config.ok()) { std::cerr << config.status().message() << "\n"; return 2; }
//     ... log config->DebugString(), build components from *config ...
//   }
//
// Thread-safety: call from main before starting threads (flags are process-global).
#ifndef USERPILOT_GATEWAY_SERVICE_CONFIG_FLAGS_H_
#define USERPILOT_GATEWAY_SERVICE_CONFIG_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "service/config/config.h"

namespace userpilot::gateway {

// Prefix of the environment variable that sets a flag.
inline constexpr absl::string_view kFlagEnvPrefix = "USERPILOT_GATEWAY_";

// The names of the gateway's flags (without `--`), sorted: every ABSL_FLAG defined in a gateway
// source file, as Abseil's registry lists them (absl::GetAllFlags), so no list is kept by hand.
const std::vector<absl::string_view>& GatewayFlagNames();

// The environment variable for a flag: "listen" -> "USERPILOT_GATEWAY_LISTEN".
std::string FlagEnvVar(absl::string_view flag_name);

// Sets each gateway flag whose environment variable is set to a non-empty value. Returns
// INVALID_ARGUMENT naming every variable whose value does not parse (flags left unchanged for
// those). Call it before absl::ParseCommandLine so that the command line wins.
absl::Status ApplyFlagEnvironment(const EnvLookup& env = ProcessEnvironment());

// Everything main needs before LoadConfig: makes --help list the gateway's flags with their
// descriptions, applies the environment (a bad value prints every problem and exits with status
// 2), then parses the command line with absl::ParseCommandLine (which exits on --help,
// --version, unknown flags and malformed values). `version` is what --version prints; empty
// keeps Abseil's default. Returns the positional arguments, without the program name.
std::vector<std::string> ParseFlagsWithEnv(int argc, char** argv, absl::string_view version = "");

// The current values of the gateway's flags (call after ParseFlagsWithEnv).
ConfigInput ConfigInputFromFlags();

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_CONFIG_FLAGS_H_
