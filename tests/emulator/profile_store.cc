#include "tests/emulator/profile_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace userpilot::gateway::testing {
namespace {

std::string Key(EntityKind kind, absl::string_view id) {
  return absl::StrCat(kind == EntityKind::kUser ? "u:" : "c:", id);
}

google::protobuf::Struct StructOf(const google::protobuf::Value* metadata) {
  if (metadata == nullptr || metadata->kind_case() != google::protobuf::Value::kStructValue) {
    return google::protobuf::Struct();
  }
  return metadata->struct_value();
}

}  // namespace

ProfileStore::ProfileStore(JobStore* jobs, JobStore::Clock clock)
    : jobs_(jobs), clock_(std::move(clock)) {}

void ProfileStore::Identify(EntityKind kind, const std::string& id,
                            const google::protobuf::Value* metadata) {
  const absl::Time now = clock_();
  absl::MutexLock lock(&mu_);
  SettleLocked();
  ApplyLocked(kind, id, now, "identify", StructOf(metadata));
}

void ProfileStore::AddJob(
    EntityKind kind, std::string job_id,
    std::vector<std::pair<std::string, const google::protobuf::Value*>> rows) {
  PendingJob job{kind, std::move(job_id), {}};
  job.rows.reserve(rows.size());
  for (auto& [id, metadata] : rows) job.rows.emplace_back(std::move(id), StructOf(metadata));
  absl::MutexLock lock(&mu_);
  pending_.push_back(std::move(job));
}

std::optional<Profile> ProfileStore::Get(EntityKind kind, absl::string_view id) {
  absl::MutexLock lock(&mu_);
  SettleLocked();
  auto it = entities_.find(Key(kind, id));
  if (it == entities_.end()) return std::nullopt;
  return it->second;
}

void ProfileStore::Clear() {
  absl::MutexLock lock(&mu_);
  pending_.clear();
  entities_.clear();
  order_.clear();
}

void ProfileStore::SettleLocked() {
  std::vector<std::pair<absl::Time, size_t>> ended;  // (end time, index in pending_)
  std::vector<bool> gone(pending_.size(), false);
  for (size_t i = 0; i < pending_.size(); ++i) {
    absl::StatusOr<JobSnapshot> job = jobs_->Get(pending_[i].job_id);
    if (!job.ok() || job->status == "failed") {
      gone[i] = true;  // Forgotten, or failed: its rows are never applied.
    } else if (job->status == "completed" && job->end_time.has_value()) {
      ended.emplace_back(*job->end_time, i);
      gone[i] = true;
    }
  }
  std::sort(ended.begin(), ended.end());
  for (const auto& [at, i] : ended) {
    for (const auto& [id, metadata] : pending_[i].rows) {
      ApplyLocked(pending_[i].kind, id, at, pending_[i].job_id, metadata);
    }
  }
  size_t kept = 0;
  for (size_t i = 0; i < pending_.size(); ++i) {
    if (gone[i]) continue;
    if (i != kept) pending_[kept] = std::move(pending_[i]);  // Never onto itself.
    ++kept;
  }
  pending_.resize(kept);
}

void ProfileStore::ApplyLocked(EntityKind kind, const std::string& id, absl::Time at,
                               const std::string& source,
                               const google::protobuf::Struct& metadata) {
  const std::string key = Key(kind, id);
  if (!entities_.contains(key) && entities_.size() >= kMaxEntities) {
    entities_.erase(order_.front());  // The oldest goes first.
    order_.pop_front();
  }
  auto [it, inserted] = entities_.try_emplace(key);
  Profile& profile = it->second;
  if (inserted) {
    profile.id = id;
    order_.push_back(key);
  }
  for (const auto& [name, value] : metadata.fields()) {
    (*profile.metadata.mutable_fields())[name] = value;
  }
  profile.history.push_back({at, source, metadata});
  if (profile.history.size() > kMaxHistory) profile.history.erase(profile.history.begin());
}

}  // namespace userpilot::gateway::testing
