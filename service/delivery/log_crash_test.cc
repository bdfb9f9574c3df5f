// Crash test of the embedded delivery log: a child process appends (some calls with idempotency
// keys, some repeating keys of earlier rounds), leases and marks deliveries on one folder and is
// killed with SIGKILL at a random moment; this repeats several times on the same folder. The
// child reports every acknowledgement through a pipe as it gets it. At the end the parent
// replays the folder and checks that every acknowledged record is there exactly once, pending
// or delivered, with its payload; that every acknowledged delivery stuck; that a repeated key
// always answered the first id; and that per-key order held.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "service/delivery/log_delivery_store.h"
#include "tests/delivery/delivery_store_test_util.h"

namespace userpilot::gateway {
namespace {

using testing::GetSync;
using testing::LeaseSync;
using testing::TempFolder;

constexpr int kUsers = 101;
constexpr int kKeys = 60;

LogDeliveryStoreOptions CrashOptions(const std::string& dir) {
  LogDeliveryStoreOptions o;
  o.dir = dir;
  o.segment_bytes = 64 << 10;  // Small: segments roll and get deleted under the kills.
  o.max_bytes = 256 << 20;
  o.retention = absl::Hours(1);
  return o;
}

void Report(int fd, const std::string& line) {
  // One write per line, shorter than PIPE_BUF: atomic, so lines never interleave.
  const ssize_t n = ::write(fd, line.data(), line.size());
  if (n != static_cast<ssize_t>(line.size())) ::_exit(3);
}

// Runs until killed. Lines: "A <id> <payload> <dup 0|1> <key or ->" for an acknowledged
// append, "D <id>" for an acknowledged delivery, "L <id> <payload>" for a lease.
[[noreturn]] void Child(const std::string& dir, int fd, int round, uint32_t seed) {
  absl::StatusOr<std::unique_ptr<LogDeliveryStore>> opened =
      LogDeliveryStore::Open(CrashOptions(dir));
  if (!opened.ok()) {
    Report(fd, absl::StrCat("E ", opened.status().ToString(), "\n"));
    ::_exit(2);
  }
  LogDeliveryStore& store = **opened;
  std::mt19937 rng(seed);
  std::mutex mu;
  std::condition_variable cv;
  int outstanding = 0;
  auto begin = [&] {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return outstanding < 32; });
    ++outstanding;
  };
  // From callbacks (the store's writer thread): never wait there, the writer must go on.
  auto begin_nowait = [&] {
    std::lock_guard<std::mutex> lock(mu);
    ++outstanding;
  };
  auto end = [&] {
    std::lock_guard<std::mutex> lock(mu);
    --outstanding;
    cv.notify_all();
  };
  for (int i = 0;; ++i) {
    // Keep the backlog short so that deliveries catch up and old segments get deleted (their
    // live records carried) while the kills land.
    if (store.Stats().pending > 300) {
      ::usleep(500);
    } else {
      begin();
      NewDelivery d;
      // Padded so that delivered records free most of their bytes.
      d.payload = absl::StrCat("r", round, "-", i, "-", std::string(600, 'p'));
      d.ordering_keys = {absl::StrCat("user:", rng() % kUsers)};
      if (rng() % 4 == 0) d.idempotency_key = absl::StrCat("key-", rng() % kKeys);
      const std::string key = d.idempotency_key.empty() ? "-" : d.idempotency_key;
      const std::string payload = d.payload;
      store.Append(std::move(d), [&, fd, payload, key](absl::StatusOr<AppendResult> r) {
        if (r.ok()) {
          Report(fd, absl::StrCat("A ", r->delivery_id, " ", payload, " ", r->duplicate ? 1 : 0,
                                  " ", key, "\n"));
        }
        end();
      });
    }
    if (i % 4 == 3) {
      begin();
      LeaseOptions lo;
      lo.max_records = 32;
      store.Lease(lo, [&, fd](absl::StatusOr<std::vector<LeasedDelivery>> leased) {
        if (leased.ok()) {
          for (const LeasedDelivery& l : *leased) {
            Report(fd, absl::StrCat("L ", l.info.delivery_id, " ", l.payload, "\n"));
            // Most succeed; some stay leased (a delivery still in flight at the kill).
            // Decided per round: a record left leased in one round is delivered in a later one.
            if (std::hash<std::string>()(absl::StrCat(round, l.payload)) % 64 == 0) continue;
            begin_nowait();
            const std::string id = l.info.delivery_id;
            store.Complete(id, DeliveryOutcome::Delivered(), [&, fd, id](absl::Status s) {
              if (s.ok()) Report(fd, absl::StrCat("D ", id, "\n"));
              end();
            });
          }
        }
        end();
      });
    }
  }
}

struct Seen {
  std::map<std::string, std::string> payload_by_id;  // First (non-duplicate) acknowledgement.
  std::map<std::string, std::string> id_by_key;
  std::set<std::string> delivered;
  uint64_t acks = 0, duplicate_acks = 0, key_mismatches = 0, payload_mismatches = 0;
};

void Parse(const std::string& line, Seen& seen) {
  std::vector<std::string> f = absl::StrSplit(line, ' ');
  if (f.empty()) return;
  if (f[0] == "E") {
    ADD_FAILURE() << "child could not open the log: " << line;
  } else if (f[0] == "A" && f.size() == 5) {
    ++seen.acks;
    const std::string& id = f[1];
    if (f[3] == "1") {
      ++seen.duplicate_acks;
    } else {
      seen.payload_by_id.emplace(id, f[2]);
    }
    if (f[4] != "-") {
      auto [it, fresh] = seen.id_by_key.emplace(f[4], id);
      if (!fresh && it->second != id) ++seen.key_mismatches;
    }
  } else if (f[0] == "D" && f.size() == 2) {
    seen.delivered.insert(f[1]);
  } else if (f[0] == "L" && f.size() == 3) {
    auto it = seen.payload_by_id.find(f[1]);
    if (it != seen.payload_by_id.end() && it->second != f[2]) ++seen.payload_mismatches;
  }
}

TEST(LogCrashTest, EveryAcknowledgedRecordSurvivesRandomSigkills) {
  TempFolder folder;
  const std::string dir = folder.path() + "/queue";
  const uint32_t seed = static_cast<uint32_t>(absl::ToUnixNanos(absl::Now()));
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  Seen seen;
  constexpr int kRounds = 10;
  for (int round = 0; round < kRounds; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(4);
      ::close(fds[0]);
      Child(dir, fds[1], round, rng());
    }
    ::close(fds[1]);
    // Some kills land during replay at start-up, most under load.
    const absl::Time kill_at = absl::Now() + absl::Milliseconds(round == 0 ? 300 : 5 + rng() % 400);
    std::string buffer;
    bool killed = false;
    for (;;) {
      const absl::Duration left = kill_at - absl::Now();
      if (!killed && left <= absl::ZeroDuration()) {
        ::kill(pid, SIGKILL);
        killed = true;
      }
      pollfd p{fds[0], POLLIN, 0};
      const int timeout_ms = killed ? 1000 : static_cast<int>(absl::ToInt64Milliseconds(left)) + 1;
      if (::poll(&p, 1, timeout_ms) < 0) continue;
      char chunk[65536];
      const ssize_t n = p.revents != 0 ? ::read(fds[0], chunk, sizeof(chunk)) : -1;
      if (n == 0) break;  // The child is gone and everything it wrote has been read.
      if (n > 0) buffer.append(chunk, static_cast<size_t>(n));
    }
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "round " << round << ": the child ended on its own (status " << status << ")";
    // Only whole lines count: a line cut by the kill was never fully reported.
    const size_t whole = buffer.rfind('\n');
    if (whole == std::string::npos) continue;
    for (absl::string_view line : absl::StrSplit(buffer.substr(0, whole), '\n')) {
      Parse(std::string(line), seen);
    }
  }
  std::printf("acknowledged appends %llu (%llu answered as duplicates of a key), deliveries %zu\n",
              static_cast<unsigned long long>(seen.acks),
              static_cast<unsigned long long>(seen.duplicate_acks), seen.delivered.size());
  ASSERT_GT(seen.payload_by_id.size(), 100u) << "the child did too little to test anything";
  EXPECT_EQ(seen.key_mismatches, 0u) << "a repeated idempotency key got a different id";
  EXPECT_EQ(seen.payload_mismatches, 0u) << "a lease returned another record's payload";

  absl::StatusOr<std::unique_ptr<LogDeliveryStore>> opened =
      LogDeliveryStore::Open(CrashOptions(dir));
  ASSERT_TRUE(opened.ok()) << opened.status();
  LogDeliveryStore& store = **opened;
  const DeliveryStoreStats st = store.Stats();
  std::printf(
      "replay: %llu records, torn tail %llu bytes, %llu corrupt regions, %llu segments "
      "(%llu deleted in this process)\n",
      static_cast<unsigned long long>(st.replayed_records),
      static_cast<unsigned long long>(st.torn_tail_bytes),
      static_cast<unsigned long long>(st.corrupt_regions),
      static_cast<unsigned long long>(st.segments),
      static_cast<unsigned long long>(st.segments_deleted));
  EXPECT_EQ(st.corrupt_regions, 0u) << "a kill cannot corrupt anything but the tail";
  // Segments were deleted (their live records carried) between and under the kills: the
  // folder holds less than the acknowledged payloads alone.
  EXPECT_LT(st.bytes, seen.payload_by_id.size() * 600)
      << st.segments << " segments, " << st.pending << " pending, " << st.delivered_retained
      << " delivered";

  // Every acknowledged record is there, pending or delivered; acknowledged deliveries stuck.
  uint64_t acked_pending = 0;
  for (const auto& [id, payload] : seen.payload_by_id) {
    absl::StatusOr<DeliveryInfo> info = GetSync(store, id);
    ASSERT_TRUE(info.ok()) << "acknowledged " << id << " (" << payload
                           << ") lost: " << info.status();
    if (seen.delivered.count(id)) {
      EXPECT_EQ(info->state, DeliveryState::kDelivered) << id;
    }
    if (info->state == DeliveryState::kPending) ++acked_pending;
  }
  // Exactly once: drain the backlog; no id and no payload comes twice, each payload is the one
  // acknowledged for its id, and each user's records come in the order they were appended.
  std::set<std::string> leased_ids, leased_payloads;
  std::map<std::string, std::pair<int, int>> last_by_user;  // user -> (round, i)
  uint64_t in_doubt = 0, order_violations = 0;
  for (;;) {
    absl::StatusOr<std::vector<LeasedDelivery>> batch = LeaseSync(store, 500);
    ASSERT_TRUE(batch.ok()) << batch.status();
    if (batch->empty()) break;
    for (const LeasedDelivery& l : *batch) {
      EXPECT_TRUE(leased_ids.insert(l.info.delivery_id).second) << l.info.delivery_id;
      EXPECT_TRUE(leased_payloads.insert(l.payload).second) << "payload twice: " << l.payload;
      auto it = seen.payload_by_id.find(l.info.delivery_id);
      if (it != seen.payload_by_id.end()) {
        EXPECT_EQ(it->second, l.payload);
      }
      if (l.in_doubt) ++in_doubt;
      int r = 0, i = 0;
      std::vector<std::string> parts = absl::StrSplit(l.payload.substr(1), '-');
      ASSERT_EQ(parts.size(), 3u) << l.payload;
      ASSERT_TRUE(absl::SimpleAtoi(parts[0], &r) && absl::SimpleAtoi(parts[1], &i));
      const std::string& user = l.info.ordering_keys.at(0);
      auto last = last_by_user.find(user);
      if (last != last_by_user.end() && last->second >= std::make_pair(r, i)) ++order_violations;
      last_by_user[user] = {r, i};
    }
    // All of the batch's outcomes at once: they share fsyncs.
    std::promise<void> all_done;
    std::atomic<size_t> left{batch->size()};
    std::atomic<int> failures{0};
    for (const LeasedDelivery& l : *batch) {
      store.Complete(l.info.delivery_id, DeliveryOutcome::Delivered(), [&](absl::Status s) {
        if (!s.ok()) ++failures;
        if (--left == 0) all_done.set_value();
      });
    }
    all_done.get_future().wait();
    ASSERT_EQ(failures.load(), 0);
  }
  std::printf("backlog after the kills: %zu records (%llu acknowledged, %llu in doubt)\n",
              leased_ids.size(), static_cast<unsigned long long>(acked_pending),
              static_cast<unsigned long long>(in_doubt));
  EXPECT_EQ(order_violations, 0u);
  {
    const DeliveryStoreStats after = store.Stats();
    std::printf("after the drain: %llu segments, %llu bytes, %llu deleted, %llu carried\n",
                static_cast<unsigned long long>(after.segments),
                static_cast<unsigned long long>(after.bytes),
                static_cast<unsigned long long>(after.segments_deleted),
                static_cast<unsigned long long>(after.records_carried));
  }
  EXPECT_EQ(st.pending, leased_ids.size());
  for (const auto& [id, payload] : seen.payload_by_id) {
    absl::StatusOr<DeliveryInfo> info = GetSync(store, id);
    ASSERT_TRUE(info.ok()) << id;
    EXPECT_EQ(info->state, DeliveryState::kDelivered) << id;
  }
}

}  // namespace
}  // namespace userpilot::gateway
