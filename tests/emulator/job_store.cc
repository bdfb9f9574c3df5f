#include "tests/emulator/job_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace userpilot::gateway::testing {
namespace {

absl::string_view TypeName(JobKind kind) {
  switch (kind) {
    case JobKind::kBulkUsers:
      return "users_bulk_identify";
    case JobKind::kBulkCompanies:
      return "companies_bulk_identify";
    case JobKind::kImport:
    default:
      return "import";
  }
}

// Rows processed `elapsed` after the start of a job that spends `step` in each phase.
int64_t RowsAt(int64_t total_rows, absl::Duration step, absl::Duration elapsed) {
  if (step <= absl::ZeroDuration()) return total_rows;
  const absl::Duration in_processing = elapsed - 2 * step;
  if (in_processing <= absl::ZeroDuration()) return 0;
  if (in_processing >= step) return total_rows;
  return static_cast<int64_t>(static_cast<double>(total_rows) *
                              absl::FDivDuration(in_processing, step));
}

}  // namespace

bool IsKnownJobStatus(absl::string_view status) {
  return status == "queued" || status == "validating" || status == "processing" ||
         status == "pending_refresh" || status == "completed" || status == "failed";
}

JobStore::JobStore(Clock clock, absl::Duration step, std::string account_tag)
    : clock_(std::move(clock)), account_tag_(std::move(account_tag)), step_(step) {}

std::string JobStore::NewIdLocked(JobKind kind) {
  const auto hex = [&](int digits) {
    std::string out;
    for (int i = 0; i < digits; ++i) {
      out.push_back("0123456789abcdef"[absl::Uniform(bitgen_, 0, 16)]);
    }
    return out;
  };
  // A version-4-looking UUID: 8-4-4-4-12 hex digits.
  const std::string uuid =
      absl::StrCat(hex(8), "-", hex(4), "-4", hex(3), "-",
                   std::string(1, "89ab"[absl::Uniform(bitgen_, 0, 4)]), hex(3), "-", hex(12));
  return absl::StrCat(kind == JobKind::kImport ? "import" : "bulk", ":jobs:NX-", account_tag_, ":",
                      uuid);
}

bool JobStore::UnfinishedLocked(const std::string& job_id, absl::Time now) const {
  if (job_id.empty()) return false;
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return false;
  return !SnapshotLocked(*it->second, now).terminal();
}

absl::StatusOr<JobSnapshot> JobStore::Create(JobKind kind, std::string filename, int64_t file_size,
                                             int64_t total_rows) {
  const absl::Time now = clock_();
  absl::MutexLock lock(&mu_);
  std::string& last = kind == JobKind::kImport ? last_import_ : last_bulk_;
  if (UnfinishedLocked(last, now)) {
    return absl::FailedPreconditionError(
        absl::StrCat(kind == JobKind::kImport ? "an import job" : "a bulk identify job",
                     " is already in progress: ", last));
  }
  auto job = std::make_unique<Job>();
  job->id = NewIdLocked(kind);
  job->kind = kind;
  job->filename = std::move(filename);
  job->file_size = file_size;
  job->total_rows = total_rows;
  job->created = now;
  job->step = step_;
  last = job->id;
  order_.push_back(job->id);
  const Job& stored = *job;
  jobs_[job->id] = std::move(job);
  while (order_.size() > kMaxJobs) {
    jobs_.erase(order_.front());
    order_.pop_front();
  }
  return SnapshotLocked(stored, now);
}

JobSnapshot JobStore::SnapshotLocked(const Job& job, absl::Time now) const {
  JobSnapshot s;
  s.job_id = job.id;
  s.kind = job.kind;
  s.type = std::string(TypeName(job.kind));
  s.filename = job.filename;
  s.file_size = job.file_size;
  s.total_rows = job.total_rows;
  s.start_time = job.created;
  const absl::Duration elapsed = std::max(absl::ZeroDuration(), now - job.created);
  if (!job.forced_status.empty()) {
    s.forced = true;
    s.status = job.forced_status;
    s.completed_rows = s.status == "completed" ? job.total_rows : job.rows_at_force;
    if (s.terminal()) s.end_time = job.forced_at;
  } else if (job.step <= absl::ZeroDuration() || elapsed >= 3 * job.step) {
    s.status = "completed";
    s.completed_rows = job.total_rows;
    s.end_time = job.created + 3 * std::max(job.step, absl::ZeroDuration());
  } else {
    static constexpr const char* kPhases[] = {"queued", "validating", "processing"};
    absl::Duration unused_remainder;
    s.status =
        kPhases[std::min<int64_t>(2, absl::IDivDuration(elapsed, job.step, &unused_remainder))];
    s.completed_rows = RowsAt(job.total_rows, job.step, elapsed);
  }
  s.elapsed = (s.end_time ? *s.end_time : std::max(now, job.created)) - job.created;
  return s;
}

absl::StatusOr<JobSnapshot> JobStore::Get(absl::string_view job_id) const {
  const absl::Time now = clock_();
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job with id ", job_id));
  return SnapshotLocked(*it->second, now);
}

std::vector<JobSnapshot> JobStore::List() const {
  const absl::Time now = clock_();
  absl::MutexLock lock(&mu_);
  std::vector<JobSnapshot> out;
  out.reserve(order_.size());
  for (auto it = order_.rbegin(); it != order_.rend(); ++it) {
    out.push_back(SnapshotLocked(*jobs_.at(*it), now));
  }
  return out;
}

absl::Status JobStore::ForceStatus(absl::string_view job_id, absl::string_view status) {
  if (!IsKnownJobStatus(status)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown job status '", status,
        "'; use queued, validating, processing, pending_refresh, completed or failed"));
  }
  const absl::Time now = clock_();
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return absl::NotFoundError(absl::StrCat("no job with id ", job_id));
  Job& job = *it->second;
  const JobSnapshot before = SnapshotLocked(job, now);
  job.rows_at_force = before.completed_rows;
  // A job already ended keeps its end time when re-forced to a terminal status.
  const bool to_terminal = status == "completed" || status == "failed";
  job.forced_at = before.end_time && to_terminal ? *before.end_time : now;
  job.forced_status = std::string(status);
  return absl::OkStatus();
}

void JobStore::SetStep(absl::Duration step) {
  absl::MutexLock lock(&mu_);
  step_ = step;
}

absl::Duration JobStore::step() const {
  absl::MutexLock lock(&mu_);
  return step_;
}

void JobStore::Clear() {
  absl::MutexLock lock(&mu_);
  jobs_.clear();
  order_.clear();
  last_bulk_.clear();
  last_import_.clear();
}

}  // namespace userpilot::gateway::testing
