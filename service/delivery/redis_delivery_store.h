// RedisDeliveryStore: the DeliveryStore for several gateway replicas (--queue_redis=redis://...),
// on one Redis with append-only persistence. Any replica can append, and any replica delivers.
//
// Data (all keys share the hash tag "{<prefix>}", so a Redis Cluster keeps them in one slot):
//   {p}:stream        Stream; one entry per record to deliver: d=<delivery id>, p=<payload>.
//                     Consumer group <group>; each replica is a consumer. Lease() reads new
//                     entries into the group (XREADGROUP) and takes the leased ones into its own
//                     pending list (XCLAIM); XAUTOCLAIM moves entries of a consumer idle past
//                     lease_timeout (a dead replica) to a live one; XACK + XDEL on delivered or
//                     dead, so the stream holds only the backlog.
//   {p}:d:<id>        Hash: state, kind, ordering keys, idempotency key, enqueue/finish times,
//                     attempts, last error, current stream entry, lease owner; the payload too
//                     once dead. Expires `retention` after delivery.
//   {p}:idem:<key>    The first delivery id of an idempotency key; expires with its record.
//   {p}:order:<key>   List of the pending ids with that ordering key, in order.
//   {p}:ready:<kind>  Sorted sets (one per kind; {p}:kinds lists the kinds) of the pending ids
//                     at the head of all their keys, not leased and not in a retry wait, by
//                     order: what Lease() takes from, oldest first, merging the kinds asked for.
//   {p}:waiting       Sorted set of such ids in a retry wait, by the time they may go.
//   {p}:leased        Sorted set of leased ids by lease expiry. A lease not completed by then
//                     (its replica died or stalled) goes back to ready, in doubt. Renew()
//                     pushes the expiry on (and XCLAIMs the entry again, resetting its idle
//                     time) for a lease held longer, a coalesced bulk job's rows.
//   {p}:pending, {p}:dead   Sorted sets for the backlog (by enqueue time) and the dead letters.
//   {p}:bytes, {p}:seq, {p}:deadseq   Counters: payload bytes held, ids, dead-letter order.
// Every call is one Lua script (EVALSHA), so each is atomic on Redis and a crash of either side
// leaves no half-done call. Per-key order holds across replicas because readiness is decided in
// Redis: a record is leased only while it heads every one of its keys' lists.
//
// Durability: an append is acknowledged when Redis answered the script. With
// `appendonly yes` and `appendfsync always`, Redis has fsynced its AOF by then (the same
// guarantee as the embedded log); with `everysec` up to a second of acknowledged appends can
// be lost in a Redis crash. Open() refuses a Redis without AOF unless told otherwise.
//
// Redis down or slow: calls fail with UNAVAILABLE naming the Redis URL; an acknowledged record
// is never lost by this, and a call that timed out may or may not have been stored (a retry
// with the same idempotency key stores it at most once).
//
// Stats() is a snapshot taken after each Lease() (one extra script): backlog numbers may be a
// lease cycle old. `delivered_retained` is not counted (those hashes just expire).
// `pending_by_kind` counts, per kind, the records ready to lease now (at the head of all their
// keys, not leased, not in a retry wait: the sizes of the ready sets), not every pending one:
// what a coalescing Lease() of that kind could take.
//
// Thread-safety: as DeliveryStore. Callbacks run on the Redis client's event thread.
#ifndef USERPILOT_GATEWAY_SERVICE_DELIVERY_REDIS_DELIVERY_STORE_H_
#define USERPILOT_GATEWAY_SERVICE_DELIVERY_REDIS_DELIVERY_STORE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/delivery/delivery_store.h"
#include "service/delivery/redis.h"

namespace userpilot::gateway {

struct RedisDeliveryStoreOptions {
  std::string url;                         // redis://host:port[/db]. Required.
  std::string prefix = "upgw-delivery";    // Keys are "{<prefix>}:...".
  std::string group = "dispatchers";       // The stream's consumer group.
  std::string consumer;                    // This replica's name, unique. Required.
  uint64_t max_bytes = uint64_t{1} << 30;  // Payload bytes held (pending and dead), at most.
  absl::Duration retention = absl::Hours(24);
  // A lease not completed within this is given to another replica (in doubt). It must exceed
  // the dispatcher's longest delivery attempt, or a slow delivery may be sent twice.
  absl::Duration lease_timeout = absl::Seconds(60);
  absl::Duration command_timeout = absl::Seconds(2);
  absl::Duration connect_timeout = absl::Seconds(2);  // Open() waits this long for Redis.
  bool require_append_only = true;                    // Refuse a Redis whose AOF is off.
  std::function<absl::Time()> clock = [] { return absl::Now(); };
};

class RedisDeliveryStore final : public DeliveryStore {
 public:
  // Validates `options` (INVALID_ARGUMENT naming the field), connects (UNAVAILABLE if Redis
  // does not answer within connect_timeout), checks persistence (FAILED_PRECONDITION when AOF
  // is off and required). Blocks: start-up only.
  static absl::StatusOr<std::unique_ptr<RedisDeliveryStore>> Open(
      RedisDeliveryStoreOptions options);
  ~RedisDeliveryStore() override;

  void Append(NewDelivery delivery, AppendCallback done) override;
  void Lease(LeaseOptions options, LeaseCallback done) override;
  void Complete(absl::string_view delivery_id, DeliveryOutcome outcome,
                StatusCallback done) override;
  void Get(absl::string_view delivery_id, InfoCallback done) override;
  void ListDeadLetters(size_t max, absl::string_view page_token, DeadLetterCallback done) override;
  void Redrive(std::vector<std::string> delivery_ids, RedriveCallback done) override;
  // Pushes each lease's expiry to lease_timeout from now and resets its stream entry's idle
  // time; one script for the batch.
  void Renew(std::vector<std::string> delivery_ids, RenewCallback done) override;
  absl::Duration LeaseTimeout() const override { return options_.lease_timeout; }
  DeliveryStoreStats Stats() const override;
  void Close() override;

  // Fetches a fresh backlog snapshot into Stats(), then runs `done`. For tests and metrics.
  void RefreshStats(StatusCallback done);

 private:
  explicit RedisDeliveryStore(RedisDeliveryStoreOptions options);
  absl::Status Unavailable(const absl::Status& cause, absl::string_view what) const;
  // The per-id answer of a script that answers one code per id (0 done, 1 unknown id, 2 refused:
  // FAILED_PRECONDITION "delivery_id <id>: <refused>"), or the script's failure for every id.
  std::vector<absl::Status> PerIdStatuses(const absl::StatusOr<RedisReply>& r,
                                          const std::vector<std::string>& ids,
                                          absl::string_view what, absl::string_view refused) const;
  void Eval(RedisClient::ScriptId script, std::vector<std::string> args,
            RedisClient::ReplyCallback done);

  const RedisDeliveryStoreOptions options_;
  std::string url_;     // For messages; holds no secret.
  std::string prefix_;  // "{<prefix>}"
  std::unique_ptr<RedisClient> client_;
  RedisClient::ScriptId append_ = 0, lease_ = 0, complete_ = 0, get_ = 0, list_dead_ = 0,
                        redrive_ = 0, stats_ = 0, renew_ = 0;
  std::atomic<bool> closed_{false};
  mutable std::mutex mu_;
  DeliveryStoreStats stats_snapshot_;  // Guarded by mu_.
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_DELIVERY_REDIS_DELIVERY_STORE_H_
