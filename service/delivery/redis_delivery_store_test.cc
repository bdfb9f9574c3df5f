// RedisDeliveryStore against a real redis-server (append-only, fsync always) on a free
// loopback port.
#include "service/delivery/redis_delivery_store.h"

#include <future>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/delivery/delivery_store_test_util.h"
#include "tests/redis/redis_server.h"

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
using testing::RedisServer;
using testing::RedriveSync;
using testing::RenewSync;
using testing::TestClock;

class RedisDeliveryStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RedisServer::Options o;
    o.extra_args = {"--appendonly", "yes", "--appendfsync", "always"};
    absl::StatusOr<std::unique_ptr<RedisServer>> s = RedisServer::Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
  }

  RedisDeliveryStoreOptions Options(std::string consumer = "replica-a") {
    RedisDeliveryStoreOptions o;
    o.url = server_->url();
    o.consumer = std::move(consumer);
    o.max_bytes = 1 << 20;
    return o;
  }
  std::unique_ptr<RedisDeliveryStore> Open(RedisDeliveryStoreOptions o) {
    absl::StatusOr<std::unique_ptr<RedisDeliveryStore>> s = RedisDeliveryStore::Open(o);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }
  std::string Append(DeliveryStore& s, std::string payload, std::vector<std::string> keys = {},
                     std::string key = "", uint32_t kind = 0) {
    absl::StatusOr<AppendResult> r =
        AppendSync(s, MakeDelivery(std::move(payload), std::move(keys), std::move(key), kind));
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->delivery_id : "";
  }
  std::vector<std::string> Payloads(DeliveryStore& s, size_t max = 100,
                                    std::vector<LeasedDelivery>* out = nullptr,
                                    std::vector<uint32_t> kinds = {}) {
    absl::StatusOr<std::vector<LeasedDelivery>> r = LeaseSync(s, max, std::move(kinds));
    EXPECT_TRUE(r.ok()) << r.status();
    std::vector<std::string> p;
    if (!r.ok()) return p;
    for (const LeasedDelivery& d : *r) p.push_back(d.payload);
    if (out) *out = std::move(*r);
    return p;
  }

  std::unique_ptr<RedisServer> server_;
};

TEST_F(RedisDeliveryStoreTest, RecordsInARetryWaitOrOfOtherKindsDoNotHideReadyOnes) {
  auto s = Open(Options());
  for (int i = 0; i < 50; ++i) Append(*s, "w" + std::to_string(i), {"user:" + std::to_string(i)});
  std::vector<LeasedDelivery> l;
  Payloads(*s, 100, &l);
  ASSERT_EQ(l.size(), 50u);
  for (const LeasedDelivery& d : l) {
    ASSERT_TRUE(CompleteSync(*s, d.info.delivery_id,
                             DeliveryOutcome::Retry("429", absl::Now() + absl::Hours(1)))
                    .ok());
  }
  for (int i = 0; i < 50; ++i)
    Append(*s, "t" + std::to_string(i), {"user:t" + std::to_string(i)}, "", 7);
  Append(*s, "fresh", {"user:fresh"});
  EXPECT_THAT(Payloads(*s, 1, nullptr, {0}), ElementsAre("fresh"));
}

TEST_F(RedisDeliveryStoreTest, OrderingKeysKindsAndOutcomes) {
  auto s = Open(Options());
  const std::string a1 = Append(*s, "a1", {"user:a"}, "", 1);
  const std::string b1 = Append(*s, "b1", {"user:b", "company:x"}, "", 1);
  Append(*s, "a2", {"user:a"}, "", 1);
  Append(*s, "c1", {"user:c", "company:x"}, "", 2);
  Append(*s, "free", {}, "", 3);
  EXPECT_THAT(Payloads(*s, 100, nullptr, {1, 2}), ElementsAre("a1", "b1"));
  EXPECT_THAT(Payloads(*s), ElementsAre("free"));
  EXPECT_THAT(Payloads(*s), ElementsAre());

  ASSERT_TRUE(
      CompleteSync(*s, a1, DeliveryOutcome::Retry("503", absl::Now() + absl::Hours(1))).ok());
  EXPECT_THAT(Payloads(*s), ElementsAre());  // a1 waits; a2 stays behind it.
  ASSERT_TRUE(CompleteSync(*s, b1, DeliveryOutcome::Delivered()).ok());
  std::vector<LeasedDelivery> leased;
  EXPECT_THAT(Payloads(*s, 100, &leased), ElementsAre("c1"));
  EXPECT_EQ(leased[0].info.kind, 2u);
  EXPECT_THAT(leased[0].info.ordering_keys, ElementsAre("user:c", "company:x"));
  EXPECT_EQ(leased[0].info.attempts, 1u);
  EXPECT_FALSE(leased[0].in_doubt);

  absl::StatusOr<DeliveryInfo> info = GetSync(*s, a1);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->state, DeliveryState::kPending);
  EXPECT_EQ(info->last_error, "503");
  info = GetSync(*s, b1);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, DeliveryState::kDelivered);
  EXPECT_EQ(GetSync(*s, "r999").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(CompleteSync(*s, b1, DeliveryOutcome::Delivered()).code(),
            absl::StatusCode::kFailedPrecondition);
  // Delivered entries leave the stream; the backlog is what is left.
  EXPECT_EQ(*server_->Command({"XLEN", "{upgw-delivery}:stream"}), "4");
  ASSERT_TRUE([&] {
    std::promise<absl::Status> p;
    s->RefreshStats([&](absl::Status st) { p.set_value(st); });
    return p.get_future().get().ok();
  }());
  EXPECT_EQ(s->Stats().pending, 4u);
  EXPECT_EQ(s->Stats().leased, 2u);
  EXPECT_EQ(s->Stats().appends, 5u);
  // By kind: only what is ready to lease (a1 waits, a2 is behind it, c1 and free are leased).
  EXPECT_TRUE(s->Stats().pending_by_kind.empty());
  Append(*s, "d1", {"user:d"}, "", 1);
  Append(*s, "e1", {"user:e"}, "", 1);
  Append(*s, "f2", {"user:f"}, "", 2);
  Append(*s, "d2", {"user:d"}, "", 1);  // Behind d1.
  ASSERT_TRUE([&] {
    std::promise<absl::Status> p;
    s->RefreshStats([&](absl::Status st) { p.set_value(st); });
    return p.get_future().get().ok();
  }());
  EXPECT_THAT(s->Stats().pending_by_kind,
              ElementsAre(::testing::Pair(1u, 2u), ::testing::Pair(2u, 1u)));
}

TEST_F(RedisDeliveryStoreTest, IdempotencyKeyAnswersTheFirstId) {
  auto s = Open(Options());
  const std::string first = Append(*s, "once", {}, "k");
  absl::StatusOr<AppendResult> again = AppendSync(*s, MakeDelivery("twice", {}, "k"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->delivery_id, first);
  EXPECT_TRUE(again->duplicate);
  EXPECT_THAT(Payloads(*s), ElementsAre("once"));
  ASSERT_TRUE(CompleteSync(*s, first, DeliveryOutcome::Delivered()).ok());
  // Still remembered after delivery, for the retention period (a TTL on Redis's clock).
  again = AppendSync(*s, MakeDelivery("thrice", {}, "k"));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->delivery_id, first);
  absl::StatusOr<std::string> ttl = server_->Command({"PTTL", "{upgw-delivery}:idem:k"});
  ASSERT_TRUE(ttl.ok());
  EXPECT_GT(std::stoll(*ttl), 0);
}

TEST_F(RedisDeliveryStoreTest, DeadLettersListAndRedrive) {
  auto s = Open(Options());
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(Append(*s, "bad" + std::to_string(i), {"user:a"}));
  for (int i = 0; i < 3; ++i) {
    std::vector<LeasedDelivery> l;
    Payloads(*s, 10, &l);
    ASSERT_EQ(l.size(), 1u);
    ASSERT_TRUE(
        CompleteSync(*s, l[0].info.delivery_id, DeliveryOutcome::Dead("400: bad email")).ok());
  }
  std::vector<std::string> seen;
  std::string token;
  do {
    absl::StatusOr<DeadLetterPage> page = ListDeadSync(*s, 2, token);
    ASSERT_TRUE(page.ok()) << page.status();
    for (const DeliveryInfo& d : page->dead) {
      seen.push_back(d.delivery_id);
      EXPECT_EQ(d.last_error, "400: bad email");
      EXPECT_EQ(d.state, DeliveryState::kDead);
    }
    token = page->next_page_token;
  } while (!token.empty());
  EXPECT_EQ(seen, ids);

  std::vector<absl::Status> st = RedriveSync(*s, {ids[1], "r999", ids[1]});
  EXPECT_TRUE(st[0].ok()) << st[0];
  EXPECT_EQ(st[1].code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(st[2].code(), absl::StatusCode::kFailedPrecondition);
  std::vector<LeasedDelivery> l;
  EXPECT_THAT(Payloads(*s, 10, &l), ElementsAre("bad1"));
  EXPECT_EQ(l[0].info.attempts, 2u);
}

TEST_F(RedisDeliveryStoreTest, FullQueueRefusesAppends) {
  RedisDeliveryStoreOptions o = Options();
  o.max_bytes = 10000;
  auto s = Open(o);
  int acked = 0;
  absl::Status refused;
  while (refused.ok()) {
    absl::StatusOr<AppendResult> r = AppendSync(*s, MakeDelivery(std::string(1000, 'x')));
    if (r.ok()) {
      ++acked;
    } else {
      refused = r.status();
    }
  }
  EXPECT_EQ(acked, 10);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.message(), HasSubstr("queue_max_bytes"));
  std::vector<LeasedDelivery> l;
  Payloads(*s, 1, &l);
  ASSERT_TRUE(CompleteSync(*s, l[0].info.delivery_id, DeliveryOutcome::Delivered()).ok());
  EXPECT_TRUE(AppendSync(*s, MakeDelivery(std::string(1000, 'x'))).ok());
}

TEST_F(RedisDeliveryStoreTest, ADeadConsumersEntriesAreClaimedByAnotherInOrder) {
  RedisDeliveryStoreOptions oa = Options("replica-a"), ob = Options("replica-b");
  oa.lease_timeout = ob.lease_timeout = absl::Milliseconds(300);
  auto a = Open(oa);
  auto b = Open(ob);
  Append(*a, "u1-first", {"user:1"});
  Append(*b, "u2-first", {"user:2"});
  Append(*a, "u1-second", {"user:1"});
  EXPECT_THAT(Payloads(*a), ElementsAre("u1-first", "u2-first"));
  // Replica b may not overtake a on user 1, nor take what a holds.
  EXPECT_THAT(Payloads(*b), ElementsAre());
  // Replica a dies without completing anything.
  a->Close();
  a.reset();
  EXPECT_THAT(Payloads(*b), ElementsAre());  // Not before the lease timeout.
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  std::vector<LeasedDelivery> l;
  EXPECT_THAT(Payloads(*b, 100, &l), ElementsAre("u1-first", "u2-first"));
  for (const LeasedDelivery& d : l) {
    EXPECT_TRUE(d.in_doubt) << d.payload;
    EXPECT_EQ(d.info.attempts, 2u);
  }
  // The stream entries now belong to b in the consumer group.
  absl::StatusOr<std::string> pel =
      server_->Command({"XPENDING", "{upgw-delivery}:stream", "dispatchers"});
  ASSERT_TRUE(pel.ok());
  EXPECT_THAT(*pel, HasSubstr("replica-b"));
  EXPECT_THAT(*pel, ::testing::Not(HasSubstr("replica-a")));
  // A late completion from the dead replica's name is refused.
  auto a2 = Open(oa);
  EXPECT_EQ(CompleteSync(*a2, l[0].info.delivery_id, DeliveryOutcome::Delivered()).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(CompleteSync(*b, l[0].info.delivery_id, DeliveryOutcome::Delivered()).ok());
  EXPECT_THAT(Payloads(*a2), ElementsAre("u1-second"));
}

TEST_F(RedisDeliveryStoreTest, ARenewedLeaseIsNotTakenOverAndAnUnrenewedOneIs) {
  TestClock clock;
  RedisDeliveryStoreOptions oa = Options("replica-a"), ob = Options("replica-b");
  oa.clock = ob.clock = [&clock] { return clock.Now(); };
  oa.lease_timeout = ob.lease_timeout = absl::Minutes(1);
  auto a = Open(oa);
  auto b = Open(ob);
  EXPECT_EQ(a->LeaseTimeout(), absl::Minutes(1));
  Append(*a, "renewed", {"user:1"});
  Append(*a, "left", {"user:2"});
  Append(*a, "behind-renewed", {"user:1"});
  std::vector<LeasedDelivery> l;
  EXPECT_THAT(Payloads(*a, 100, &l), ElementsAre("renewed", "left"));
  const std::string renewed = l[0].info.delivery_id, left = l[1].info.delivery_id;
  // Real idle time passes for both stream entries; only the renewed one's starts again.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  clock.Advance(absl::Seconds(40));
  std::vector<absl::Status> r = RenewSync(*a, {renewed, "r999"});
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(r[0].ok()) << r[0];
  EXPECT_EQ(r[1].code(), absl::StatusCode::kNotFound);
  absl::StatusOr<std::string> pel =
      server_->Command({"XPENDING", "{upgw-delivery}:stream", "dispatchers", "-", "+", "10"});
  ASSERT_TRUE(pel.ok());
  // Per entry, in order (every entry read into the group is pending): id, consumer, idle ms,
  // deliveries.
  std::vector<std::string> f = absl::StrSplit(*pel, '\n');
  ASSERT_EQ(f.size(), 12u) << *pel;
  EXPECT_EQ(f[1], "replica-a");
  EXPECT_EQ(f[5], "replica-a");
  int64_t idle_renewed = 0, idle_left = 0;
  ASSERT_TRUE(absl::SimpleAtoi(f[2], &idle_renewed) && absl::SimpleAtoi(f[6], &idle_left));
  EXPECT_LT(idle_renewed, idle_left);
  EXPECT_GE(idle_left, 50);

  // Past the first lease's timeout: b takes over the unrenewed lease, not the renewed one,
  // and nothing behind the renewed one for its user.
  clock.Advance(absl::Seconds(30));
  std::vector<LeasedDelivery> taken;
  EXPECT_THAT(Payloads(*b, 100, &taken), ElementsAre("left"));
  EXPECT_TRUE(taken[0].in_doubt);
  // a learns that it lost `left`, and still holds `renewed`.
  r = RenewSync(*a, {renewed, left});
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(r[0].ok()) << r[0];
  EXPECT_EQ(r[1].code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r[1].message(), HasSubstr("not leased by replica-a"));
  EXPECT_EQ(CompleteSync(*a, left, DeliveryOutcome::Delivered()).code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(CompleteSync(*b, left, DeliveryOutcome::Delivered()).ok());
  // Renewed at +70s: held until +130s, then b may take it.
  clock.Advance(absl::Seconds(55));
  EXPECT_THAT(Payloads(*b), ElementsAre());
  clock.Advance(absl::Seconds(10));
  EXPECT_THAT(Payloads(*b), ElementsAre("renewed"));
  // Renewing nothing answers nothing.
  EXPECT_TRUE(RenewSync(*a, {}).empty());
}

TEST_F(RedisDeliveryStoreTest, RedisDownAnswersUnavailableAndLosesNothingAcknowledged) {
  RedisDeliveryStoreOptions o = Options();
  o.command_timeout = absl::Milliseconds(500);
  auto s = Open(o);
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) ids.push_back(Append(*s, "kept-" + std::to_string(i), {"u"}));
  server_->Stop();  // SIGKILL: only the AOF survives.
  absl::StatusOr<AppendResult> r = AppendSync(*s, MakeDelivery("lost"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(r.status().message(), HasSubstr(server_->url().substr(0, 20)));
  ASSERT_TRUE(server_->Restart().ok());
  // The client reconnects with backoff; then every acknowledged append is there.
  absl::StatusOr<DeliveryInfo> info;
  for (int i = 0; i < 100; ++i) {
    info = GetSync(*s, ids.back());
    if (info.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(info.ok()) << info.status();
  for (const std::string& id : ids) EXPECT_TRUE(GetSync(*s, id).ok()) << id;
  EXPECT_THAT(Payloads(*s), ElementsAre("kept-0"));
}

TEST_F(RedisDeliveryStoreTest, RefusesRedisWithoutAppendOnly) {
  absl::StatusOr<std::unique_ptr<RedisServer>> plain = RedisServer::Start();
  ASSERT_TRUE(plain.ok()) << plain.status();
  RedisDeliveryStoreOptions o = Options();
  o.url = (*plain)->url();
  absl::StatusOr<std::unique_ptr<RedisDeliveryStore>> s = RedisDeliveryStore::Open(o);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.status().message(), HasSubstr("appendonly"));
  o.require_append_only = false;
  EXPECT_TRUE(RedisDeliveryStore::Open(o).ok());
  o.consumer = "";
  EXPECT_THAT(RedisDeliveryStore::Open(o).status().message(), HasSubstr("consumer"));
}

}  // namespace
}  // namespace userpilot::gateway
