#include "service/delivery/log_delivery_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <random>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace userpilot::gateway {

using delivery_log::AppendBody;
using delivery_log::CarryBody;
using delivery_log::LeaseBody;
using delivery_log::Location;
using delivery_log::OutcomeBody;
using delivery_log::RecordType;
using delivery_log::RedriveBody;

namespace {

absl::Status ErrnoError(absl::string_view what, absl::string_view path, int err) {
  return absl::UnavailableError(
      absl::StrCat("delivery log: ", what, " ", path, ": ", std::strerror(err)));
}

absl::Status ValidateOptions(const LogDeliveryStoreOptions& o) {
  auto bad = [](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("LogDeliveryStoreOptions: ", what));
  };
  if (o.dir.empty()) return bad("dir (queue_dir) is empty");
  if (o.segment_bytes < (64 << 10)) return bad("segment_bytes must be at least 64 KiB");
  if (o.max_bytes < 2 * o.segment_bytes) {
    return bad(absl::StrCat("max_bytes (queue_max_bytes) must be at least twice segment_bytes (",
                            2 * o.segment_bytes, ")"));
  }
  if (o.retention <= absl::ZeroDuration() || o.retention == absl::InfiniteDuration()) {
    return bad("retention must be positive and finite");
  }
  if (!o.clock) return bad("clock is empty");
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadWholeFile(int fd, const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoError("fstat", path, errno);
  std::string data(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::pread(fd, data.data() + done, data.size() - done, done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("read", path, errno);
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  data.resize(done);
  return data;
}

bool PwriteAll(int fd, absl::string_view data, uint64_t offset) {
  while (!data.empty()) {
    const ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

int64_t Micros(absl::Time t) { return absl::ToUnixMicros(t); }

}  // namespace

// ---- Opening and replay ----

LogDeliveryStore::LogDeliveryStore(LogDeliveryStoreOptions options)
    : options_(std::move(options)), index_(options_.retention) {
  counters_.max_bytes = options_.max_bytes;
}

absl::StatusOr<std::unique_ptr<LogDeliveryStore>> LogDeliveryStore::Open(
    LogDeliveryStoreOptions options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  std::unique_ptr<LogDeliveryStore> store(new LogDeliveryStore(std::move(options)));
  const std::string& dir = store->options_.dir;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("queue_dir ", dir, " cannot be created: ", ec.message()));
  }
  store->dir_fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (store->dir_fd_ < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("queue_dir ", dir, " cannot be opened: ", std::strerror(errno)));
  }
  const std::string lock_path = dir + "/LOCK";
  store->lock_fd_ = ::open(lock_path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (store->lock_fd_ < 0) return ErrnoError("open", lock_path, errno);
  if (::flock(store->lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "queue_dir ", dir, " is in use by another gateway process (", lock_path, " is locked)"));
  }
  if (absl::Status s = store->Replay(); !s.ok()) return s;
  struct statvfs fs;
  if (::fstatvfs(store->dir_fd_, &fs) == 0) {
    const uint64_t room = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize + store->disk_bytes_;
    if (room < store->options_.max_bytes) {
      return absl::FailedPreconditionError(absl::StrCat(
          "queue_max_bytes (", store->options_.max_bytes, ") exceeds what the file system of ", dir,
          " can hold (", room, " bytes free or already used by the queue)"));
    }
  }
  store->writer_ = std::thread([s = store.get()] { s->WriterLoop(); });
  return store;
}

absl::Status LogDeliveryStore::Replay() {
  std::map<uint64_t, std::string> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(options_.dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (std::optional<uint64_t> first = delivery_log::ParseSegmentFileName(name)) {
      files[*first] = entry.path().string();
    }
  }
  if (ec) return ErrnoError("list", options_.dir, ec.value());

  std::lock_guard<std::mutex> lock(mu_);
  // The folder's incarnation: the one most intact segment headers carry (a stray file copied
  // in from another folder must not make this folder's own segments look foreign).
  std::map<uint64_t, size_t> votes;
  for (const auto& [first_seq, path] : files) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char buf[delivery_log::kSegmentHeaderBytes];
    const ssize_t n = ::pread(fd, buf, sizeof(buf), 0);
    ::close(fd);
    if (n != static_cast<ssize_t>(sizeof(buf))) continue;
    if (auto h = delivery_log::DecodeSegmentHeader(absl::string_view(buf, sizeof(buf)))) {
      ++votes[h->incarnation];
    }
  }
  bool have_incarnation = false;
  size_t best = 0;
  for (const auto& [incarnation, count] : votes) {
    if (count > best) {
      best = count;
      incarnation_ = incarnation;
      have_incarnation = true;
    }
  }
  uint64_t after_seq = 0;
  uint64_t last_first = 0;
  size_t i = 0;
  for (const auto& [first_seq, path] : files) {
    const bool newest = ++i == files.size();
    last_first = first_seq;
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) return ErrnoError("open", path, errno);
    absl::StatusOr<std::string> data = ReadWholeFile(fd, path);
    if (!data.ok()) {
      ::close(fd);
      return data.status();
    }
    std::optional<delivery_log::SegmentHeader> header = delivery_log::DecodeSegmentHeader(*data);
    if (header && header->incarnation != incarnation_) {
      // A file from another log: nothing in it belongs here. Left alone (never read, never
      // deleted) and counted as damage at every start, so that an operator notices.
      ++counters_.corrupt_regions;
      counters_.corrupt_bytes += data->size();
      ::close(fd);
      continue;
    }
    if (!header && newest && data->size() < delivery_log::kSegmentHeaderBytes) {
      // The newest segment, torn while it was being created: it never held a record.
      counters_.torn_tail_bytes += data->size();
      ::close(fd);
      ::unlink(path.c_str());
      continue;
    }
    // A damaged header alone does not lose the records behind it: scan them with the header
    // the file's name and the folder imply.
    const delivery_log::SegmentHeader assumed{incarnation_, first_seq};
    uint64_t unparsable = 0;
    const delivery_log::ScanResult scan = delivery_log::ScanSegment(
        *data, after_seq,
        [&](const delivery_log::ScannedRecord& r) {
          const Location where{first_seq, r.offset, r.size};
          const void* p = r.body.data();
          const int n = static_cast<int>(r.body.size());
          bool ok = true;
          switch (r.type) {
            case RecordType::kAppend: {
              AppendBody b;
              if ((ok = b.ParseFromArray(p, n))) index_.ApplyAppend(r.seq, b, where);
              break;
            }
            case RecordType::kLease: {
              LeaseBody b;
              if ((ok = b.ParseFromArray(p, n))) index_.ApplyLease(b, /*live=*/false);
              break;
            }
            case RecordType::kOutcome: {
              OutcomeBody b;
              if ((ok = b.ParseFromArray(p, n))) index_.ApplyOutcome(b, absl::InfinitePast());
              break;
            }
            case RecordType::kRedrive: {
              RedriveBody b;
              if ((ok = b.ParseFromArray(p, n))) index_.ApplyRedrive(r.seq, b);
              break;
            }
            case RecordType::kCarry: {
              CarryBody b;
              if ((ok = b.ParseFromArray(p, n))) index_.ApplyCarry(b, where);
              break;
            }
          }
          if (!ok) ++unparsable;
        },
        assumed);
    counters_.replayed_records += scan.records - unparsable;
    counters_.corrupt_regions += scan.corrupt_regions + unparsable;
    counters_.corrupt_bytes += scan.corrupt_bytes;
    uint64_t size = data->size();
    if (scan.tail_bytes > 0) {
      if (newest) {
        // An unfinished last write: never acknowledged. Cut it off so that the bytes are not
        // counted again at the next start.
        counters_.torn_tail_bytes += scan.tail_bytes;
        if (::ftruncate(fd, static_cast<off_t>(scan.valid_end)) != 0 || ::fsync(fd) != 0) {
          const int err = errno;
          ::close(fd);
          return ErrnoError("truncate torn tail of", path, err);
        }
        size = scan.valid_end;
      } else {
        ++counters_.corrupt_regions;
        counters_.corrupt_bytes += scan.tail_bytes;
      }
    }
    after_seq = std::max(after_seq, scan.last_seq);
    segments_[first_seq] = Segment{first_seq, path, fd, size};
    disk_bytes_ += size;
  }
  index_.FinishReplay();
  if (!have_incarnation) {
    std::random_device rd;
    do {
      incarnation_ = (static_cast<uint64_t>(rd()) << 32) | rd();
    } while (incarnation_ == 0);
  }
  next_seq_ = std::max(after_seq, last_first) + 1;
  absl::StatusOr<Segment> head = CreateSegment(next_seq_);
  if (!head.ok()) return head.status();
  counters_.fsyncs += 2;
  disk_bytes_ += head->size;
  segments_[next_seq_] = *head;
  return absl::OkStatus();
}

absl::StatusOr<LogDeliveryStore::Segment> LogDeliveryStore::CreateSegment(uint64_t first_seq) {
  const std::string path =
      absl::StrCat(options_.dir, "/", delivery_log::SegmentFileName(first_seq));
  const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("create", path, errno);
  const std::string header = delivery_log::EncodeSegmentHeader({incarnation_, first_seq});
  if (!PwriteAll(fd, header, 0) || ::fdatasync(fd) != 0 || ::fsync(dir_fd_) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoError("write header of", path, err);
  }
  return Segment{first_seq, path, fd, header.size()};
}

LogDeliveryStore::~LogDeliveryStore() {
  Close();
  for (auto& [first, seg] : segments_) {
    if (seg.fd >= 0) ::close(seg.fd);
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);
  if (dir_fd_ >= 0) ::close(dir_fd_);
}

void LogDeliveryStore::Close() {
  std::lock_guard<std::mutex> close_lock(close_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  wake_.notify_all();
  if (writer_.joinable()) writer_.join();
}

// ---- The writer ----

void LogDeliveryStore::EnqueueLocked(Op op) {
  queue_.push_back(std::move(op));
  if (queue_.size() == 1) wake_.notify_one();
}

absl::Status LogDeliveryStore::RefusalLocked() const {
  if (!failed_.ok()) return failed_;
  if (closed_) return absl::CancelledError("delivery log closed");
  return absl::OkStatus();
}

void LogDeliveryStore::WriterLoop() {
  for (;;) {
    std::vector<Op> batch;
    absl::Status status;
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [this] { return !queue_.empty() || closed_; });
      if (queue_.empty()) break;
      batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
      queue_.clear();
      status = failed_;
    }
    std::vector<std::vector<Location>> locations(batch.size());
    if (status.ok()) status = WriteBatch(batch, locations);
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].done) std::move(batch[i].done)(status, locations[i]);
    }
    if (status.ok()) MaybeRetireOldest();
  }
}

absl::Status LogDeliveryStore::WriteBatch(std::vector<Op>& batch,
                                          std::vector<std::vector<Location>>& locations) {
  Segment* head = &segments_.rbegin()->second;
  std::string buf;
  uint64_t append_bytes = 0;
  // Writes and syncs what is buffered for the head segment.
  auto flush = [&]() -> absl::Status {
    absl::Duration synced;
    if (!buf.empty()) {
      if (!PwriteAll(head->fd, buf, head->size)) {
        return FailStop(ErrnoError("write", head->path, errno));
      }
      const absl::Time sync_start = absl::Now();
      if (::fdatasync(head->fd) != 0) return FailStop(ErrnoError("fdatasync", head->path, errno));
      synced = absl::Now() - sync_start;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (!buf.empty()) {
      ++counters_.fsyncs;
      counters_.group_commit_fsyncs += 1;
      counters_.group_commit_fsync_time += synced;
    }
    head->size += buf.size();
    disk_bytes_ += buf.size();
    buf.clear();
    return absl::OkStatus();
  };
  for (size_t i = 0; i < batch.size(); ++i) {
    Op& op = batch[i];
    append_bytes += op.append_bytes;
    size_t pos = 0;
    for (const auto& [seq, size] : op.frames) {
      const uint64_t at = head->size + buf.size();
      if (at + size > options_.segment_bytes && at > delivery_log::kSegmentHeaderBytes) {
        if (absl::Status s = flush(); !s.ok()) return s;
        absl::StatusOr<Segment> next = CreateSegment(seq);
        if (!next.ok()) return FailStop(next.status());
        std::lock_guard<std::mutex> lock(mu_);
        counters_.fsyncs += 2;
        disk_bytes_ += next->size;
        head = &(segments_[seq] = *next);
      }
      locations[i].push_back(Location{head->first_seq, head->size + buf.size(), size});
      buf.append(op.bytes, pos, size);
      pos += size;
    }
  }
  absl::Status s = flush();
  std::lock_guard<std::mutex> lock(mu_);
  queued_append_bytes_ -= append_bytes;
  return s;
}

absl::Status LogDeliveryStore::FailStop(absl::Status cause) {
  std::lock_guard<std::mutex> lock(mu_);
  if (failed_.ok()) {
    failed_ = absl::UnavailableError(absl::StrCat(
        cause.message(), "; the delivery log in ", options_.dir,
        " stopped accepting calls (nothing acknowledged is lost): restart to replay it"));
  }
  return failed_;
}

absl::StatusOr<std::string> LogDeliveryStore::ReadPayload(const Location& where) {
  auto seg = segments_.find(where.segment);
  if (seg == segments_.end()) {
    return absl::DataLossError(absl::StrCat("segment ", where.segment, " is gone"));
  }
  std::string frame(where.size, '\0');
  size_t done = 0;
  while (done < frame.size()) {
    const ssize_t n =
        ::pread(seg->second.fd, frame.data() + done, frame.size() - done, where.offset + done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::DataLossError(
          absl::StrCat("read ", seg->second.path, ": ", n < 0 ? std::strerror(errno) : "short"));
    }
    done += static_cast<size_t>(n);
  }
  std::optional<delivery_log::ScannedRecord> r = delivery_log::ParseRecordAt(frame, where.offset);
  if (!r) {
    return absl::DataLossError(
        absl::StrCat("checksum mismatch at ", seg->second.path, ":", where.offset));
  }
  std::string payload;
  if (r->type == RecordType::kAppend) {
    AppendBody b;
    if (b.ParseFromArray(r->body.data(), static_cast<int>(r->body.size()))) {
      payload = std::move(*b.mutable_payload());
    }
  } else if (r->type == RecordType::kCarry) {
    CarryBody b;
    if (b.ParseFromArray(r->body.data(), static_cast<int>(r->body.size()))) {
      payload = std::move(*b.mutable_append()->mutable_payload());
    }
  }
  if (payload.empty()) {
    return absl::DataLossError(absl::StrCat("no payload at ", seg->second.path, ":", where.offset));
  }
  return payload;
}

void LogDeliveryStore::MaybeRetireOldest() {
  for (;;) {
    if (retiring_) return;
    uint64_t first = 0;
    std::vector<std::pair<uint64_t, Location>> reads;
    std::optional<Segment> gone;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (segments_.size() < 2 || closed_) return;
      const Segment& oldest = segments_.begin()->second;
      first = oldest.first_seq;
      const uint64_t live = index_.LiveBytes(first);
      const uint64_t total_live = index_.TotalLiveBytes();
      const uint64_t garbage = disk_bytes_ > total_live ? disk_bytes_ - total_live : 0;
      // Worth it when it frees at least half the file. Only the oldest can go, so a mostly-live
      // oldest segment keeps everything behind it: it is carried anyway when the log holds
      // more garbage than live bytes (and more than two segments' worth), since carrying at
      // most all live bytes then frees more than that; and when the log is past half the size
      // bound, if carrying it frees anything.
      const bool cheap = live * 2 <= oldest.size;
      const bool wasteful = garbage > std::max(total_live, 2 * options_.segment_bytes);
      const bool pressed = disk_bytes_ * 2 > options_.max_bytes && live < oldest.size;
      if (!cheap && !wasteful && !pressed) return;
      const std::vector<uint64_t> homed = index_.HomedIn(first);
      if (homed.empty()) {
        gone = std::move(segments_.begin()->second);
        segments_.erase(segments_.begin());
        disk_bytes_ -= gone->size;
        ++counters_.segments_deleted;
        ++counters_.fsyncs;
      }
      for (uint64_t id : homed) {
        if (!index_.NeedsPayload(id)) continue;
        if (std::optional<Location> at = index_.PayloadLocation(id)) reads.push_back({id, *at});
      }
    }
    if (gone) {
      // Nothing refers to it any more. A crash before the unlink reaches the disk leaves it
      // for the next start, where everything in it is superseded.
      ::close(gone->fd);
      ::unlink(gone->path.c_str());
      ::fsync(dir_fd_);
      continue;  // The next one may go too.
    }
    // Payloads are immutable where they are: read them without the lock.
    absl::flat_hash_map<uint64_t, std::string> payloads;
    for (const auto& [id, at] : reads) {
      absl::StatusOr<std::string> p = ReadPayload(at);
      // A payload damaged on disk is carried as lost (empty); leasing it dead-letters it.
      if (p.ok()) payloads[id] = std::move(*p);
    }
    std::lock_guard<std::mutex> lock(mu_);
    Op op;
    std::vector<std::pair<uint64_t, bool>> carried;  // (id, with its payload)
    for (uint64_t id : index_.HomedIn(first)) {
      std::optional<CarryBody> c = index_.CarryOf(id);
      if (!c) continue;
      bool with_payload = false;
      if (index_.NeedsPayload(id)) {
        auto p = payloads.find(id);
        if (p != payloads.end()) {
          c->mutable_append()->set_payload(p->second);
          with_payload = true;
        }
      }
      const std::string body = c->SerializeAsString();
      const uint64_t seq = NextSeqLocked();
      delivery_log::AppendRecord(RecordType::kCarry, seq, body, &op.bytes);
      op.frames.push_back({seq, static_cast<uint32_t>(delivery_log::FramedSize(body.size()))});
      carried.push_back({id, with_payload});
    }
    retiring_ = true;
    op.done = [this, carried = std::move(carried)](absl::Status status,
                                                   const std::vector<Location>& where) {
      retiring_ = false;
      if (!status.ok()) return;
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < carried.size(); ++i) {
        index_.Rehome(carried[i].first, where[i], carried[i].second);
      }
      counters_.records_carried += carried.size();
      // The old file goes at the next check, now that nothing is homed in it.
    };
    EnqueueLocked(std::move(op));
    return;
  }
}

// ---- Calls ----

std::string LogDeliveryStore::FormatId(uint64_t seq) const {
  return absl::StrFormat("%016x-%d", incarnation_, seq);
}

std::optional<uint64_t> LogDeliveryStore::ParseId(absl::string_view id) const {
  std::vector<absl::string_view> parts = absl::StrSplit(id, absl::MaxSplits('-', 1));
  if (parts.size() != 2 || parts[0].size() != 16) return std::nullopt;
  uint64_t incarnation = 0, seq = 0;
  if (!absl::SimpleHexAtoi(parts[0], &incarnation) || !absl::SimpleAtoi(parts[1], &seq)) {
    return std::nullopt;
  }
  if (incarnation != incarnation_ || seq == 0) return std::nullopt;
  return seq;
}

absl::StatusOr<delivery_log::LogIndex::Found> LogDeliveryStore::FindLocked(
    absl::string_view delivery_id) const {
  std::optional<uint64_t> id = ParseId(delivery_id);
  std::optional<delivery_log::LogIndex::Found> found;
  if (id) found = index_.Find(*id);
  if (!found) {
    return absl::NotFoundError(
        absl::StrCat("delivery_id ", delivery_id, ": no such delivery in this log"));
  }
  return *found;
}

void LogDeliveryStore::Append(NewDelivery delivery, AppendCallback done) {
  if (absl::Status s = ValidateNewDelivery(delivery); !s.ok()) {
    std::move(done)(s);
    return;
  }
  const absl::Time now = options_.clock();
  AppendBody body;
  body.set_payload(std::move(delivery.payload));
  body.set_kind(delivery.kind);
  for (std::string& k : delivery.ordering_keys) body.add_ordering_keys(std::move(k));
  body.set_idempotency_key(delivery.idempotency_key);
  body.set_enqueue_unix_micros(Micros(now));
  const std::string bytes = body.SerializeAsString();
  body.clear_payload();  // The index keeps metadata only.
  const uint32_t size = static_cast<uint32_t>(delivery_log::FramedSize(bytes.size()));
  const std::string& key = delivery.idempotency_key;

  std::unique_lock<std::mutex> lock(mu_);
  if (absl::Status s = RefusalLocked(); !s.ok()) {
    lock.unlock();
    std::move(done)(s);
    return;
  }
  index_.Expire(now);
  if (!key.empty()) {
    std::optional<uint64_t> first;
    bool durable = true;
    if (auto r = reserved_keys_.find(key); r != reserved_keys_.end()) {
      first = r->second;
      durable = false;
    } else {
      first = index_.FindByKey(key);
    }
    if (first) {
      AppendResult result{FormatId(*first), true};
      if (durable) {
        ++counters_.duplicates;
        lock.unlock();
        std::move(done)(std::move(result));
        return;
      }
      // The first is still being written: answer once it is durable (its batch or an
      // earlier one than this empty op's).
      Op op;
      op.done = [this, result = std::move(result), done = std::move(done)](
                    absl::Status status, const std::vector<Location>&) mutable {
        if (!status.ok()) {
          std::move(done)(status);
          return;
        }
        {
          std::lock_guard<std::mutex> lock(mu_);
          ++counters_.duplicates;
        }
        std::move(done)(std::move(result));
      };
      EnqueueLocked(std::move(op));
      return;
    }
  }
  if (disk_bytes_ + queued_append_bytes_ + size > options_.max_bytes) {
    ++counters_.refused_full;
    const uint64_t used = disk_bytes_ + queued_append_bytes_;
    lock.unlock();
    std::move(done)(absl::ResourceExhaustedError(
        absl::StrCat("delivery queue full: ", options_.dir, " holds ", used, " bytes of its ",
                     options_.max_bytes, " (queue_max_bytes); this ", size,
                     "-byte call was not stored. Retry once the backlog has drained.")));
    return;
  }
  const uint64_t seq = NextSeqLocked();
  Op op;
  delivery_log::AppendRecord(RecordType::kAppend, seq, bytes, &op.bytes);
  op.frames.push_back({seq, size});
  op.append_bytes = size;
  queued_append_bytes_ += size;
  if (!key.empty()) reserved_keys_[key] = seq;
  op.done = [this, seq, body = std::move(body), done = std::move(done)](
                absl::Status status, const std::vector<Location>& where) mutable {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!body.idempotency_key().empty()) reserved_keys_.erase(body.idempotency_key());
      if (status.ok()) {
        index_.ApplyAppend(seq, body, where[0]);
        ++counters_.appends;
      }
    }
    if (!status.ok()) {
      std::move(done)(status);
      return;
    }
    std::move(done)(AppendResult{FormatId(seq), false});
  };
  EnqueueLocked(std::move(op));
}

void LogDeliveryStore::Lease(LeaseOptions options, LeaseCallback done) {
  if (options.max_records < 1 || options.max_records > kMaxLeaseRecords) {
    std::move(done)(
        absl::InvalidArgumentError(absl::StrCat("max_records must be 1..", kMaxLeaseRecords)));
    return;
  }
  struct Item {
    uint64_t id;
    DeliveryInfo info;
    bool in_doubt;
  };
  std::vector<Item> items;
  Op op;
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (absl::Status s = RefusalLocked(); !s.ok()) {
      lock.unlock();
      std::move(done)(s);
      return;
    }
    const absl::Time now = options_.clock();
    index_.Expire(now);
    for (uint64_t id : index_.PickReady(options.max_records, options.kinds, now)) {
      const bool in_doubt = index_.InDoubt(id);
      LeaseBody b;
      b.set_id(id);
      b.set_unix_micros(Micros(now));
      const std::string body = b.SerializeAsString();
      const uint64_t seq = NextSeqLocked();
      delivery_log::AppendRecord(RecordType::kLease, seq, body, &op.bytes);
      op.frames.push_back({seq, static_cast<uint32_t>(delivery_log::FramedSize(body.size()))});
      index_.ApplyLease(b, /*live=*/true);
      DeliveryInfo info = *index_.Info(id);
      info.delivery_id = FormatId(id);
      items.push_back({id, std::move(info), in_doubt});
    }
    if (items.empty()) {
      lock.unlock();
      std::move(done)(std::vector<LeasedDelivery>());
      return;
    }
    op.done = [this, items = std::move(items), done = std::move(done)](
                  absl::Status status, const std::vector<Location>&) mutable {
      if (!status.ok()) {
        std::move(done)(status);
        return;
      }
      std::vector<LeasedDelivery> out;
      out.reserve(items.size());
      for (Item& item : items) {
        // The current location: a carry may have moved the payload since the lease.
        std::optional<Location> at;
        {
          std::lock_guard<std::mutex> lock(mu_);
          at = index_.PayloadLocation(item.id);
        }
        absl::StatusOr<std::string> payload =
            at ? ReadPayload(*at) : absl::DataLossError("payload lost");
        if (!payload.ok()) {
          // Damaged on disk since it was acknowledged: it can never be sent; make it a dead
          // letter that says so rather than retrying it forever.
          std::lock_guard<std::mutex> lock(mu_);
          OutcomeBody b;
          b.set_id(item.id);
          b.set_kind(OutcomeBody::DEAD);
          b.set_error(absl::StrCat("stored payload unreadable: ", payload.status().message()));
          b.set_unix_micros(Micros(options_.clock()));
          const std::string body = b.SerializeAsString();
          const uint64_t seq = NextSeqLocked();
          Op dead;
          delivery_log::AppendRecord(RecordType::kOutcome, seq, body, &dead.bytes);
          dead.frames.push_back(
              {seq, static_cast<uint32_t>(delivery_log::FramedSize(body.size()))});
          index_.ApplyOutcome(b, absl::InfinitePast());
          EnqueueLocked(std::move(dead));
          continue;
        }
        out.push_back(LeasedDelivery{std::move(item.info), std::move(*payload), item.in_doubt});
      }
      std::move(done)(std::move(out));
    };
    EnqueueLocked(std::move(op));
  }
}

void LogDeliveryStore::Complete(absl::string_view delivery_id, DeliveryOutcome outcome,
                                StatusCallback done) {
  std::unique_lock<std::mutex> lock(mu_);
  absl::Status refusal = RefusalLocked();
  absl::StatusOr<delivery_log::LogIndex::Found> found =
      refusal.ok() ? FindLocked(delivery_id) : refusal;
  if (!found.ok() || !found->leased) {
    lock.unlock();
    if (!found.ok()) {
      std::move(done)(found.status());
    } else {
      std::move(done)(absl::FailedPreconditionError(absl::StrCat(
          "delivery_id ", delivery_id, ": not leased (", DeliveryStateName(found->state), ")")));
    }
    return;
  }
  OutcomeBody b;
  b.set_id(found->id);
  switch (outcome.kind) {
    case DeliveryOutcome::Kind::kDelivered:
      b.set_kind(OutcomeBody::DELIVERED);
      break;
    case DeliveryOutcome::Kind::kRetry:
      b.set_kind(OutcomeBody::RETRY);
      break;
    case DeliveryOutcome::Kind::kDead:
      b.set_kind(OutcomeBody::DEAD);
      break;
  }
  b.set_error(outcome.error);
  b.set_unix_micros(Micros(options_.clock()));
  const std::string body = b.SerializeAsString();
  const uint64_t seq = NextSeqLocked();
  Op op;
  delivery_log::AppendRecord(RecordType::kOutcome, seq, body, &op.bytes);
  op.frames.push_back({seq, static_cast<uint32_t>(delivery_log::FramedSize(body.size()))});
  index_.ApplyOutcome(b, outcome.not_before);
  op.done = [done = std::move(done)](absl::Status status, const std::vector<Location>&) mutable {
    std::move(done)(status);
  };
  EnqueueLocked(std::move(op));
}

void LogDeliveryStore::Get(absl::string_view delivery_id, InfoCallback done) {
  std::optional<uint64_t> id = ParseId(delivery_id);
  std::optional<DeliveryInfo> info;
  {
    std::lock_guard<std::mutex> lock(mu_);
    index_.Expire(options_.clock());
    if (id) info = index_.Info(*id);
  }
  if (!info) {
    std::move(done)(absl::NotFoundError(absl::StrCat(
        "delivery_id ", delivery_id, ": unknown, or delivered longer ago than the retention")));
    return;
  }
  info->delivery_id = std::string(delivery_id);
  std::move(done)(std::move(*info));
}

void LogDeliveryStore::ListDeadLetters(size_t max, absl::string_view page_token,
                                       DeadLetterCallback done) {
  if (max < 1) {
    std::move(done)(absl::InvalidArgumentError("max must be at least 1"));
    return;
  }
  uint64_t after = 0;
  if (!page_token.empty()) {
    std::optional<uint64_t> id = ParseId(page_token);
    if (!id) {
      std::move(done)(absl::InvalidArgumentError("page_token: not from this dead-letter list"));
      return;
    }
    after = *id;
  }
  DeadLetterPage page;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<uint64_t> ids = index_.DeadAfter(after, max + 1);
    const bool more = ids.size() > max;
    if (more) ids.resize(max);
    for (uint64_t id : ids) {
      DeliveryInfo info = *index_.Info(id);
      info.delivery_id = FormatId(id);
      page.dead.push_back(std::move(info));
    }
    if (more) page.next_page_token = FormatId(ids.back());
  }
  std::move(done)(std::move(page));
}

void LogDeliveryStore::Renew(std::vector<std::string> delivery_ids, RenewCallback done) {
  // A lease here never expires while the process lives (LeaseTimeout() is infinite), so there
  // is nothing to write: the answer only says whether the record is still leased.
  std::vector<absl::Status> statuses(delivery_ids.size());
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (absl::Status s = RefusalLocked(); !s.ok()) {
      std::fill(statuses.begin(), statuses.end(), s);
    } else {
      for (size_t i = 0; i < delivery_ids.size(); ++i) {
        absl::StatusOr<delivery_log::LogIndex::Found> found = FindLocked(delivery_ids[i]);
        if (!found.ok()) {
          statuses[i] = found.status();
        } else if (found->state != DeliveryState::kPending || !found->leased) {
          statuses[i] = absl::FailedPreconditionError(
              absl::StrCat("delivery_id ", delivery_ids[i], ": not leased"));
        }
      }
    }
  }
  std::move(done)(std::move(statuses));
}

void LogDeliveryStore::Redrive(std::vector<std::string> delivery_ids, RedriveCallback done) {
  std::vector<absl::Status> statuses(delivery_ids.size());
  std::unique_lock<std::mutex> lock(mu_);
  if (absl::Status s = RefusalLocked(); !s.ok()) {
    lock.unlock();
    std::fill(statuses.begin(), statuses.end(), s);
    std::move(done)(std::move(statuses));
    return;
  }
  Op op;
  const absl::Time now = options_.clock();
  for (size_t i = 0; i < delivery_ids.size(); ++i) {
    absl::StatusOr<delivery_log::LogIndex::Found> found = FindLocked(delivery_ids[i]);
    if (!found.ok()) {
      statuses[i] = found.status();
      continue;
    }
    if (found->state != DeliveryState::kDead) {
      statuses[i] = absl::FailedPreconditionError(absl::StrCat(
          "delivery_id ", delivery_ids[i], ": not dead (", DeliveryStateName(found->state), ")"));
      continue;
    }
    RedriveBody b;
    b.set_id(found->id);
    b.set_unix_micros(Micros(now));
    const std::string body = b.SerializeAsString();
    const uint64_t seq = NextSeqLocked();
    delivery_log::AppendRecord(RecordType::kRedrive, seq, body, &op.bytes);
    op.frames.push_back({seq, static_cast<uint32_t>(delivery_log::FramedSize(body.size()))});
    index_.ApplyRedrive(seq, b);
  }
  if (op.frames.empty()) {
    lock.unlock();
    std::move(done)(std::move(statuses));
    return;
  }
  op.done = [statuses = std::move(statuses), done = std::move(done)](
                absl::Status status, const std::vector<Location>&) mutable {
    if (!status.ok()) {
      for (absl::Status& s : statuses) {
        if (s.ok()) s = status;
      }
    }
    std::move(done)(std::move(statuses));
  };
  EnqueueLocked(std::move(op));
}

DeliveryStoreStats LogDeliveryStore::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  DeliveryStoreStats s = counters_;
  const delivery_log::LogIndex::Counts c = index_.GetCounts();
  s.pending = c.pending;
  s.leased = c.leased;
  s.dead = c.dead;
  s.delivered_retained = c.delivered;
  s.pending_by_kind = c.pending_by_kind;
  s.oldest_pending_enqueue_time = c.oldest_pending;
  s.bytes = disk_bytes_;
  s.max_bytes = options_.max_bytes;
  s.segments = segments_.size();
  return s;
}

}  // namespace userpilot::gateway
