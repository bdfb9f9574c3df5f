// What the emulator keeps of users and companies: their properties (`metadata`), applied as
// Userpilot applies them: a single identify when it is accepted, a bulk identify job's rows when
// the job completes (never those of a failed job). Each application is kept in the entity's
// history, so a test can see the order properties were applied in, and the final ones.
//
// Jobs end by the clock (JobStore computes a job's status on each read; no thread runs jobs),
// so a job's rows are applied lazily: before every single identify and every read, each job that
// completed by now is applied, in the order the jobs ended (its end time is the rows' time).
// A single identify accepted at t thus lands after every job that ended by t and before every
// job that ends later, as at Userpilot.
//
// Bounds: the newest kMaxEntities users and companies together are kept (the oldest forgotten
// first), each with its last kMaxHistory applications.
//
// Thread-safety: thread-safe. Borrows the JobStore, which must outlive it.
#ifndef USERPILOT_GATEWAY_TESTS_EMULATOR_PROFILE_STORE_H_
#define USERPILOT_GATEWAY_TESTS_EMULATOR_PROFILE_STORE_H_

#include <google/protobuf/struct.pb.h>

#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tests/emulator/job_store.h"

namespace userpilot::gateway::testing {

enum class EntityKind { kUser, kCompany };

// One user or company as the emulator knows it.
struct Profile {
  struct Application {
    absl::Time at;       // When it was applied: accepted (identify), or the job's end.
    std::string source;  // "identify", or the bulk job's id.
    google::protobuf::Struct metadata;
  };
  std::string id;
  google::protobuf::Struct metadata;  // Every application merged, key by key, in order.
  std::vector<Application> history;   // Oldest first; the last kMaxHistory.
};

class ProfileStore {
 public:
  static constexpr size_t kMaxEntities = 200000;
  static constexpr size_t kMaxHistory = 32;

  ProfileStore(JobStore* jobs, JobStore::Clock clock);

  // An accepted single identify: applies `metadata` (an object, or absent: null) now, after
  // every job completed by now.
  void Identify(EntityKind kind, const std::string& id, const google::protobuf::Value* metadata)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The rows (id, metadata or null) of the accepted bulk job `job_id`, applied once it completes.
  void AddJob(EntityKind kind, std::string job_id,
              std::vector<std::pair<std::string, const google::protobuf::Value*>> rows)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The entity after every job completed by now; nullopt when unknown.
  std::optional<Profile> Get(EntityKind kind, absl::string_view id) ABSL_LOCKS_EXCLUDED(mu_);

  void Clear() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct PendingJob {
    EntityKind kind;
    std::string job_id;
    std::vector<std::pair<std::string, google::protobuf::Struct>> rows;
  };

  // Applies every pending job completed by now, in end order; drops failed or forgotten ones.
  void SettleLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ApplyLocked(EntityKind kind, const std::string& id, absl::Time at, const std::string& source,
                   const google::protobuf::Struct& metadata) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  JobStore* const jobs_;
  const JobStore::Clock clock_;

  absl::Mutex mu_;
  std::vector<PendingJob> pending_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Profile> entities_ ABSL_GUARDED_BY(mu_);  // "u:"/"c:" + id
  std::deque<std::string> order_ ABSL_GUARDED_BY(mu_);  // Keys of entities_, oldest first.
};

}  // namespace userpilot::gateway::testing

#endif  // USERPILOT_GATEWAY_TESTS_EMULATOR_PROFILE_STORE_H_
