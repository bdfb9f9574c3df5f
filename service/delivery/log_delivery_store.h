// LogDeliveryStore: the embedded DeliveryStore, an append-only log in a local folder
// (--queue_dir), for one gateway process (a second process on the same folder is refused: the
// folder is locked with flock).
//
// Writing (group commit). Every change is a record (log_format.h): an append, a lease (an
// attempt started), an outcome (delivered, retry, dead), a redrive, a carry. Callers frame
// their record under the store's mutex, where it gets the next sequence number, and queue it;
// one writer thread takes everything queued, writes it with one write() and makes it durable
// with one fdatasync(), then runs the callbacks of everything in that batch. So N concurrent
// appenders share one fsync, and nobody but the writer thread ever waits for the disk.
// Acknowledgement (Append's callback) comes only after the fdatasync that covers the record.
//
// Segments and deletion. The writer appends to the newest segment and starts a new one past
// `segment_bytes`. Acknowledgements of delivery are records in the same log; there is no
// separate checkpoint file. Segments are deleted oldest first only: a segment may hold the
// outcome of a record appended in an older one, so deleting it before the older one would
// bring that record back. What is still live in the oldest segment (never the newest) -
// pending and dead records with their payloads, delivered records within the retention period
// as metadata only (about 80 bytes plus keys) - is first rewritten at the head as kCarry
// records (full state, original id and place in the order), made durable, and only then is
// the old file unlinked and the folder fsynced. A crash in between leaves both copies; replay
// lets the later carry win. This is done when the live part is at most half the file, or
// when the log holds more garbage than live bytes (and over two segments' worth) so that a
// mostly-live oldest segment cannot keep the garbage behind it, or when the log is past half
// its size bound. So the folder stays within about twice the live bytes plus two segments; a
// record stuck in retries or a dead letter never pins the log; and the idempotency index (the
// keys of every record still remembered) survives restarts and segment deletion. Delivered
// records' metadata counts toward the size bound for the retention period.
//
// Size bound. Appends are refused with RESOURCE_EXHAUSTED when the segment files plus what is
// queued would exceed `max_bytes` (never a silent drop). Bookkeeping records (leases, outcomes,
// carries) are not refused, so the files can exceed the bound by those (small) records.
//
// Replay (Open). Segments are scanned oldest first; damage is counted, never fatal: a torn tail
// of the newest segment (an unfinished, hence unacknowledged, write) is cut off; a corrupt
// region elsewhere is skipped up to the next valid record (that record's loss is counted in
// corrupt_regions; it is the one failure an fsync cannot prevent). Then a new head segment is
// started. Every not-yet-delivered record is back, in its place in the order; records whose
// last attempt never got an outcome come back in doubt (DeliveryStore: at-least-once).
//
// I/O failures. A failed write or fdatasync cannot be retried safely (the kernel may have
// dropped the dirty pages), so the store stops: that batch and every later call answer
// UNAVAILABLE naming the file and errno. Nothing acknowledged is lost; restart to replay.
//
// The in-memory state is a LogIndex (log_index.h); payloads are read back from disk, on the
// writer thread, when a record is leased.
//
// Thread-safety: as DeliveryStore. Append refusals, Get and ListDeadLetters answer on the
// calling thread; everything that writes answers on the writer thread.
#ifndef USERPILOT_GATEWAY_SERVICE_DELIVERY_LOG_DELIVERY_STORE_H_
#define USERPILOT_GATEWAY_SERVICE_DELIVERY_LOG_DELIVERY_STORE_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/delivery/delivery_store.h"
#include "service/delivery/log_format.h"
#include "service/delivery/log_index.h"

namespace userpilot::gateway {

struct LogDeliveryStoreOptions {
  std::string dir;                         // Created if missing. Required.
  uint64_t max_bytes = uint64_t{1} << 30;  // >= 2 * segment_bytes.
  uint64_t segment_bytes = 64 << 20;       // >= 64 KiB.
  // Delivered records are answered by Get() and keep their idempotency key this long after
  // delivery. Positive.
  absl::Duration retention = absl::Hours(24);
  // The clock for enqueue/delivery times, retries and retention (tests inject a fake one).
  std::function<absl::Time()> clock = [] { return absl::Now(); };
};

class LogDeliveryStore final : public DeliveryStore {
 public:
  // Validates `options` (INVALID_ARGUMENT naming the field), locks the folder
  // (FAILED_PRECONDITION if another process holds it), replays it (Stats() says what damage was
  // found) and starts the writer thread. Blocks on disk I/O: start-up only.
  static absl::StatusOr<std::unique_ptr<LogDeliveryStore>> Open(LogDeliveryStoreOptions options);

  ~LogDeliveryStore() override;  // Close().

  void Append(NewDelivery delivery, AppendCallback done) override;
  void Lease(LeaseOptions options, LeaseCallback done) override;
  void Complete(absl::string_view delivery_id, DeliveryOutcome outcome,
                StatusCallback done) override;
  void Get(absl::string_view delivery_id, InfoCallback done) override;
  void ListDeadLetters(size_t max, absl::string_view page_token, DeadLetterCallback done) override;
  void Redrive(std::vector<std::string> delivery_ids, RedriveCallback done) override;
  // Nothing to extend: a lease of the embedded log lasts while the process lives (only one
  // process opens a folder, and a restart leases again what was left in doubt). Answers at once:
  // OK for a record leased here, FAILED_PRECONDITION / NOT_FOUND as the interface says.
  void Renew(std::vector<std::string> delivery_ids, RenewCallback done) override;
  absl::Duration LeaseTimeout() const override { return absl::InfiniteDuration(); }
  DeliveryStoreStats Stats() const override;
  void Close() override;

  // Delivery ids look like "<incarnation: 16 hex digits>-<sequence number>"; the incarnation
  // is random per folder, so an id from a wiped or different folder is NOT_FOUND, never another
  // record.
  std::string FormatId(uint64_t seq) const;

 private:
  // One queued unit of work for the writer: zero or more framed records, and what to do once
  // they are durable (or failed). `locations` has one entry per record, in order.
  struct Op {
    std::string bytes;
    std::vector<std::pair<uint64_t, uint32_t>> frames;  // (sequence number, frame size).
    uint64_t append_bytes = 0;                          // Reserved against max_bytes until written.
    absl::AnyInvocable<void(absl::Status, const std::vector<delivery_log::Location>&) &&> done;
  };
  struct Segment {
    uint64_t first_seq = 0;
    std::string path;
    int fd = -1;
    uint64_t size = 0;
  };

  explicit LogDeliveryStore(LogDeliveryStoreOptions options);
  absl::Status Replay();
  // Creates and syncs a new segment file (its header only). No lock needed: only Open() and the
  // writer thread create segments; they insert it into segments_ under mu_.
  absl::StatusOr<Segment> CreateSegment(uint64_t first_seq);
  void WriterLoop();
  // Writes and syncs `batch`; fills each op's locations. Writer thread.
  absl::Status WriteBatch(std::vector<Op>& batch,
                          std::vector<std::vector<delivery_log::Location>>& locations);
  void MaybeRetireOldest();                                                      // Writer thread.
  absl::StatusOr<std::string> ReadPayload(const delivery_log::Location& where);  // Writer thread.
  absl::Status FailStop(absl::Status cause);  // Writer thread; returns the status callers see.
  std::optional<uint64_t> ParseId(absl::string_view id) const;
  // The record `delivery_id` names, or NOT_FOUND "delivery_id <id>: no such delivery in this log".
  absl::StatusOr<delivery_log::LogIndex::Found> FindLocked(absl::string_view delivery_id) const;
  uint64_t NextSeqLocked() { return next_seq_++; }
  void EnqueueLocked(Op op);
  absl::Status RefusalLocked() const;  // Closed or failed: what callers get; OK otherwise.

  const LogDeliveryStoreOptions options_;
  uint64_t incarnation_ = 0;
  int lock_fd_ = -1;
  int dir_fd_ = -1;

  // std::mutex, not absl::Mutex: Debian's Abseil is built without ThreadSanitizer annotations.
  mutable std::mutex mu_;
  std::condition_variable wake_;
  delivery_log::LogIndex index_;                              // Guarded by mu_.
  std::deque<Op> queue_;                                      // Guarded by mu_.
  absl::flat_hash_map<std::string, uint64_t> reserved_keys_;  // Queued, not durable. mu_.
  std::map<uint64_t, Segment> segments_;  // By first seq. mu_ (fds used by the writer).
  uint64_t next_seq_ = 1;                 // mu_.
  uint64_t disk_bytes_ = 0;               // mu_.
  uint64_t queued_append_bytes_ = 0;      // mu_.
  bool closed_ = false;                   // mu_.
  absl::Status failed_;                   // mu_.
  DeliveryStoreStats counters_;           // mu_ (the counter fields only).
  bool retiring_ = false;                 // Writer thread only.
  std::thread writer_;
  std::mutex close_mu_;  // Serializes Close().
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_DELIVERY_LOG_DELIVERY_STORE_H_
