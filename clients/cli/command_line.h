// userpilotctl's command line: its flags, their parsing, and its --help text.
//
//   userpilotctl [flags] <Method> [JSON | - | @file]
//   userpilotctl [flags] --file=PATH ImportData [header JSON]
//   userpilotctl [flags] list
//   userpilotctl --help
//
// The flags are Abseil flags (typed values, descriptions, defaults), but the loop over argv is
// our own so that every usage error comes back as a Status (userpilotctl exits 2 on those, 1 on
// RPC errors) and --help shows the methods as well as the flags. Flags may come before or after
// the positional arguments; `--` ends the flags.
//
// Thread-safety: ParseCommandLine sets process-wide flags; call it once, from main.
#ifndef USERPILOT_GATEWAY_CLIENTS_CLI_COMMAND_LINE_H_
#define USERPILOT_GATEWAY_CLIENTS_CLI_COMMAND_LINE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace userpilot::gateway::cli {

// The environment variable that sets --target (the command line wins).
inline constexpr char kTargetEnvVar[] = "USERPILOT_GATEWAY_TARGET";
// The environment variable that holds the bearer token when --token_file is not given.
inline constexpr char kTokenEnvVar[] = "USERPILOT_GATEWAY_TOKEN";

// What the command line asks for.
struct Invocation {
  enum class Action { kHelp, kList, kCall };
  Action action = Action::kCall;
  std::string method;                      // kCall: the method name as typed.
  std::optional<std::string> request_arg;  // kCall: JSON, "-" or "@file"; absent means {}.

  std::string target;           // --target: the gateway's address (gRPC target syntax).
  absl::Duration deadline;      // --deadline; InfiniteDuration() means none.
  std::string caller;           // --caller: sent as the `x-caller` metadata.
  bool pretty = true;           // --pretty: indented JSON output.
  bool deadline_given = false;  // --deadline was on the command line (not its default).
  bool watch = false;           // --watch: follow the returned job until it ends.
  int max_attempts = 4;         // --max_attempts: of a unary call, retries included.
  std::string file;             // --file: the file ImportData uploads.

  // TLS: on with --tls or with any of the --tls_* flags below.
  bool tls = false;
  std::string tls_ca_file;    // --tls_ca_file: the CAs that sign the gateway's certificate.
  std::string tls_cert_file;  // --tls_cert_file, --tls_key_file: a client certificate (mTLS).
  std::string tls_key_file;
  std::string tls_server_name;  // --tls_server_name: the name the gateway's certificate carries.
  std::string token_file;       // --token_file: the bearer token (else $USERPILOT_GATEWAY_TOKEN).
  bool token_over_plaintext = false;  // --token_over_plaintext
};

// Methods whose answer is a job that --watch can follow.
bool CanWatch(const std::string& method);

// Parses `args` (argv without the program name). `env_target` is the value of
// USERPILOT_GATEWAY_TARGET, if set. INVALID_ARGUMENT for any usage error: unknown flag, bad
// value, missing method, too many arguments, --file without ImportData (or ImportData without
// --file), --watch on a method that returns no job, only one of --tls_cert_file and
// --tls_key_file. (Files are read later, by ClientOptionsFor in call.h.)
absl::StatusOr<Invocation> ParseCommandLine(const std::vector<std::string>& args,
                                            const std::optional<std::string>& env_target);

// The full --help text: synopsis, examples, flags with defaults, and every method with its
// request shape.
std::string UsageText();

}  // namespace userpilot::gateway::cli

#endif  // USERPILOT_GATEWAY_CLIENTS_CLI_COMMAND_LINE_H_
