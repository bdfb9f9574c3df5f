// Userpilot background jobs as the emulator keeps them: bulk identify and import jobs whose
// status is computed from the clock on every read (no background thread).
//
// A job is `queued` for one step, `validating` for one step, `processing` for one step (its
// completed_rows growing in proportion), then `completed`. A test can pin any status, for
// example `failed`, with ForceStatus. Userpilot runs one bulk job (users or companies) at a
// time and one import at a time: Create refuses a second one while the first is unfinished.
//
// Thread-safety: JobStore is thread-safe. The clock must be callable from any thread.
#ifndef USERPILOT_GATEWAY_TESTS_EMULATOR_JOB_STORE_H_
#define USERPILOT_GATEWAY_TESTS_EMULATOR_JOB_STORE_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace userpilot::gateway::testing {

enum class JobKind { kBulkUsers, kBulkCompanies, kImport };

// One job as seen at one instant.
struct JobSnapshot {
  std::string job_id;
  JobKind kind = JobKind::kBulkUsers;
  std::string status;  // queued, validating, processing, pending_refresh, completed, failed.
  std::string type;    // users_bulk_identify, companies_bulk_identify or import.
  std::string filename;
  int64_t file_size = 0;
  int64_t total_rows = 0;
  int64_t completed_rows = 0;
  absl::Time start_time;
  std::optional<absl::Time> end_time;  // Set once the job is completed or failed.
  absl::Duration elapsed;              // From start to end, or to now while running.
  bool forced = false;                 // Status pinned by ForceStatus.

  bool terminal() const { return status == "completed" || status == "failed"; }
};

// True for the six statuses Userpilot documents.
bool IsKnownJobStatus(absl::string_view status);

class JobStore {
 public:
  using Clock = std::function<absl::Time()>;

  // `step`: how long each of queued, validating and processing lasts. `account_tag`: the
  // 8 hex digits in `NX-<tag>` of every job id.
  JobStore(Clock clock, absl::Duration step, std::string account_tag);

  // Starts a job. FAILED_PRECONDITION when a job of the same family (bulk, or import) is
  // still unfinished. Thread-safe.
  absl::StatusOr<JobSnapshot> Create(JobKind kind, std::string filename, int64_t file_size,
                                     int64_t total_rows) ABSL_LOCKS_EXCLUDED(mu_);

  // NOT_FOUND for an unknown id. Thread-safe.
  absl::StatusOr<JobSnapshot> Get(absl::string_view job_id) const ABSL_LOCKS_EXCLUDED(mu_);

  // Every retained job, newest first. Thread-safe.
  std::vector<JobSnapshot> List() const ABSL_LOCKS_EXCLUDED(mu_);

  // Pins the job's status from now on (`failed` to make it fail). INVALID_ARGUMENT for a status
  // Userpilot does not document, NOT_FOUND for an unknown id. Thread-safe.
  absl::Status ForceStatus(absl::string_view job_id, absl::string_view status)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The pace of jobs created from now on. Thread-safe.
  void SetStep(absl::Duration step) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Duration step() const ABSL_LOCKS_EXCLUDED(mu_);

  // Forgets every job. Thread-safe.
  void Clear() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Job {
    std::string id;
    JobKind kind;
    std::string filename;
    int64_t file_size;
    int64_t total_rows;
    absl::Time created;
    absl::Duration step;        // Fixed at creation, so a later pace change rewrites no history.
    std::string forced_status;  // "" unless pinned.
    absl::Time forced_at;
    int64_t rows_at_force = 0;
  };

  // At most this many jobs are retained; the oldest are forgotten first.
  static constexpr size_t kMaxJobs = 10000;

  JobSnapshot SnapshotLocked(const Job& job, absl::Time now) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  bool UnfinishedLocked(const std::string& job_id, absl::Time now) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  std::string NewIdLocked(JobKind kind) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock clock_;
  const std::string account_tag_;

  mutable absl::Mutex mu_;
  absl::Duration step_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<Job>> jobs_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> order_ ABSL_GUARDED_BY(mu_);  // Oldest first.
  std::string last_bulk_ ABSL_GUARDED_BY(mu_);          // Id of the newest bulk job.
  std::string last_import_ ABSL_GUARDED_BY(mu_);        // Id of the newest import job.
  absl::BitGen bitgen_ ABSL_GUARDED_BY(mu_);
};

}  // namespace userpilot::gateway::testing

#endif  // USERPILOT_GATEWAY_TESTS_EMULATOR_JOB_STORE_H_
