// userpilot-emulator: a standalone HTTP server that behaves like Userpilot's REST API, for the
// gateway's integration tests, the `make run` demo and benchmarks. See README.md.
//
// Prints exactly one line, `userpilot-emulator listening on http://127.0.0.1:PORT`, to stdout
// once it serves (so scripts can read the port), then runs until SIGTERM or SIGINT.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "tests/emulator/emulator.h"
#include "tests/emulator/faults.h"
#include "tests/emulator/json.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:8089", "HOST:PORT to listen on; port 0 picks one");
ABSL_FLAG(
    std::string, api_key, "",
    "The accepted API key (Authorization: Token <key>). Default: $USERPILOT_EMULATOR_API_KEY, "
    "else emulator-key");
ABSL_FLAG(int, threads, 128,
          "Server threads; each open keep-alive connection and each hung request holds one");
ABSL_FLAG(bool, rate_limits, true, "Enforce Userpilot's rate limits (false for benchmarks)");
ABSL_FLAG(int, identify_limit, 600, "Identify + company identify requests per window");
ABSL_FLAG(int, track_limit, 600, "Track requests per window");
ABSL_FLAG(absl::Duration, rate_window, absl::Seconds(60), "Sliding window of the limits");
ABSL_FLAG(absl::Duration, delete_interval, absl::Seconds(2), "One delete request per interval");
ABSL_FLAG(bool, retry_after, false, "Send Retry-After: <seconds> on rate-limit 429s");
ABSL_FLAG(absl::Duration, job_step, absl::Seconds(1),
          "Time a job spends in each of queued, validating, processing");
ABSL_FLAG(absl::Duration, latency, absl::ZeroDuration(), "Latency added to every /v1/ answer");
ABSL_FLAG(double, error_ratio, 0, "Share of /v1/ requests answered --error_status");
ABSL_FLAG(int, error_status, 503, "Status of injected errors (200..599)");
ABSL_FLAG(double, drop_ratio, 0, "Share of /v1/ requests whose connection is closed unanswered");
ABSL_FLAG(double, hang_ratio, 0, "Share of /v1/ requests never answered");
ABSL_FLAG(absl::Duration, max_hang, absl::Seconds(30),
          "A hung request's connection is closed after this");
ABSL_FLAG(std::string, faults, "",
          "Fault settings as JSON, the PUT /_emulator/faults form (for example "
          "'{\"script\":[{\"action\":\"drop\",\"count\":2}]}'), applied over the flags above");
ABSL_FLAG(int64_t, request_log_capacity, 100000, "Requests kept in the record (newest); 0: none");
ABSL_FLAG(absl::Duration, keep_alive_timeout, absl::Seconds(30),
          "An idle keep-alive connection is closed after this");
ABSL_FLAG(bool, empty_202_body, false,
          "Answer identify/track/delete 202s with an empty body instead of {}");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Emulates Userpilot's HTTP API for tests, demos and benchmarks. See "
      "tests/emulator/README.md.");
  absl::ParseCommandLine(argc, argv);

  using userpilot::gateway::testing::Emulator;
  using userpilot::gateway::testing::EmulatorOptions;
  EmulatorOptions options;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.api_key = absl::GetFlag(FLAGS_api_key);
  if (options.api_key.empty()) {
    const char* env = std::getenv("USERPILOT_EMULATOR_API_KEY");
    options.api_key = env != nullptr && *env != '\0' ? env : "emulator-key";
  }
  options.threads = absl::GetFlag(FLAGS_threads);
  options.limits.enabled = absl::GetFlag(FLAGS_rate_limits);
  options.limits.identify_limit = absl::GetFlag(FLAGS_identify_limit);
  options.limits.track_limit = absl::GetFlag(FLAGS_track_limit);
  options.limits.window = absl::GetFlag(FLAGS_rate_window);
  options.limits.delete_interval = absl::GetFlag(FLAGS_delete_interval);
  options.limits.retry_after = absl::GetFlag(FLAGS_retry_after);
  options.job_step = absl::GetFlag(FLAGS_job_step);
  options.faults.latency = absl::GetFlag(FLAGS_latency);
  options.faults.error_ratio = absl::GetFlag(FLAGS_error_ratio);
  options.faults.error_status = absl::GetFlag(FLAGS_error_status);
  options.faults.drop_ratio = absl::GetFlag(FLAGS_drop_ratio);
  options.faults.hang_ratio = absl::GetFlag(FLAGS_hang_ratio);
  options.faults.max_hang = absl::GetFlag(FLAGS_max_hang);
  options.empty_accepted_body = absl::GetFlag(FLAGS_empty_202_body);
  options.keep_alive_timeout = absl::GetFlag(FLAGS_keep_alive_timeout);
  if (const std::string json = absl::GetFlag(FLAGS_faults); !json.empty()) {
    absl::StatusOr<google::protobuf::Value> value = userpilot::gateway::testing::ParseJson(json);
    absl::Status merged =
        value.ok() ? userpilot::gateway::testing::MergeFaultsFromJson(*value, &options.faults)
                   : value.status();
    if (!merged.ok()) {
      std::fprintf(stderr, "userpilot-emulator: --faults: %s\n", merged.ToString().c_str());
      return 2;
    }
  }
  const int64_t capacity = absl::GetFlag(FLAGS_request_log_capacity);
  const char* bad = nullptr;
  if (capacity < 0) bad = "--request_log_capacity must not be negative";
  if (options.limits.identify_limit < 0 || options.limits.track_limit < 0) {
    bad = "--identify_limit and --track_limit must not be negative";
  }
  if (options.limits.window <= absl::ZeroDuration() ||
      options.limits.delete_interval <= absl::ZeroDuration()) {
    bad = "--rate_window and --delete_interval must be positive";
  }
  if (options.job_step < absl::ZeroDuration()) bad = "--job_step must not be negative";
  if (bad != nullptr) {
    std::fprintf(stderr, "userpilot-emulator: %s\n", bad);
    return 2;
  }
  options.request_log_capacity = static_cast<size_t>(capacity);

  // Signals are taken synchronously by this thread only: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto emulator = Emulator::Start(std::move(options));
  if (!emulator.ok()) {
    std::fprintf(stderr, "userpilot-emulator: %s\n", emulator.status().ToString().c_str());
    return 1;
  }
  std::printf("userpilot-emulator listening on %s\n", (*emulator)->base_url().c_str());
  std::fflush(stdout);

  int received = 0;
  sigwait(&signals, &received);
  std::fprintf(stderr, "userpilot-emulator: signal %d, stopping\n", received);
  emulator->reset();
  return 0;
}
