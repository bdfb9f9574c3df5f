#include "clients/cli/command_line.h"

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "clients/cli/cli.h"
#include "clients/cpp/client.h"

ABSL_FLAG(std::string, target, "localhost:50051",
          "The gateway's address, as a gRPC target (host:port, dns:///host:port, "
          "unix:/path). Environment: USERPILOT_GATEWAY_TARGET. Plaintext unless --tls or a "
          "--tls_* flag is given.");
ABSL_FLAG(absl::Duration, deadline, absl::Seconds(30),
          "How long to wait for the answer (e.g. 5s, 2m); 'inf' for no deadline.");
ABSL_FLAG(std::string, caller, "userpilotctl",
          "Who is calling: sent as the x-caller metadata (the gateway's fairness key).");
ABSL_FLAG(bool, pretty, true, "Indent the JSON output; --nopretty prints one line.");
ABSL_FLAG(int, max_attempts, userpilot::gateway::client::RetryOptions().max_attempts,
          "Unary calls: attempts in all. UNAVAILABLE and RESOURCE_EXHAUSTED are tried again by "
          "the C++ client library's rules (after the gateway's RetryInfo delay; TrackEvent and "
          "bulk identify only when Userpilot surely never saw them), all within --deadline. 1 "
          "turns retries off. Watches reconnect on their own terms.");
ABSL_FLAG(bool, watch, false,
          "After BulkIdentifyUsers, BulkIdentifyCompanies or ImportData, follow the job: a "
          "progress line on stderr per change, the final state on stdout; exit status 3 if the "
          "job failed.");
ABSL_FLAG(std::string, file, "",
          "ImportData: the CSV or NDJSON file to upload (streamed in chunks). The request "
          "argument is then the ImportHeader (target, format, filename, ...); filename, format "
          "(from the extension) and size_bytes are filled in from the file.");

ABSL_FLAG(bool, tls, false,
          "Connect with TLS, verifying the gateway's certificate against the system's CAs (or "
          "--tls_ca_file). Implied by every --tls_* flag.");
ABSL_FLAG(std::string, tls_ca_file, "",
          "PEM file of the CAs that sign the gateway's certificate (the gateway's "
          "--tls_cert_file). Empty: the system's CAs.");
ABSL_FLAG(std::string, tls_cert_file, "",
          "PEM file of this caller's client certificate, for a gateway that requires one "
          "(its --tls_client_ca_file); with --tls_key_file. The gateway names the caller by the "
          "certificate's first DNS SAN (else its CN).");
ABSL_FLAG(std::string, tls_key_file, "", "PEM file of the client certificate's private key.");
ABSL_FLAG(std::string, tls_server_name, "",
          "The name the gateway's certificate must carry, when it is not the host of --target "
          "(an IP address, a port-forward to localhost).");
ABSL_FLAG(std::string, token_file, "",
          "File holding the bearer token sent as `authorization: Bearer <token>` (the gateway's "
          "--caller_tokens_file); surrounding whitespace is ignored. Without it the token comes "
          "from the environment variable USERPILOT_GATEWAY_TOKEN, if set. Never printed. Sent "
          "only over TLS unless --token_over_plaintext.");
ABSL_FLAG(bool, token_over_plaintext, false,
          "Send the bearer token over a plaintext connection too: only where something else "
          "protects the hop (a service-mesh sidecar) or for local development.");

namespace userpilot::gateway::cli {
namespace {

constexpr const char* kFlagNames[] = {"target",       "deadline",
                                      "caller",       "pretty",
                                      "watch",        "max_attempts",
                                      "file",         "tls",
                                      "tls_ca_file",  "tls_cert_file",
                                      "tls_key_file", "tls_server_name",
                                      "token_file",   "token_over_plaintext"};

absl::CommandLineFlag* OurFlag(absl::string_view name) {
  for (const char* ours : kFlagNames) {
    if (name == ours) return absl::FindCommandLineFlag(name);
  }
  return nullptr;
}

absl::Status UsageError(absl::string_view message) { return absl::InvalidArgumentError(message); }

}  // namespace

absl::StatusOr<Invocation> ParseCommandLine(const std::vector<std::string>& args,
                                            const std::optional<std::string>& env_target) {
  if (env_target.has_value() && !env_target->empty()) {
    absl::SetFlag(&FLAGS_target, *env_target);
  }
  Invocation inv;
  std::vector<std::string> positional;
  bool flags_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    // "-" alone is a positional argument (the request on stdin).
    if (flags_done || arg.size() < 2 || arg[0] != '-') {
      positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    absl::string_view body(arg);
    body.remove_prefix(arg[1] == '-' ? 2 : 1);
    size_t eq = body.find('=');
    std::string name(body.substr(0, eq));
    std::optional<std::string> value;
    if (eq != absl::string_view::npos) value = std::string(body.substr(eq + 1));
    if (name == "help" || name == "h" || name == "helpfull") {
      inv.action = Invocation::Action::kHelp;
      continue;
    }
    absl::CommandLineFlag* flag = OurFlag(name);
    if (flag == nullptr && absl::StartsWith(name, "no") && !value.has_value()) {
      flag = OurFlag(name.substr(2));
      if (flag != nullptr && flag->IsOfType<bool>()) {
        value = "false";
      } else {
        flag = nullptr;
      }
    }
    if (flag == nullptr) {
      std::string names;
      for (const char* ours : kFlagNames)
        absl::StrAppend(&names, names.empty() ? "" : ", ", "--", ours);
      return UsageError(absl::StrCat("unknown flag '", arg, "'; the flags are ", names));
    }
    if (!value.has_value() && flag->IsOfType<bool>()) value = "true";
    if (!value.has_value()) {
      if (i + 1 == args.size()) return UsageError(absl::StrCat("flag --", name, " needs a value"));
      value = args[++i];
    }
    std::string error;
    if (!flag->ParseFrom(*value, &error)) return UsageError(absl::StrCat("--", name, ": ", error));
    if (flag->Name() == "deadline") inv.deadline_given = true;
  }

  inv.target = absl::GetFlag(FLAGS_target);
  inv.deadline = absl::GetFlag(FLAGS_deadline);
  inv.caller = absl::GetFlag(FLAGS_caller);
  inv.pretty = absl::GetFlag(FLAGS_pretty);
  inv.watch = absl::GetFlag(FLAGS_watch);
  inv.file = absl::GetFlag(FLAGS_file);
  inv.max_attempts = absl::GetFlag(FLAGS_max_attempts);
  inv.tls_ca_file = absl::GetFlag(FLAGS_tls_ca_file);
  inv.tls_cert_file = absl::GetFlag(FLAGS_tls_cert_file);
  inv.tls_key_file = absl::GetFlag(FLAGS_tls_key_file);
  inv.tls_server_name = absl::GetFlag(FLAGS_tls_server_name);
  inv.tls = absl::GetFlag(FLAGS_tls) || !inv.tls_ca_file.empty() || !inv.tls_cert_file.empty() ||
            !inv.tls_key_file.empty() || !inv.tls_server_name.empty();
  inv.token_file = absl::GetFlag(FLAGS_token_file);
  inv.token_over_plaintext = absl::GetFlag(FLAGS_token_over_plaintext);
  if (inv.action == Invocation::Action::kHelp) return inv;
  if (inv.tls_cert_file.empty() != inv.tls_key_file.empty()) {
    return UsageError("--tls_cert_file and --tls_key_file go together: give both or neither");
  }
  if (inv.target.empty()) return UsageError("--target must not be empty");
  if (inv.caller.empty()) return UsageError("--caller must not be empty");
  if (inv.max_attempts < 1) {
    return UsageError(absl::StrCat("--max_attempts must be at least 1, not ", inv.max_attempts));
  }
  if (inv.deadline <= absl::ZeroDuration()) {
    return UsageError(
        absl::StrCat("--deadline must be positive, not ", absl::FormatDuration(inv.deadline)));
  }

  if (positional.empty()) {
    return UsageError(
        "missing the method to call, e.g. 'userpilotctl ListJobs' (see 'userpilotctl list')");
  }
  if (positional[0] == "list" || positional[0] == "help") {
    if (positional.size() > 1)
      return UsageError(absl::StrCat("'", positional[0], "' takes no arguments"));
    inv.action = positional[0] == "list" ? Invocation::Action::kList : Invocation::Action::kHelp;
    return inv;
  }
  if (positional.size() > 2) {
    return UsageError(absl::StrCat("too many arguments after ", positional[0],
                                   ": pass the request as one argument (quote the JSON), '-' for "
                                   "stdin or @file"));
  }
  inv.method = positional[0];
  if (positional.size() == 2) inv.request_arg = positional[1];
  if (inv.method == "ImportData" && inv.file.empty()) {
    return UsageError("ImportData needs --file=PATH (the file to upload)");
  }
  if (inv.method != "ImportData" && !inv.file.empty()) {
    return UsageError("--file is for ImportData only");
  }
  if (inv.watch && !CanWatch(inv.method)) {
    return UsageError(absl::StrCat(
        "--watch follows the job that BulkIdentifyUsers, BulkIdentifyCompanies or ImportData "
        "returns, not ",
        inv.method, " (to watch a job by id, call WatchJob)"));
  }
  return inv;
}

bool CanWatch(const std::string& method) {
  return method == "BulkIdentifyUsers" || method == "BulkIdentifyCompanies" ||
         method == "ImportData";
}

std::string UsageText() {
  std::string flags;
  for (const char* name : kFlagNames) {
    const absl::CommandLineFlag& flag = *absl::FindCommandLineFlag(name);
    absl::StrAppend(&flags, "  --", name, " (default: ", flag.DefaultValue(), ")\n      ",
                    flag.Help(), "\n");
  }
  return absl::StrCat(
      "userpilotctl: calls the userpilot-gateway gRPC API, JSON in, JSON out.\n"
      "\n"
      "Usage:\n"
      "  userpilotctl [flags] <Method> [JSON | - | @file]\n"
      "      Calls Method. The request is protobuf JSON of the method's request message\n"
      "      (proto field names or lowerCamelCase), given inline, on stdin (-) or in a file\n"
      "      (@file); none means {}. The answer is printed as JSON on stdout (exit status 0).\n"
      "      Streaming answers (WatchJob, WatchJobs) print one JSON document per message;\n"
      "      they have no deadline unless --deadline is given.\n"
      "  userpilotctl [flags] --file=PATH ImportData [ImportHeader JSON]\n"
      "      Uploads PATH (CSV or NDJSON) in chunks; prints the job. Default deadline 10m.\n"
      "      An error is printed on stderr as {\"code\": ..., \"message\": ..., \"details\": "
      "[...]}\n"
      "      with the google.rpc details (BadRequest, ErrorInfo, RetryInfo, ...) decoded\n"
      "      (exit status 1). Usage errors exit with status 2.\n"
      "      Calls go through the C++ client library: UNAVAILABLE and RESOURCE_EXHAUSTED are\n"
      "      tried again within --deadline (see --max_attempts), and watches reconnect when a\n"
      "      gateway replica drains.\n"
      "  userpilotctl list       Lists the methods and their request shapes.\n"
      "  userpilotctl --help     Shows this text.\n"
      "\n"
      "Examples:\n"
      "  userpilotctl IdentifyUser "
      "'{\"user_id\":\"u1\",\"metadata\":{\"plan\":\"pro\",\"seats\":3}}'\n"
      "  userpilotctl TrackEvent '{\"user_id\":\"u1\",\"event_name\":\"purchase_completed\"}'\n"
      "  userpilotctl BulkIdentifyUsers @users.json\n"
      "  userpilotctl ListJobs\n"
      "  userpilotctl GetJob '{\"job_id\":\"bulk:jobs:...\"}'\n"
      "  userpilotctl WatchJob '{\"job_id\":\"bulk:jobs:...\"}'\n"
      "  userpilotctl --watch BulkIdentifyUsers @users.json\n"
      "  userpilotctl --watch --file=users.ndjson ImportData "
      "'{\"target\":\"IMPORT_TARGET_USERS_BULK\"}'\n"
      "  userpilotctl --file=events.csv ImportData "
      "'{\"target\":\"IMPORT_TARGET_HISTORICAL_IMPORT\",\"wait_for_running_job\":true}'\n"
      "  userpilotctl --target=gateway.internal:50051 --deadline=5s DeleteUsers "
      "'{\"user_ids\":[\"u1\"]}'\n"
      "  userpilotctl --tls_ca_file=ca.crt --token_file=/var/run/secrets/gateway/token \\\n"
      "      --target=userpilot-gateway.userpilot-gateway.svc:50051 ListJobs\n"
      "  userpilotctl --tls_ca_file=ca.crt --tls_cert_file=tls.crt --tls_key_file=tls.key \\\n"
      "      --tls_server_name=userpilot-gateway --target=127.0.0.1:50051 ListJobs\n"
      "\n"
      "Flags:\n",
      flags, "\nMethods (Method -> response, then the request shape):\n", MethodListing());
}

}  // namespace userpilot::gateway::cli
