// An in-process emulator of Userpilot's HTTP API, for the gateway's integration tests, the
// `make run` demo and benchmarks.
//
// It serves what userpilot-api-notes.md documents (identify, company identify, bulk identify
// as JSON or NDJSON, track, background jobs, imports, deletes, key validation) with Userpilot's
// status codes, error bodies, sliding-window rate limits, one-job-at-a-time rules and a job
// lifecycle paced by the clock. Tests steer and observe it through this class (or through the
// /_emulator/ admin HTTP API, see README.md): the record of every request received, counters,
// window accounting per rate budget (budget_windows.h), fault injection (latency, 5xx, dropped
// connections, hangs, and an exact script whose answers can be hostile: any headers, garbage
// status lines, any body, deep JSON, echoes of the key; faults.h), job control, and the users'
// and companies' properties as applied (a bulk job's rows when it completes; profile_store.h).
//
//   auto emulator = Emulator::Start({});   // 127.0.0.1, a free port.
//   // point the client under test at (*emulator)->base_url() with key "emulator-key" ...
//   EXPECT_EQ((*emulator)->Requests().size(), 1);
//
// Thread-safety: every public method is thread-safe and may be called while requests are being
// served. Destruction stops the server: hung requests are released, open connections closed,
// server threads joined; it returns in milliseconds.
#ifndef USERPILOT_GATEWAY_TESTS_EMULATOR_EMULATOR_H_
#define USERPILOT_GATEWAY_TESTS_EMULATOR_EMULATOR_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tests/emulator/budget_windows.h"
#include "tests/emulator/faults.h"
#include "tests/emulator/job_store.h"
#include "tests/emulator/profile_store.h"
#include "tests/emulator/rate_limiter.h"
#include "tests/emulator/request_log.h"

struct mg_context;
struct mg_connection;

namespace userpilot::gateway::testing {

class AdminApi;
class UserpilotApi;
struct ApiResponse;

// How to start an emulator. The defaults suit a unit test.
struct EmulatorOptions {
  // Where to listen, as civetweb takes it: "HOST:PORT" (IPv4); port 0 picks a free port.
  std::string listen = "127.0.0.1:0";
  // The accepted `Authorization: Token <key>`.
  std::string api_key = "emulator-key";
  // Server threads. Each open keep-alive connection (and each hung request) holds one.
  int threads = 64;
  RateLimits limits;
  // How long a job stays in each of queued, validating and processing.
  absl::Duration job_step = absl::Seconds(1);
  Faults faults;
  // How many requests the record keeps (the newest); 0 keeps none.
  size_t request_log_capacity = 100000;
  // 202 answers of identify, company identify, track and deletes carry an empty body instead of
  // "{}" (Userpilot documents no body; both must be handled by clients).
  bool empty_accepted_body = false;
  // How long an idle keep-alive connection stays open (civetweb's keep_alive_timeout_ms).
  absl::Duration keep_alive_timeout = absl::Seconds(30);
  // The clock for receive times, rate-limit windows and job progress; null means absl::Now.
  // Latency and hang faults always use real time. Must be callable from any thread.
  std::function<absl::Time()> clock;
};

class Emulator {
 public:
  // Starts serving. INVALID_ARGUMENT for bad options (bad faults, threads < 1), UNAVAILABLE
  // when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<Emulator>> Start(EmulatorOptions options);

  // Stops the server (see the file comment).
  ~Emulator();
  Emulator(const Emulator&) = delete;
  Emulator& operator=(const Emulator&) = delete;

  // The bound port, and "http://HOST:PORT" (HOST 127.0.0.1 when listening on 0.0.0.0).
  int port() const { return port_; }
  std::string base_url() const;

  // The record of Userpilot-path requests (admin requests excluded), oldest first.
  std::vector<RecordedRequest> Requests() const;
  void ClearRequests();

  // Per budget group: requests, the most within any sliding `window`, and 429s
  // (budget_windows.h), over the retained record.
  BudgetWindows Windows(absl::Duration window) const;

  // Counters by endpoint, by status, and of 429s and injected faults.
  EmulatorStats Stats() const;
  void ResetStats();

  // Fault injection. INVALID_ARGUMENT (and nothing changes) for invalid settings.
  absl::Status SetFaults(Faults faults);
  Faults GetFaults() const;
  // Appends one rule to the fault script ("the next N requests [under a path prefix] ...").
  absl::Status AddScriptedFault(ScriptedFault fault);
  void ClearFaults();

  // Rate limits, changeable at run time. ClearRateWindows() forgets admitted requests.
  void SetLimits(const RateLimits& limits);
  RateLimits GetLimits() const;
  void ClearRateWindows();

  // Jobs. FailJob makes a job end `failed` now; ForceJobStatus pins any documented status.
  // NOT_FOUND for an unknown id, INVALID_ARGUMENT for an unknown status.
  absl::Status FailJob(absl::string_view job_id);
  absl::Status ForceJobStatus(absl::string_view job_id, absl::string_view status);
  absl::StatusOr<JobSnapshot> GetJob(absl::string_view job_id) const;
  std::vector<JobSnapshot> Jobs() const;  // Newest first.
  // The pace of jobs created from now on.
  void SetJobStep(absl::Duration step);
  absl::Duration GetJobStep() const;
  void ClearJobs();

  // A user's or company's properties and the order they were applied in (profile_store.h);
  // nullopt when never identified.
  std::optional<Profile> GetProfile(EntityKind kind, absl::string_view id);

  // Forgets requests, counters, faults, rate windows, jobs and profiles (limits and pace stay): a
  // clean slate for the next test sharing this emulator.
  void Reset();

 private:
  explicit Emulator(EmulatorOptions options);

  static int OnBeginRequest(mg_connection* conn);
  static int OnLogMessage(const mg_connection* conn, const char* message);
  int Serve(mg_connection* conn);
  int ServeUserpilot(mg_connection* conn, RecordedRequest request);
  int Respond(mg_connection* conn, const ApiResponse& response);
  // Waits up to `d`, less if the emulator is stopping. Returns false when stopping.
  bool SleepUnlessStopping(absl::Duration d);
  void Stop();

  const EmulatorOptions options_;
  const std::function<absl::Time()> clock_;
  const std::string request_id_prefix_;
  std::atomic<uint64_t> request_counter_{0};

  RequestLog log_;
  FaultInjector faults_;
  SlidingWindowLimiter limiter_;
  JobStore jobs_;
  ProfileStore profiles_;
  std::unique_ptr<UserpilotApi> api_;
  std::unique_ptr<AdminApi> admin_;

  mg_context* ctx_ = nullptr;
  int port_ = 0;
  std::string host_;

  absl::Mutex stop_mu_;
  bool stopping_ ABSL_GUARDED_BY(stop_mu_) = false;
};

}  // namespace userpilot::gateway::testing

#endif  // USERPILOT_GATEWAY_TESTS_EMULATOR_EMULATOR_H_
