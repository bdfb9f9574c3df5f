// The embedded delivery log's in-memory state: every record not yet forgotten, found by id, by
// idempotency key, by ordering key and by readiness. It is a state machine over the log's
// records: replay applies them in log order, and LogDeliveryStore applies each new record as it
// writes it, through the same Apply* functions, so the state after a restart is the state
// before it (less the in-memory-only facts: which records are leased right now, and retry
// waits).
//
// Payloads stay on disk: an entry holds the location of the record that carries its payload
// (its kAppend, or the kCarry that moved it), so memory grows with the number of records, not
// their size (about 200 bytes per pending or dead record plus its keys).
//
// Readiness: a pending record is ready when it is not leased and, for each of its ordering
// keys, no pending record with that key comes before it. Ready records in a retry wait sit in
// `waiting_` (by the time they may go); the others in `ready_`, one ordered set per kind. So
// PickReady() promotes what is due, then merges the fronts of the kinds asked for: it never
// walks past records it cannot lease. A record leaving the backlog makes the next record of
// each of its keys ready.
//
// Segments: each entry is "homed" in the segment holding its payload record; the index keeps,
// per segment, the ids homed there and the bytes carrying them forward would write, so the
// store can decide when deleting an old segment is worth rewriting what is still live in it.
//
// Thread-safety: none; LogDeliveryStore guards it with its mutex.
#ifndef USERPILOT_GATEWAY_SERVICE_DELIVERY_LOG_INDEX_H_
#define USERPILOT_GATEWAY_SERVICE_DELIVERY_LOG_INDEX_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "service/delivery/delivery_store.h"
#include "service/delivery/log_record.pb.h"

namespace userpilot::gateway::delivery_log {

// Where a record lives: the segment (named by its first sequence number), and the frame.
struct Location {
  uint64_t segment = 0;
  uint64_t offset = 0;
  uint32_t size = 0;
};

class LogIndex {
 public:
  // Delivered records are forgotten `retention` after their delivery.
  explicit LogIndex(absl::Duration retention) : retention_(retention) {}

  // ---- Applying records (replay and live). `seq` is the record's own sequence number. ----
  void ApplyAppend(uint64_t seq, const AppendBody& body, Location where);
  // `live`: the lease is held by this process now (false on replay: nothing is in flight).
  void ApplyLease(const LeaseBody& body, bool live);
  void ApplyOutcome(const OutcomeBody& body, absl::Time not_before);
  void ApplyRedrive(uint64_t seq, const RedriveBody& body);
  // Replay: replaces everything known about the record.
  void ApplyCarry(const CarryBody& body, Location where);
  // After replay: every attempt left open (leased, no outcome) is in doubt.
  void FinishReplay();

  // ---- Queries and live bookkeeping. ----
  struct Found {
    uint64_t id;
    DeliveryState state;
    bool leased;
  };
  std::optional<Found> Find(uint64_t id) const;
  std::optional<uint64_t> FindByKey(const std::string& idempotency_key) const;
  // DeliveryInfo without the delivery id (the store formats ids).
  std::optional<DeliveryInfo> Info(uint64_t id) const;
  bool InDoubt(uint64_t id) const;
  std::optional<Location> PayloadLocation(uint64_t id) const;  // Pending or dead records.

  // Ready records in order, up to `max`, of `kinds` (empty: any), not waiting past `now`.
  // Does not lease them (ApplyLease does).
  std::vector<uint64_t> PickReady(size_t max, const std::vector<uint32_t>& kinds, absl::Time now);

  // Dead records with id > `after`, oldest first, up to `max`.
  std::vector<uint64_t> DeadAfter(uint64_t after, size_t max) const;

  // Forgets delivered records whose retention ended by `now`.
  void Expire(absl::Time now);

  // Carrying: the ids homed in `segment`, and the carry body of one (state as of now; the
  // payload is left empty for the store to fill from disk when the record still needs it).
  std::vector<uint64_t> HomedIn(uint64_t segment) const;
  std::optional<CarryBody> CarryOf(uint64_t id) const;
  bool NeedsPayload(uint64_t id) const;  // Pending or dead.
  // After a carry of `id` written at `where` is durable: its home moves (state untouched).
  // `with_payload`: the carry holds the payload (false: delivered, or the payload was lost).
  void Rehome(uint64_t id, Location where, bool with_payload);
  uint64_t LiveBytes(uint64_t segment) const;
  uint64_t TotalLiveBytes() const { return total_live_bytes_; }

  struct Counts {
    uint64_t pending = 0, leased = 0, dead = 0, delivered = 0;
    std::map<uint32_t, uint64_t> pending_by_kind;
    absl::Time oldest_pending = absl::InfiniteFuture();
  };
  Counts GetCounts() const;

 private:
  struct Entry {
    uint64_t id = 0;
    uint64_t order_seq = 0;
    DeliveryState state = DeliveryState::kPending;
    uint32_t kind = 0;
    uint32_t attempts = 0;
    bool leased = false;
    bool open_attempt = false;
    bool in_doubt = false;
    bool has_payload = true;
    std::string last_error;
    absl::Time enqueue_time = absl::InfinitePast();
    absl::Time finish_time = absl::InfinitePast();
    absl::Time not_before = absl::InfinitePast();
    std::string idempotency_key;
    std::vector<std::string> ordering_keys;
    Location home;
    uint64_t live_bytes = 0;
  };
  using OrderKey = std::pair<uint64_t, uint64_t>;  // (order_seq, id)

  void Insert(Entry entry);  // Places a new entry by its state.
  void Remove(uint64_t id);  // Forgets it entirely.
  void EnterPending(Entry& e);
  void LeavePending(Entry& e);
  bool HeadOfAll(const Entry& e) const;
  void MaybeReady(const Entry& e);
  void Unready(const Entry& e);
  void SetHome(Entry& e, Location where);
  void UpdateLiveBytes(Entry& e);
  static uint64_t EstimateLiveBytes(const Entry& e);

  absl::Duration retention_;
  absl::flat_hash_map<uint64_t, Entry> entries_;
  absl::flat_hash_map<std::string, uint64_t> by_idempotency_key_;
  absl::flat_hash_map<std::string, std::set<OrderKey>> by_ordering_key_;  // Pending only.
  absl::flat_hash_map<uint32_t, std::set<OrderKey>> ready_;               // By kind.
  std::set<std::pair<absl::Time, uint64_t>> waiting_;                     // (not before, id)
  std::set<std::pair<absl::Time, uint64_t>> pending_by_enqueue_;
  std::set<uint64_t> dead_;
  std::set<std::pair<absl::Time, uint64_t>> expiry_;  // Delivered: (forget at, id).
  absl::flat_hash_map<uint64_t, std::set<uint64_t>> homed_;
  void AddLive(uint64_t segment, uint64_t bytes);
  void SubLive(uint64_t segment, uint64_t bytes);
  absl::flat_hash_map<uint64_t, uint64_t> live_bytes_;  // Segments with live bytes only.
  uint64_t total_live_bytes_ = 0;
  uint64_t leased_ = 0;
  std::map<uint32_t, uint64_t> pending_by_kind_;
};

}  // namespace userpilot::gateway::delivery_log

#endif  // USERPILOT_GATEWAY_SERVICE_DELIVERY_LOG_INDEX_H_
