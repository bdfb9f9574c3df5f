#include "service/delivery/log_delivery_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/delivery/delivery_store_test_util.h"

namespace userpilot::gateway {
namespace {

using testing::AppendSync;
using testing::CompleteSync;
using ::testing::ElementsAre;
using testing::GetSync;
using ::testing::HasSubstr;
using testing::LeaseSync;
using testing::ListDeadSync;
using testing::MakeDelivery;
using testing::RedriveSync;
using testing::RenewSync;
using testing::TempFolder;
using testing::TestClock;

namespace fs = std::filesystem;

class LogDeliveryStoreTest : public ::testing::Test {
 protected:
  LogDeliveryStoreOptions Options() {
    LogDeliveryStoreOptions o;
    o.dir = folder_.path() + "/queue";
    o.segment_bytes = 64 << 10;
    o.max_bytes = 64 << 20;
    o.clock = [this] { return clock_.Now(); };
    return o;
  }
  std::unique_ptr<LogDeliveryStore> Open(LogDeliveryStoreOptions o) {
    absl::StatusOr<std::unique_ptr<LogDeliveryStore>> s = LogDeliveryStore::Open(std::move(o));
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }
  std::unique_ptr<LogDeliveryStore> Open() { return Open(Options()); }

  std::string Append(LogDeliveryStore& s, std::string payload, std::vector<std::string> keys = {},
                     std::string key = "", uint32_t kind = 0) {
    absl::StatusOr<AppendResult> r =
        AppendSync(s, MakeDelivery(std::move(payload), std::move(keys), std::move(key), kind));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->delivery_id : "";
  }
  // Leases everything ready and returns the payloads, in lease order.
  std::vector<std::string> LeasePayloads(LogDeliveryStore& s, size_t max = 1000,
                                         std::vector<LeasedDelivery>* out = nullptr) {
    absl::StatusOr<std::vector<LeasedDelivery>> r = LeaseSync(s, max);
    EXPECT_TRUE(r.ok()) << r.status();
    std::vector<std::string> payloads;
    if (!r.ok()) return payloads;
    for (const LeasedDelivery& d : *r) payloads.push_back(d.payload);
    if (out) *out = std::move(*r);
    return payloads;
  }
  std::vector<std::string> Kinds(LogDeliveryStore& s, size_t max, std::vector<uint32_t> kinds) {
    absl::StatusOr<std::vector<LeasedDelivery>> r = LeaseSync(s, max, std::move(kinds));
    EXPECT_TRUE(r.ok()) << r.status();
    std::vector<std::string> payloads;
    if (r.ok()) {
      for (const LeasedDelivery& d : *r) payloads.push_back(d.payload);
    }
    return payloads;
  }
  std::vector<fs::path> SegmentFiles() {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(Options().dir)) {
      if (e.path().filename().string().rfind("segment-", 0) == 0) files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    return files;
  }

  TempFolder folder_;
  TestClock clock_;
};

TEST_F(LogDeliveryStoreTest, RecordsInARetryWaitOrOfOtherKindsDoNotHideReadyOnes) {
  auto s = Open();
  for (int i = 0; i < 50; ++i) Append(*s, "w" + std::to_string(i), {"user:" + std::to_string(i)});
  std::vector<LeasedDelivery> l;
  LeasePayloads(*s, 100, &l);
  ASSERT_EQ(l.size(), 50u);
  for (const LeasedDelivery& d : l) {
    ASSERT_TRUE(CompleteSync(*s, d.info.delivery_id,
                             DeliveryOutcome::Retry("429", clock_.Now() + absl::Hours(1)))
                    .ok());
  }
  for (int i = 0; i < 50; ++i)
    Append(*s, "t" + std::to_string(i), {"user:t" + std::to_string(i)}, "", 7);
  Append(*s, "fresh", {"user:fresh"});
  EXPECT_THAT(Kinds(*s, 1, {0}), ElementsAre("fresh"));
  clock_.Advance(absl::Hours(2));
  EXPECT_THAT(Kinds(*s, 2, {0}), ElementsAre("w0", "w1"));
}

TEST_F(LogDeliveryStoreTest, AppendsComeBackInOrderAfterRestart) {
  std::vector<std::string> ids;
  {
    auto s = Open();
    for (int i = 0; i < 20; ++i) ids.push_back(Append(*s, "p" + std::to_string(i)));
    EXPECT_EQ(s->Stats().appends, 20u);
    EXPECT_EQ(s->Stats().pending, 20u);
  }
  auto s = Open();
  EXPECT_EQ(s->Stats().pending, 20u);
  EXPECT_EQ(s->Stats().replayed_records, 20u);
  EXPECT_EQ(s->Stats().torn_tail_bytes + s->Stats().corrupt_regions, 0u);
  std::vector<LeasedDelivery> leased;
  std::vector<std::string> payloads = LeasePayloads(*s, 1000, &leased);
  ASSERT_EQ(payloads.size(), 20u);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(payloads[i], "p" + std::to_string(i));
    EXPECT_EQ(leased[i].info.delivery_id, ids[i]);
    EXPECT_EQ(leased[i].info.attempts, 1u);
    EXPECT_FALSE(leased[i].in_doubt);
  }
}

TEST_F(LogDeliveryStoreTest, GroupCommitSharesOneFsyncAmongQueuedAppends) {
  auto s = Open();
  // The first append's callback (on the writer thread) waits until the test has queued 999
  // more, so those are all queued while the writer is busy: they must share one write and one
  // fdatasync.
  std::mutex mu;
  std::condition_variable cv;
  bool queued = false;
  int acked = 0;
  const uint64_t fsyncs_before = s->Stats().fsyncs;
  s->Append(MakeDelivery("first"), [&](absl::StatusOr<AppendResult> r) {
    ASSERT_TRUE(r.ok());
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return queued; });
    ++acked;
  });
  for (int i = 0; i < 999; ++i) {
    s->Append(MakeDelivery("p" + std::to_string(i)), [&](absl::StatusOr<AppendResult> r) {
      ASSERT_TRUE(r.ok());
      std::lock_guard<std::mutex> lock(mu);
      ++acked;
      cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    queued = true;
    cv.notify_all();
    cv.wait(lock, [&] { return acked == 1000; });
  }
  // One fdatasync for "first" and one for the 999 queued behind it (or a single one, if the
  // writer woke only after all were queued).
  EXPECT_LE(s->Stats().fsyncs - fsyncs_before, 2u);
  EXPECT_EQ(s->Stats().appends, 1000u);
}

TEST_F(LogDeliveryStoreTest, ConcurrentAppendersAllAcknowledgedWithFewerFsyncs) {
  auto s = Open();
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<std::string> ids;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        absl::StatusOr<AppendResult> r =
            AppendSync(*s, MakeDelivery(absl::StrCat(t, "-", i), {absl::StrCat("user:", t)}));
        ASSERT_TRUE(r.ok()) << r.status();
        std::lock_guard<std::mutex> lock(mu);
        ids.insert(r->delivery_id);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ids.size(), 800u);
  // Each append waits for its fsync, so fsyncs <= appends; sharing makes it fewer in practice,
  // but only the bound is certain on a machine whose scheduling the test does not control.
  EXPECT_LE(s->Stats().fsyncs, 800u + 2u);
  // Per-key order: each user's records lease one at a time, in append order.
  for (int round = 0; round < 50; ++round) {
    std::vector<LeasedDelivery> leased;
    LeasePayloads(*s, 1000, &leased);
    ASSERT_EQ(leased.size(), 16u) << "round " << round;
    for (const LeasedDelivery& d : leased) {
      EXPECT_THAT(d.payload, ::testing::EndsWith(absl::StrCat("-", round)));
      ASSERT_TRUE(CompleteSync(*s, d.info.delivery_id, DeliveryOutcome::Delivered()).ok());
    }
  }
  EXPECT_EQ(s->Stats().pending, 0u);
}

TEST_F(LogDeliveryStoreTest, OrderingKeysLeaseOneAtATimeAndRetryKeepsTheHead) {
  auto s = Open();
  const std::string a1 = Append(*s, "a1", {"user:a"});
  const std::string b1 = Append(*s, "b1", {"user:b", "company:x"});
  const std::string a2 = Append(*s, "a2", {"user:a"});
  const std::string c1 = Append(*s, "c1", {"user:c", "company:x"});  // Behind b1 on company:x.
  const std::string free = Append(*s, "free");                       // No keys.
  EXPECT_THAT(LeasePayloads(*s), ElementsAre("a1", "b1", "free"));
  EXPECT_THAT(LeasePayloads(*s), ElementsAre());  // All heads are leased.

  // a1 retries later: a2 still waits behind it.
  ASSERT_TRUE(
      CompleteSync(*s, a1, DeliveryOutcome::Retry("503", clock_.Now() + absl::Seconds(5))).ok());
  EXPECT_THAT(LeasePayloads(*s), ElementsAre());
  clock_.Advance(absl::Seconds(5));
  EXPECT_THAT(LeasePayloads(*s), ElementsAre("a1"));
  ASSERT_TRUE(CompleteSync(*s, a1, DeliveryOutcome::Delivered()).ok());
  ASSERT_TRUE(CompleteSync(*s, b1, DeliveryOutcome::Delivered()).ok());
  EXPECT_THAT(LeasePayloads(*s), ElementsAre("a2", "c1"));

  absl::StatusOr<DeliveryInfo> info = GetSync(*s, a1);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, DeliveryState::kDelivered);
  EXPECT_EQ(info->attempts, 2u);
  EXPECT_EQ(info->last_error, "503");
  EXPECT_EQ(info->finish_time, clock_.Now());
  EXPECT_THAT(info->ordering_keys, ElementsAre("user:a"));

  // Complete is only for leased records.
  EXPECT_EQ(CompleteSync(*s, a1, DeliveryOutcome::Delivered()).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CompleteSync(*s, "0000000000000000-999", DeliveryOutcome::Delivered()).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(LogDeliveryStoreTest, LeaseSelectsByKind) {
  auto s = Open();
  Append(*s, "track", {"user:1"}, "", 3);
  Append(*s, "identify-2", {"user:2"}, "", 1);
  Append(*s, "identify-1", {"user:1"}, "", 1);  // Behind the track of user 1.
  Append(*s, "company", {"company:9"}, "", 2);
  absl::StatusOr<std::vector<LeasedDelivery>> r = LeaseSync(*s, 10, {1, 2});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].payload, "identify-2");
  EXPECT_EQ((*r)[1].payload, "company");
  EXPECT_EQ(s->Stats().pending_by_kind.at(1), 2u);
}

TEST_F(LogDeliveryStoreTest, RenewAnswersWhetherEachRecordIsStillLeasedHere) {
  auto s = Open();
  EXPECT_EQ(s->LeaseTimeout(), absl::InfiniteDuration());  // Nothing ever needs renewing.
  const std::string leased = AppendSync(*s, MakeDelivery("a"))->delivery_id;
  ASSERT_EQ(LeaseSync(*s, 1)->size(), 1u);
  const std::string waiting = AppendSync(*s, MakeDelivery("b"))->delivery_id;
  std::vector<absl::Status> r = RenewSync(*s, {leased, waiting, "nonsense"});
  ASSERT_EQ(r.size(), 3u);
  EXPECT_TRUE(r[0].ok()) << r[0];
  EXPECT_EQ(r[1].code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r[2].code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(CompleteSync(*s, leased, DeliveryOutcome::Delivered()).ok());
  EXPECT_EQ(RenewSync(*s, {leased})[0].code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(LogDeliveryStoreTest, DeadLettersListAndRedriveBehindTheQueue) {
  auto s = Open();
  const std::string bad = Append(*s, "bad", {"user:a"});
  Append(*s, "next", {"user:a"});
  LeasePayloads(*s);
  ASSERT_TRUE(CompleteSync(*s, bad, DeliveryOutcome::Dead("400: invalid email")).ok());
  // The key moves on past the dead letter.
  EXPECT_THAT(LeasePayloads(*s), ElementsAre("next"));

  absl::StatusOr<DeadLetterPage> page = ListDeadSync(*s, 10);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->dead.size(), 1u);
  EXPECT_EQ(page->dead[0].delivery_id, bad);
  EXPECT_EQ(page->dead[0].last_error, "400: invalid email");
  EXPECT_EQ(page->dead[0].state, DeliveryState::kDead);
  EXPECT_TRUE(page->next_page_token.empty());

  Append(*s, "after", {"user:a"});
  std::vector<absl::Status> st = RedriveSync(*s, {bad, "nonsense", page->dead[0].delivery_id});
  ASSERT_EQ(st.size(), 3u);
  EXPECT_TRUE(st[0].ok()) << st[0];
  EXPECT_EQ(st[1].code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(st[2].code(), absl::StatusCode::kFailedPrecondition);  // Already pending again.
  EXPECT_EQ(s->Stats().dead, 0u);

  // "next" is still leased; the redriven record queues behind "after".
  std::vector<LeasedDelivery> leased;
  LeasePayloads(*s, 10, &leased);
  EXPECT_TRUE(leased.empty());
  auto s_stats = s->Stats();
  EXPECT_EQ(s_stats.pending, 3u);
  s.reset();

  // The same after a restart: "next" (its lease lost, in doubt), "after", then "bad".
  s = Open();
  EXPECT_THAT(LeasePayloads(*s, 10, &leased), ElementsAre("next"));
  EXPECT_TRUE(leased[0].in_doubt);
  EXPECT_EQ(leased[0].info.attempts, 2u);
  ASSERT_TRUE(CompleteSync(*s, leased[0].info.delivery_id, DeliveryOutcome::Delivered()).ok());
  EXPECT_THAT(LeasePayloads(*s), ElementsAre("after"));
}

TEST_F(LogDeliveryStoreTest, DeadLetterPages) {
  auto s = Open();
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(Append(*s, "d" + std::to_string(i)));
  std::vector<LeasedDelivery> leased;
  LeasePayloads(*s, 10, &leased);
  for (const LeasedDelivery& d : leased) {
    ASSERT_TRUE(CompleteSync(*s, d.info.delivery_id, DeliveryOutcome::Dead("400")).ok());
  }
  std::vector<std::string> seen;
  std::string token;
  do {
    absl::StatusOr<DeadLetterPage> page = ListDeadSync(*s, 2, token);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const DeliveryInfo& d : page->dead) seen.push_back(d.delivery_id);
    token = page->next_page_token;
  } while (!token.empty());
  EXPECT_EQ(seen, ids);
  EXPECT_EQ(ListDeadSync(*s, 2, "garbage").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(LogDeliveryStoreTest, IdempotencyKeysSurviveRestartAndSegmentDeletion) {
  LogDeliveryStoreOptions o = Options();
  o.retention = absl::Hours(1);
  std::string first;
  {
    auto s = Open(o);
    first = Append(*s, "once", {"user:1"}, "key-1");
    absl::StatusOr<AppendResult> again = AppendSync(*s, MakeDelivery("twice", {}, "key-1"));
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->delivery_id, first);
    EXPECT_TRUE(again->duplicate);
    EXPECT_EQ(s->Stats().pending, 1u);
    EXPECT_EQ(s->Stats().duplicates, 1u);
    // Deliver it, then write enough to roll several segments so that the one holding it is
    // deleted and its key lives on in a carry record.
    LeasePayloads(*s);
    ASSERT_TRUE(CompleteSync(*s, first, DeliveryOutcome::Delivered()).ok());
    const std::string filler(4000, 'f');
    for (int i = 0; i < 100; ++i) {
      const std::string id = Append(*s, filler);
      std::vector<LeasedDelivery> l;
      LeasePayloads(*s, 10, &l);
      for (const LeasedDelivery& d : l) {
        ASSERT_TRUE(CompleteSync(*s, d.info.delivery_id, DeliveryOutcome::Delivered()).ok());
      }
    }
    EXPECT_GT(s->Stats().segments_deleted, 0u);
    EXPECT_GT(s->Stats().records_carried, 0u);
  }
  {
    auto s = Open(o);
    absl::StatusOr<AppendResult> again = AppendSync(*s, MakeDelivery("thrice", {}, "key-1"));
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->delivery_id, first);
    EXPECT_TRUE(again->duplicate);
    absl::StatusOr<DeliveryInfo> info = GetSync(*s, first);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->state, DeliveryState::kDelivered);
    EXPECT_EQ(info->idempotency_key, "key-1");
    // Past the retention the key is free again and the delivery is forgotten.
    clock_.Advance(absl::Hours(1) + absl::Seconds(1));
    absl::StatusOr<AppendResult> fresh = AppendSync(*s, MakeDelivery("new", {}, "key-1"));
    ASSERT_TRUE(fresh.ok());
    EXPECT_NE(fresh->delivery_id, first);
    EXPECT_FALSE(fresh->duplicate);
    EXPECT_EQ(GetSync(*s, first).status().code(), absl::StatusCode::kNotFound);
  }
}

TEST_F(LogDeliveryStoreTest, DuplicateOfAnAppendStillBeingWrittenWaitsForIt) {
  auto s = Open();
  std::promise<absl::StatusOr<AppendResult>> p1, p2;
  s->Append(MakeDelivery("a", {}, "k"), [&](absl::StatusOr<AppendResult> r) { p1.set_value(r); });
  s->Append(MakeDelivery("b", {}, "k"), [&](absl::StatusOr<AppendResult> r) { p2.set_value(r); });
  absl::StatusOr<AppendResult> r1 = p1.get_future().get(), r2 = p2.get_future().get();
  ASSERT_TRUE(r1.ok() && r2.ok());
  EXPECT_EQ(r1->delivery_id, r2->delivery_id);
  EXPECT_TRUE(r2->duplicate);
  EXPECT_EQ(s->Stats().pending, 1u);
}

TEST_F(LogDeliveryStoreTest, DeliveredSegmentsAreDeletedAndStuckRecordsCarried) {
  LogDeliveryStoreOptions o = Options();
  // Delivered records' metadata stays (carried forward) for the retention period; a short one
  // here lets the log shrink to what is still live.
  o.retention = absl::Seconds(30);
  auto s = Open(o);
  const std::string payload(1000, 'x');
  const std::string stuck = Append(*s, "stuck", {"user:stuck"});
  const std::string dead = Append(*s, "dead", {"user:dead"});
  LeasePayloads(*s);
  ASSERT_TRUE(CompleteSync(*s, dead, DeliveryOutcome::Dead("400")).ok());
  // `stuck` stays leased (its delivery never finishes); 600 KB of others come and go.
  for (int i = 0; i < 600; ++i) {
    clock_.Advance(absl::Seconds(1));
    const std::string id = Append(*s, payload, {"user:" + std::to_string(i % 7)});
    std::vector<LeasedDelivery> l;
    LeasePayloads(*s, 10, &l);
    for (const LeasedDelivery& d : l) {
      ASSERT_TRUE(CompleteSync(*s, d.info.delivery_id, DeliveryOutcome::Delivered()).ok());
    }
  }
  DeliveryStoreStats st = s->Stats();
  EXPECT_GT(st.segments_deleted, 5u);
  EXPECT_LE(st.segments, 3u) << "bytes " << st.bytes << " deleted " << st.segments_deleted
                             << " carried " << st.records_carried;
  EXPECT_LT(st.bytes, 260u << 10);
  EXPECT_GE(st.records_carried, 2u);
  EXPECT_EQ(st.pending, 1u);
  EXPECT_EQ(st.dead, 1u);
  EXPECT_EQ(SegmentFiles().size(), st.segments);
  s.reset();

  s = Open(o);
  std::vector<LeasedDelivery> l;
  EXPECT_THAT(LeasePayloads(*s, 10, &l), ElementsAre("stuck"));
  EXPECT_TRUE(l[0].in_doubt);
  std::vector<absl::Status> r = RedriveSync(*s, {dead});
  ASSERT_TRUE(r[0].ok()) << r[0];
  EXPECT_THAT(LeasePayloads(*s), ElementsAre("dead"));
}

TEST_F(LogDeliveryStoreTest, FullQueueRefusesAppendsAndLosesNothing) {
  LogDeliveryStoreOptions o = Options();
  o.max_bytes = 128 << 10;
  std::vector<std::string> acked;
  {
    auto s = Open(o);
    const std::string payload(1000, 'y');
    absl::Status refused;
    for (int i = 0; i < 1000 && refused.ok(); ++i) {
      absl::StatusOr<AppendResult> r = AppendSync(*s, MakeDelivery(payload + std::to_string(i)));
      if (r.ok()) {
        acked.push_back(r->delivery_id);
      } else {
        refused = r.status();
      }
    }
    EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(refused.message(), HasSubstr("queue_max_bytes"));
    EXPECT_GT(acked.size(), 100u);
    EXPECT_EQ(s->Stats().refused_full, 1u);
    EXPECT_LE(s->Stats().bytes, o.max_bytes);
    // Draining makes room again.
    for (int round = 0; round < 3; ++round) {
      std::vector<LeasedDelivery> l;
      LeasePayloads(*s, 1000, &l);
      for (const LeasedDelivery& d : l) {
        ASSERT_TRUE(CompleteSync(*s, d.info.delivery_id, DeliveryOutcome::Delivered()).ok());
      }
    }
    absl::StatusOr<AppendResult> r = AppendSync(*s, MakeDelivery(payload));
    ASSERT_TRUE(r.ok()) << r.status() << " bytes " << s->Stats().bytes;
    acked.push_back(r->delivery_id);
  }
  auto s = Open(o);
  for (const std::string& id : acked) {
    absl::StatusOr<DeliveryInfo> info = GetSync(*s, id);
    ASSERT_TRUE(info.ok()) << id << ": " << info.status();
  }
  EXPECT_EQ(s->Stats().pending, 1u);
}

TEST_F(LogDeliveryStoreTest, TornTailAtEveryByteOfTheLastRecordIsDroppedOnReplay) {
  std::vector<std::string> ids;
  {
    auto s = Open();
    for (int i = 0; i < 5; ++i) ids.push_back(Append(*s, "payload-" + std::to_string(i), {"u"}));
  }
  // The newest segment holds the five records; find where the last one starts.
  const fs::path seg = SegmentFiles().back();
  const std::string original = [&] {
    std::ifstream in(seg, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  uint64_t last_offset = 0;
  delivery_log::ScanSegment(original, 0,
                            [&](const delivery_log::ScannedRecord& r) { last_offset = r.offset; });
  ASSERT_GT(last_offset, 0u);
  const fs::path pristine = folder_.path() + "/pristine";
  fs::copy(Options().dir, pristine);
  for (uint64_t cut = last_offset; cut < original.size(); ++cut) {
    fs::remove_all(Options().dir);
    fs::copy(pristine, Options().dir);
    fs::resize_file(Options().dir + "/" + seg.filename().string(), cut);
    auto s = Open();
    ASSERT_NE(s, nullptr);
    DeliveryStoreStats st = s->Stats();
    EXPECT_EQ(st.torn_tail_bytes, cut - last_offset) << "cut " << cut;
    EXPECT_EQ(st.corrupt_regions, 0u);
    EXPECT_EQ(st.pending, 4u);
    EXPECT_EQ(GetSync(*s, ids[4]).status().code(), absl::StatusCode::kNotFound);
    // Appends go on after the cut, and a second replay finds nothing torn.
    const std::string id = Append(*s, "later", {"u"});
    s.reset();
    s = Open();
    EXPECT_EQ(s->Stats().torn_tail_bytes, 0u);
    EXPECT_EQ(s->Stats().pending, 5u);
    std::vector<std::string> p = LeasePayloads(*s);
    EXPECT_THAT(p, ElementsAre("payload-0"));
    ASSERT_TRUE(GetSync(*s, id).ok());
  }
}

TEST_F(LogDeliveryStoreTest, FlippedBitsDropOnlyTheDamagedRecord) {
  std::vector<std::string> ids;
  {
    auto s = Open();
    for (int i = 0; i < 5; ++i) ids.push_back(Append(*s, "payload-" + std::to_string(i)));
  }
  const fs::path seg = SegmentFiles().back();
  std::string data = [&] {
    std::ifstream in(seg, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  std::vector<uint64_t> offsets;
  delivery_log::ScanSegment(
      data, 0, [&](const delivery_log::ScannedRecord& r) { offsets.push_back(r.offset); });
  ASSERT_EQ(offsets.size(), 5u);
  data[offsets[2] + 20] ^= 0x04;  // Inside record 3's body.
  {
    std::ofstream out(seg, std::ios::binary | std::ios::trunc);
    out << data;
  }
  auto s = Open();
  DeliveryStoreStats st = s->Stats();
  EXPECT_EQ(st.corrupt_regions, 1u);
  EXPECT_EQ(st.corrupt_bytes, offsets[3] - offsets[2]);
  EXPECT_EQ(st.pending, 4u);
  EXPECT_THAT(LeasePayloads(*s), ElementsAre("payload-0", "payload-1", "payload-3", "payload-4"));
  EXPECT_EQ(GetSync(*s, ids[2]).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(LogDeliveryStoreTest, DamagedSegmentHeaderLosesNoRecords) {
  {
    auto s = Open();
    for (int i = 0; i < 3; ++i) Append(*s, "old-" + std::to_string(i));
  }
  {
    auto s = Open();  // A second segment.
    Append(*s, "new");
  }
  ASSERT_EQ(SegmentFiles().size(), 2u);
  {
    std::fstream f(SegmentFiles().front(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0);
    f.put('X');  // The magic.
  }
  auto s = Open();
  EXPECT_EQ(s->Stats().corrupt_regions, 1u);
  EXPECT_EQ(s->Stats().corrupt_bytes, delivery_log::kSegmentHeaderBytes);
  EXPECT_THAT(LeasePayloads(*s), ElementsAre("old-0", "old-1", "old-2", "new"));
}

TEST_F(LogDeliveryStoreTest, PayloadDamagedAfterOpenBecomesADeadLetterNotACrash) {
  auto s = Open();
  const std::string id = Append(*s, "will-rot");
  const fs::path seg = SegmentFiles().back();
  {
    // Overwrite the payload bytes in place (the store's open descriptor sees the change).
    const int fd = ::open(seg.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    const off_t size = static_cast<off_t>(fs::file_size(seg));
    ASSERT_EQ(::pwrite(fd, "XXXX", 4, size - 12), 4);
    ::close(fd);
  }
  std::vector<LeasedDelivery> l;
  EXPECT_TRUE(LeasePayloads(*s, 10, &l).empty());
  absl::StatusOr<DeliveryInfo> info = GetSync(*s, id);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, DeliveryState::kDead);
  EXPECT_THAT(info->last_error, HasSubstr("stored payload unreadable"));
}

TEST_F(LogDeliveryStoreTest, SecondProcessOnTheSameFolderIsRefused) {
  auto s = Open();
  absl::StatusOr<std::unique_ptr<LogDeliveryStore>> other = LogDeliveryStore::Open(Options());
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(other.status().message(), HasSubstr("in use"));
}

TEST_F(LogDeliveryStoreTest, BadInputAndOptionsNameTheField) {
  auto s = Open();
  EXPECT_THAT(AppendSync(*s, MakeDelivery("")).status().message(), HasSubstr("payload"));
  EXPECT_THAT(AppendSync(*s, MakeDelivery("p", {"a", "a"})).status().message(),
              HasSubstr("ordering_keys[1]"));
  EXPECT_THAT(AppendSync(*s, MakeDelivery("p", {}, std::string(300, 'k'))).status().message(),
              HasSubstr("idempotency_key"));
  EXPECT_EQ(LeaseSync(*s, 0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GetSync(*s, "not-an-id").status().code(), absl::StatusCode::kNotFound);

  LogDeliveryStoreOptions o = Options();
  o.dir = folder_.path() + "/other";
  o.max_bytes = o.segment_bytes;
  EXPECT_THAT(LogDeliveryStore::Open(o).status().message(), HasSubstr("max_bytes"));
  o.dir = "";
  EXPECT_THAT(LogDeliveryStore::Open(o).status().message(), HasSubstr("queue_dir"));
}

TEST_F(LogDeliveryStoreTest, ClosedStoreCancels) {
  auto s = Open();
  s->Close();
  EXPECT_EQ(AppendSync(*s, MakeDelivery("late")).status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(LeaseSync(*s, 1).status().code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace userpilot::gateway
