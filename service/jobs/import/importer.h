// Importer: what ImportData needs besides gRPC and besides one call's own state (that is
// ImportSession's, import_session.h) - admission (a bound on concurrent imports), worker
// threads for spooling and checking, and the submission of a spooled file to Userpilot,
// including waiting out a running job when Userpilot answers 409.
//
// Submission (Submit):
//  1. UserpilotStub::ImportFile with the caller's deadline, once. Whether an upload may be sent
//     again is the upstream stack's retry layer's decision alone (only when the request
//     certainly never reached Userpilot: an upload that did may have started a job, and a
//     second one would start another, or meet 409 on our own job).
//  2. 409 (FAILED_PRECONDITION / JOB_IN_PROGRESS) is final unless the caller asked to wait.
//     Then: list the jobs (ListJobs), pick the newest unfinished job of the same family
//     (imports: type or id mentioning "import"; bulk identifies: "bulk"), watch it through the
//     JobWatchRegistry (sharing any existing poller) until it ends, and go back to 1. When no
//     such job is listed (Userpilot's list may lag), wait `conflict_retry_interval` instead.
//     A wait that reaches the deadline ends with DEADLINE_EXCEEDED (ErrorInfo JOB_IN_PROGRESS,
//     metadata job_id).
// Cancel() (the caller went away) ends a wait at once with CANCELLED; a request in flight ends
// when its answer (or its deadline) comes.
//
// Thread-safety: every method from any thread. Submission callbacks run on the stub's, the
// scheduler's or a notifying thread, never inside Submit().
#ifndef USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORTER_H_
#define USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORTER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/common/scheduler.h"
#include "service/jobs/import/blocking_executor.h"
#include "service/jobs/import/import_options.h"
#include "service/jobs/watch/job_watch_registry.h"
#include "service/upstream/userpilot_stub.h"

namespace userpilot::gateway {

struct ImportStats {
  size_t running = 0;             // Admitted imports not yet finished.
  int64_t admitted = 0;           // Since start.
  int64_t refused = 0;            // Refused for max_concurrent_imports.
  int64_t uploads = 0;            // ImportFile calls sent.
  int64_t conflict_waits = 0;     // Waits for a running job after a 409.
  int64_t bytes_received = 0;     // File bytes received from callers and spooled.
  int64_t idle_timeouts = 0;      // Calls ended because the caller sent nothing for idle_timeout.
  int64_t deadline_timeouts = 0;  // Calls ended by their deadline before the upload.
};

class ImportSubmission;

class Importer {
 public:
  // `stub`, `registry` and `scheduler` must outlive the importer and every submission.
  // `options` must pass Validate() (the constructor aborts the process otherwise).
  Importer(UserpilotStub& stub, JobWatchRegistry& registry, Scheduler& scheduler,
           ImportOptions options);
  // Shutdown().
  ~Importer();

  Importer(const Importer&) = delete;
  Importer& operator=(const Importer&) = delete;

  // One admitted import: holds one of max_concurrent_imports slots until destroyed.
  class Permit {
   public:
    Permit(Permit&& other) noexcept : running_(other.running_) { other.running_ = nullptr; }
    Permit& operator=(Permit&&) = delete;
    ~Permit() {
      if (running_ != nullptr) running_->fetch_sub(1);
    }

   private:
    friend class Importer;
    explicit Permit(std::atomic<size_t>* running) : running_(running) {}
    std::atomic<size_t>* running_;
  };

  // A slot for one import. RESOURCE_EXHAUSTED (with RetryInfo) when all are taken,
  // UNAVAILABLE after Shutdown().
  Result<Permit> Admit();

  // Runs `task` on a worker thread: the place for spool writes and validation.
  void RunBlocking(BlockingExecutor::Task task) { executor_.Post(std::move(task)); }

  // Counts `bytes` of a file received and spooled (ImportStats::bytes_received).
  void RecordReceivedBytes(size_t bytes) { bytes_received_.fetch_add(static_cast<int64_t>(bytes)); }

  // Counts a call ended for its idle timeout (`idle`) or its deadline.
  void RecordTimeout(bool idle) { (idle ? idle_timeouts_ : deadline_timeouts_).fetch_add(1); }

  // The clock and timers of imports.
  Scheduler& scheduler() { return scheduler_; }

  // Submits a spooled file as described in the file comment. `done` runs exactly once, never
  // inside this call. The returned handle may Cancel() the submission.
  std::shared_ptr<ImportSubmission> Submit(const CallOptions& options, ImportFileRequest request,
                                           bool wait_for_running_job, StubCallback<v1::Job> done);

  // Refuses new imports (UNAVAILABLE), then runs what the workers have queued and joins them.
  // Call after the gRPC server has drained (queued tasks finish calls in flight).
  void Shutdown();

  const ImportOptions& options() const { return options_; }
  ImportStats Stats() const;

 private:
  friend class ImportSubmission;

  UserpilotStub& stub_;
  JobWatchRegistry& registry_;
  Scheduler& scheduler_;
  const ImportOptions options_;
  BlockingExecutor executor_;
  std::atomic<size_t> running_{0};
  std::atomic<bool> shut_down_{false};
  std::atomic<int64_t> admitted_{0};
  std::atomic<int64_t> refused_{0};
  std::atomic<int64_t> uploads_{0};
  std::atomic<int64_t> conflict_waits_{0};
  std::atomic<int64_t> bytes_received_{0};
  std::atomic<int64_t> idle_timeouts_{0};
  std::atomic<int64_t> deadline_timeouts_{0};
};

// One submission in progress (see Importer::Submit). Opaque but for Cancel().
class ImportSubmission : public std::enable_shared_from_this<ImportSubmission> {
 public:
  ~ImportSubmission();

  // The caller went away: a wait ends at once, `done` gets CANCELLED (or the answer of a
  // request already in flight, when it comes). Idempotent.
  void Cancel();

 private:
  friend class Importer;
  class Sink;
  struct Waits;

  ImportSubmission(Importer& importer, const CallOptions& options, ImportFileRequest request,
                   bool wait, StubCallback<v1::Job> done);

  void Send();
  void OnAnswer(Result<v1::Job> answer);
  void OnList(Result<v1::ListJobsResponse> list);
  void OnWatchReady();
  void AfterDelay(absl::Duration delay);
  void OnDeadline();
  // Ends the submission with `result` (once), after releasing every wait.
  void Finish(Result<v1::Job> result);
  // Takes every wait (watch, timers) out of the submission, to release without the lock.
  Waits TakeWaitsLocked();

  Importer& importer_;
  const CallOptions options_;
  const ImportFileRequest request_;
  const bool wait_;

  std::mutex mu_;
  StubCallback<v1::Job> done_;                        // Guarded by mu_. Empty once finished.
  bool cancelled_ = false;                            // Guarded by mu_.
  bool in_flight_ = false;                            // Guarded by mu_: a stub call is out.
  std::string waiting_for_;                           // Guarded by mu_: the running job's id.
  std::shared_ptr<JobSubscription> subscription_;     // Guarded by mu_.
  Sink* sink_ = nullptr;                              // Guarded by mu_.
  std::optional<Scheduler::TimerId> timer_;           // Guarded by mu_.
  std::optional<Scheduler::TimerId> deadline_timer_;  // Guarded by mu_.
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_JOBS_IMPORT_IMPORTER_H_
