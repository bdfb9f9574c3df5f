// Durable storage for fire-and-forget calls (Enqueue): what a caller handed over is kept until it
// reached Userpilot (delivered) or Userpilot refused it for good (dead), across crashes and
// restarts. Two implementations behind this one interface:
//   LogDeliveryStore   (log_delivery_store.h)    an append-only log on local disk, --queue_dir
//   RedisDeliveryStore (redis_delivery_store.h)  a Redis Stream with a consumer group, for several
//                                                 replicas, --queue_redis=redis://...
//
// The store knows nothing about Userpilot or gRPC: a record's payload is opaque bytes (the
// dispatcher stores a serialized EnqueueRequest), its `kind` an opaque number (the dispatcher's
// call type, used to lease only identifies for a bulk job), its ordering keys opaque strings.
//
// How the gateway uses it:
//   Enqueue        -> Append(); the caller is answered from `done`, which runs only once the
//                     record is durable (fsynced / written by Redis), or refused at once with
//                     RESOURCE_EXHAUSTED (full) or UNAVAILABLE (storage down). Never dropped.
//   dispatch loop  -> Lease(max, kinds): the oldest pending records that are each at the head of
//                     every one of their ordering keys ("user:<id>", "company:<id>"), so two calls
//                     for one user are never in flight together and per-user order holds by
//                     construction (also across replicas for Redis). The dispatcher spends the
//                     budget for each leased record, sends it, then Complete()s it:
//                       delivered -> gone from the backlog (kept as metadata for `retention`);
//                       retry     -> stays at the head of its keys, leasable after not_before;
//                       dead      -> a dead letter (a 400), its keys move on to the next record.
//                     Coalescing leases up to 10,000 records of the identify kinds at once (all
//                     heads, so distinct users), sends them as one bulk job, and Complete()s each
//                     row: delivered, or retry to fall back to single calls. While the job
//                     runs it Renew()s the rows' leases every third of LeaseTimeout(), so no
//                     other replica takes them over; a row Renew() reports lost is no longer
//                     the dispatcher's (another replica sends it singly).
//   GetDelivery    -> Get(); ListDeadLetters / RedriveDeadLetters -> ListDeadLetters / Redrive.
//   metrics        -> Stats() (backlog depth and age, bytes, fsyncs, replay damage).
// A record leased and never Complete()d because the process died is leased again after a
// restart (embedded) or after `lease_timeout` by another replica (Redis) with in_doubt set: it
// may have reached Userpilot already, so its delivery may be a duplicate (at-least-once); the
// dispatcher counts those, and holds those a bulk job may still apply until no bulk job runs
// (dispatcher.h, "The bulk check"). The dispatcher leaves records leased without an outcome at a
// stop when their outcome is unknown (a running bulk job's rows), so they come back in doubt.
//
// Thread-safety: every method may be called from any thread, concurrently. No method blocks on
// I/O: each answers through its callback. A callback runs either before the call returns (on the
// calling thread, when the answer is known at once: a refusal, a lookup in memory) or later on
// the store's own thread; it must be short, must not block, and must not destroy the store.
// Callers must not hold a lock inside the call that their callback also takes.
#ifndef USERPILOT_GATEWAY_SERVICE_DELIVERY_DELIVERY_STORE_H_
#define USERPILOT_GATEWAY_SERVICE_DELIVERY_DELIVERY_STORE_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace userpilot::gateway {

enum class DeliveryState { kPending, kDelivered, kDead };
absl::string_view DeliveryStateName(DeliveryState state);  // "pending", "delivered", "dead"

// Limits every store enforces on what it is handed (INVALID_ARGUMENT naming the field).
inline constexpr size_t kMaxDeliveryPayloadBytes = 4 << 20;
inline constexpr size_t kMaxOrderingKeys = 4;
inline constexpr size_t kMaxOrderingKeyBytes = 512;
inline constexpr size_t kMaxIdempotencyKeyBytes = 256;
inline constexpr size_t kMaxLeaseRecords = 10000;

// One call handed over for delivery.
struct NewDelivery {
  std::string payload;  // Opaque, 1 .. kMaxDeliveryPayloadBytes bytes.
  uint32_t kind = 0;    // Opaque to the store; Lease() can select by it.
  // Records sharing a key are leased one at a time in the order they were acknowledged.
  std::vector<std::string> ordering_keys;
  // Empty: none. Otherwise a repeat within the retention period answers the first record's id
  // (duplicate = true) and stores nothing.
  std::string idempotency_key;
};

struct AppendResult {
  std::string delivery_id;
  bool duplicate = false;
};

// What GetDelivery answers about one record.
struct DeliveryInfo {
  std::string delivery_id;
  DeliveryState state = DeliveryState::kPending;
  uint32_t kind = 0;
  uint32_t attempts = 0;   // Leases so far (the one in flight included).
  std::string last_error;  // From the latest retry or dead outcome; empty if none.
  absl::Time enqueue_time = absl::InfinitePast();
  absl::Time finish_time = absl::InfinitePast();  // Delivered or dead; InfinitePast if pending.
  std::string idempotency_key;
  std::vector<std::string> ordering_keys;
};

// A record handed to the dispatcher to send.
struct LeasedDelivery {
  DeliveryInfo info;
  std::string payload;
  // An earlier attempt started and its outcome was never recorded (the process or replica died
  // meanwhile): it may have reached Userpilot, so sending it again may duplicate it.
  bool in_doubt = false;
};

struct LeaseOptions {
  size_t max_records = 100;  // 1 .. kMaxLeaseRecords.
  // Only records of these kinds; empty: any kind.
  std::vector<uint32_t> kinds;
};

struct DeliveryOutcome {
  enum class Kind { kDelivered, kRetry, kDead };
  Kind kind = Kind::kDelivered;
  std::string error;  // kRetry, kDead: why (shown by GetDelivery and the dead letters).
  // kRetry: not leased again before this time.
  absl::Time not_before = absl::InfinitePast();

  static DeliveryOutcome Delivered() { return {}; }
  static DeliveryOutcome Retry(std::string error, absl::Time not_before) {
    return {Kind::kRetry, std::move(error), not_before};
  }
  static DeliveryOutcome Dead(std::string reason) {
    return {Kind::kDead, std::move(reason), absl::InfinitePast()};
  }
};

struct DeadLetterPage {
  std::vector<DeliveryInfo> dead;  // Oldest first.
  std::string next_page_token;     // Empty: no more.
};

// A snapshot for metrics and tests. Counters count since the store was opened.
struct DeliveryStoreStats {
  uint64_t pending = 0;  // Not yet delivered nor dead (leased ones included).
  uint64_t leased = 0;
  uint64_t dead = 0;
  uint64_t delivered_retained = 0;  // Delivered, still answered by Get() (retention).
  std::map<uint32_t, uint64_t> pending_by_kind;
  absl::Time oldest_pending_enqueue_time = absl::InfiniteFuture();  // Backlog age.
  uint64_t bytes = 0;       // Storage used (log: segment files; Redis: payload bytes counted).
  uint64_t max_bytes = 0;   // The bound appends are refused at.
  uint64_t appends = 0;     // Acknowledged new records.
  uint64_t duplicates = 0;  // Appends answered with an earlier record's id.
  uint64_t refused_full = 0;
  // Embedded log only.
  uint64_t fsyncs = 0;
  // The fdatasync() calls that made appends and outcomes durable (group commits; fsyncs also
  // counts segment creation and deletion), and the time they took (wall clock).
  uint64_t group_commit_fsyncs = 0;
  absl::Duration group_commit_fsync_time;
  uint64_t segments = 0;
  uint64_t segments_deleted = 0;
  uint64_t records_carried = 0;  // Live records rewritten so that an old segment could go.
  // Found when the log was opened (embedded log only).
  uint64_t replayed_records = 0;
  uint64_t torn_tail_bytes = 0;  // An unfinished last write: dropped, never acknowledged.
  uint64_t corrupt_regions = 0;  // Checksum failures elsewhere: skipped up to the next
  uint64_t corrupt_bytes = 0;    //   valid record.
};

class DeliveryStore {
 public:
  using AppendCallback = absl::AnyInvocable<void(absl::StatusOr<AppendResult>) &&>;
  using LeaseCallback = absl::AnyInvocable<void(absl::StatusOr<std::vector<LeasedDelivery>>) &&>;
  using StatusCallback = absl::AnyInvocable<void(absl::Status) &&>;
  using InfoCallback = absl::AnyInvocable<void(absl::StatusOr<DeliveryInfo>) &&>;
  using DeadLetterCallback = absl::AnyInvocable<void(absl::StatusOr<DeadLetterPage>) &&>;
  using RedriveCallback = absl::AnyInvocable<void(std::vector<absl::Status>) &&>;
  using RenewCallback = absl::AnyInvocable<void(std::vector<absl::Status>) &&>;

  virtual ~DeliveryStore() = default;

  // Stores `delivery`; `done` gets its id once it is durable. Errors: INVALID_ARGUMENT (a limit
  // above, naming the field), RESOURCE_EXHAUSTED (the size bound; nothing stored),
  // UNAVAILABLE (storage unreachable or failed; nothing acknowledged is lost), CANCELLED (closed).
  virtual void Append(NewDelivery delivery, AppendCallback done) = 0;

  // Leases up to `options.max_records` pending records, oldest first, each at the head of all of
  // its ordering keys, not leased already and not in a retry wait. Their attempt counts are
  // incremented durably before `done` runs. An empty vector: nothing is ready now.
  virtual void Lease(LeaseOptions options, LeaseCallback done) = 0;

  // Records the outcome of a leased record's attempt. NOT_FOUND: unknown id;
  // FAILED_PRECONDITION: not leased by this store. `done` runs once the outcome is durable.
  virtual void Complete(absl::string_view delivery_id, DeliveryOutcome outcome,
                        StatusCallback done) = 0;

  // Extends the leases of records this store leased and has not completed, so that they last
  // another LeaseTimeout() from now. One status per id, in order: OK (renewed),
  // FAILED_PRECONDITION (not leased by this store any more: its lease expired and another
  // consumer took it over, or it was completed), NOT_FOUND (unknown id); every id UNAVAILABLE
  // when the store cannot be reached (the leases are unchanged: try again before they expire).
  virtual void Renew(std::vector<std::string> delivery_ids, RenewCallback done) = 0;

  // How long a lease lasts unless renewed or completed; InfiniteDuration: while the process
  // lives (nothing to renew).
  virtual absl::Duration LeaseTimeout() const = 0;

  // The record's state. NOT_FOUND: unknown, or delivered longer ago than the retention period.
  virtual void Get(absl::string_view delivery_id, InfoCallback done) = 0;

  // Dead letters, oldest first, `max` (>= 1) per page; `page_token` from the previous page.
  virtual void ListDeadLetters(size_t max, absl::string_view page_token,
                               DeadLetterCallback done) = 0;

  // Makes each dead record pending again, behind everything already queued for its keys; one
  // status per id (NOT_FOUND, FAILED_PRECONDITION when not dead). Attempts and error are kept.
  virtual void Redrive(std::vector<std::string> delivery_ids, RedriveCallback done) = 0;

  virtual DeliveryStoreStats Stats() const = 0;

  // Stops accepting calls (they get CANCELLED), lets what was accepted become durable and its
  // callbacks run, then stops the store's thread. Idempotent; blocks: start-up/shutdown only,
  // never from a callback.
  virtual void Close() = 0;
};

// Checks `delivery` against the limits above. INVALID_ARGUMENT naming the field.
absl::Status ValidateNewDelivery(const NewDelivery& delivery);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_DELIVERY_DELIVERY_STORE_H_
