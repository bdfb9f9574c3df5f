// The Dispatcher over a real embedded log, a scripted stub that holds every call until the test
// answers it, and a FakeScheduler: per-user order with one call in flight per user, dead
// letters and redrive, retries after the backoff, the pace that leaves synchronous callers
// their share, the in-flight bound, and stopping. Time moves only when the test says; the test
// waits (never times) for the store's writer thread.
#include "service/delivery/dispatcher.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/delivery/enqueued_call.h"
#include "service/delivery/log_delivery_store.h"
#include "tests/delivery/delivery_store_test_util.h"
#include "tests/mocks/fake_scheduler.h"

namespace userpilot::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::TempFolder;

// Holds every call; the test answers them in any order.
class ScriptedStub final : public RpcDispatcher<ScriptedStub> {
 public:
  struct Sent {
    std::string rpc;
    std::string user;   // user_id, or company_id
    std::string event;  // track: event_name
    std::string caller;
    std::function<void(absl::Status, CallFacts)> answer;
  };

  template <typename Rpc>
  void Call(const CallOptions& options, const typename Rpc::Request& request,
            StubCallback<typename Rpc::Response> done) {
    ScriptedStub::Sent call;
    call.rpc = std::string(Rpc::kName);
    call.caller = options.caller;
    if constexpr (std::is_same_v<typename Rpc::Request, v1::TrackEventRequest>) {
      call.user = request.user_id();
      call.event = request.event_name();
    } else if constexpr (std::is_same_v<typename Rpc::Request, v1::IdentifyUserRequest>) {
      call.user = request.user_id();
    } else if constexpr (std::is_same_v<typename Rpc::Request, v1::IdentifyCompanyRequest>) {
      call.user = request.company_id();
    }
    auto shared = std::make_shared<StubCallback<typename Rpc::Response>>(std::move(done));
    call.answer = [shared](absl::Status status, CallFacts facts) {
      if (status.ok()) {
        std::move (*shared)(Result<typename Rpc::Response>(typename Rpc::Response(), facts));
      } else {
        std::move (*shared)(Result<typename Rpc::Response>(status, facts));
      }
    };
    std::lock_guard<std::mutex> lock(mu_);
    calls_.push_back(std::move(call));
    ++total_;
  }

  size_t outstanding() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_.size();
  }
  size_t total() {
    std::lock_guard<std::mutex> lock(mu_);
    return total_;
  }
  std::vector<std::string> users_outstanding() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> users;
    for (const auto& call : calls_) users.push_back(call.user);
    return users;
  }
  // Takes the oldest outstanding call (of `user`, when given).
  ScriptedStub::Sent Take(const std::string& user = "") {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = calls_.begin(); it != calls_.end(); ++it) {
      if (user.empty() || it->user == user) {
        ScriptedStub::Sent call = std::move(*it);
        calls_.erase(it);
        return call;
      }
    }
    ADD_FAILURE() << "no outstanding call for '" << user << "'";
    return {};
  }

 private:
  std::mutex mu_;
  std::deque<Sent> calls_;
  size_t total_ = 0;
};

// Waits (up to 20 s of real time, for the store's writer thread) until `done()`.
bool WaitUntil(const std::function<bool()>& done) {
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (!done()) {
    if (absl::Now() > give_up) return false;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return true;
}

v1::EnqueueRequest Track(const std::string& user, const std::string& event) {
  v1::EnqueueRequest request;
  request.mutable_track_event()->set_user_id(user);
  request.mutable_track_event()->set_event_name(event);
  return request;
}

CallFacts Rejected(int http_status) {
  CallFacts facts;
  facts.reason = ErrorReason::kUpstreamRejectedRequest;
  facts.upstream.http_status = http_status;
  return facts;
}

class DispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LogDeliveryStoreOptions options;
    options.dir = folder_.path();
    options.clock = [this] { return scheduler_.Now(); };
    auto store = LogDeliveryStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }
  void TearDown() override {
    if (dispatcher_ != nullptr) {
      dispatcher_->Stop();
      // Whatever is still held is answered, so Join() can return.
      while (stub_.outstanding() > 0) {
        stub_.Take().answer(absl::UnavailableError("test over"), CallFacts());
      }
      dispatcher_->Join();
    }
    store_->Close();
  }

  void StartDispatcher(DispatcherOptions options = {}) {
    options.observer.on_attempt = [this](DeliveryAttemptOutcome outcome, bool in_doubt) {
      std::lock_guard<std::mutex> lock(mu_);
      ++outcomes_[std::string(DeliveryAttemptOutcomeName(outcome))];
      if (in_doubt) ++in_doubt_;
    };
    dispatcher_ = std::make_unique<Dispatcher>(*store_, stub_, scheduler_, std::move(options));
    dispatcher_->Start();
  }

  std::string Enqueue(const v1::EnqueueRequest& request) {
    auto appended = testing::AppendSync(*store_, ToNewDelivery(request));
    EXPECT_TRUE(appended.ok()) << appended.status();
    if (dispatcher_ != nullptr) dispatcher_->Wake();
    return appended.ok() ? appended->delivery_id : "";
  }

  DeliveryState StateOf(const std::string& id) {
    auto info = testing::GetSync(*store_, id);
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? info->state : DeliveryState::kPending;
  }

  int Outcomes(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    return outcomes_[name];
  }

  TempFolder folder_;
  FakeScheduler scheduler_;
  ScriptedStub stub_;
  std::unique_ptr<LogDeliveryStore> store_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::mutex mu_;
  std::map<std::string, int> outcomes_;
  int in_doubt_ = 0;
};

TEST_F(DispatcherTest, DeliversInPerUserOrderOneCallPerUserInFlight) {
  std::vector<std::string> ids;
  for (const char* event : {"a1", "a2", "a3"}) ids.push_back(Enqueue(Track("alice", event)));
  for (const char* event : {"b1", "b2"}) ids.push_back(Enqueue(Track("bob", event)));
  StartDispatcher();
  std::map<std::string, std::vector<std::string>> received;
  for (int delivered = 0; delivered < 5; ++delivered) {
    ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding() > 0; }));
    // Never two calls for one user at once.
    std::vector<std::string> users = stub_.users_outstanding();
    std::sort(users.begin(), users.end());
    EXPECT_EQ(std::adjacent_find(users.begin(), users.end()), users.end());
    ScriptedStub::Sent call = stub_.Take();
    EXPECT_EQ(call.rpc, "TrackEvent");
    EXPECT_EQ(call.caller, "delivery");
    received[call.user].push_back(call.event);
    call.answer(absl::OkStatus(), CallFacts());
  }
  EXPECT_THAT(received["alice"], ElementsAre("a1", "a2", "a3"));
  EXPECT_THAT(received["bob"], ElementsAre("b1", "b2"));
  ASSERT_TRUE(WaitUntil([&] { return Outcomes("delivered") == 5; }));
  ASSERT_TRUE(WaitUntil([&] { return store_->Stats().pending == 0; }));
  for (const std::string& id : ids) EXPECT_EQ(StateOf(id), DeliveryState::kDelivered);
  EXPECT_EQ(stub_.total(), 5u);
}

TEST_F(DispatcherTest, A400IsADeadLetterWithTheReasonAndRedriveSendsItAgain) {
  const std::string bad = Enqueue(Track("carol", "bad"));
  const std::string next = Enqueue(Track("carol", "next"));
  StartDispatcher();
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding() == 1; }));
  stub_.Take().answer(absl::InvalidArgumentError("event_name is not allowed"), Rejected(400));
  // The dead letter does not block its user: the next call goes.
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding() == 1; }));
  ScriptedStub::Sent second = stub_.Take();
  EXPECT_EQ(second.event, "next");
  second.answer(absl::OkStatus(), CallFacts());
  ASSERT_TRUE(WaitUntil([&] { return Outcomes("delivered") == 1; }));
  auto info = testing::GetSync(*store_, bad);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, DeliveryState::kDead);
  EXPECT_THAT(info->last_error, HasSubstr("HTTP 400"));
  EXPECT_THAT(info->last_error, HasSubstr("event_name is not allowed"));
  EXPECT_EQ(Outcomes("dead"), 1);

  ASSERT_THAT(testing::RedriveSync(*store_, {bad}), ElementsAre(absl::OkStatus()));
  dispatcher_->Wake();
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding() == 1; }));
  ScriptedStub::Sent again = stub_.Take();
  EXPECT_EQ(again.event, "bad");
  again.answer(absl::OkStatus(), CallFacts());
  ASSERT_TRUE(WaitUntil([&] { return Outcomes("delivered") == 2; }));
  ASSERT_TRUE(WaitUntil([&] { return StateOf(bad) == DeliveryState::kDelivered; }));
}

TEST_F(DispatcherTest, RetriesAfterTheBackoffNotBefore) {
  DispatcherOptions options;
  options.min_backoff = absl::Seconds(2);
  options.idle_poll = absl::Milliseconds(500);
  const std::string id = Enqueue(Track("dave", "e"));
  StartDispatcher(options);
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding() == 1; }));
  CallFacts unavailable;
  unavailable.reason = ErrorReason::kUpstreamUnavailable;
  unavailable.upstream.http_status = 503;
  stub_.Take().answer(absl::UnavailableError("upstream 503"), unavailable);
  ASSERT_TRUE(WaitUntil([&] { return Outcomes("retry") == 1; }));
  ASSERT_TRUE(WaitUntil([&] { return dispatcher_->in_flight() == 0; }));
  // Polls before the backoff ends find nothing ready.
  for (int i = 0; i < 3; ++i) {
    scheduler_.AdvanceBy(absl::Milliseconds(500));
    absl::SleepFor(absl::Milliseconds(20));  // Lets a wrongly leased record reach the stub.
  }
  EXPECT_EQ(stub_.total(), 1u);
  // After it, the next poll sends it again.
  ASSERT_TRUE(WaitUntil([&] {
    scheduler_.AdvanceBy(absl::Milliseconds(500));
    return stub_.outstanding() == 1;
  }));
  stub_.Take().answer(absl::OkStatus(), CallFacts());
  ASSERT_TRUE(WaitUntil([&] { return StateOf(id) == DeliveryState::kDelivered; }));
  auto info = testing::GetSync(*store_, id);
  EXPECT_EQ(info->attempts, 2u);
}

TEST_F(DispatcherTest, PacesItselfToLeaveSynchronousCallersTheirShare) {
  // A 10-per-second budget with half kept for synchronous callers: one dispatch per 200 ms.
  DispatcherOptions options;
  const absl::Duration pace = PaceFor(10, absl::Seconds(1), 0.5, 1);
  EXPECT_EQ(pace, absl::Milliseconds(200));
  EXPECT_EQ(PaceFor(10, absl::Seconds(1), 0.5, 5), absl::Seconds(1));   // 5 replicas: 1 each.
  EXPECT_EQ(PaceFor(10, absl::Seconds(1), 0.95, 1), absl::Seconds(1));  // Never stalls.
  options.pace[static_cast<size_t>(BudgetId::kTrack)] = pace;
  for (const char* user : {"u1", "u2", "u3"}) Enqueue(Track(user, "e"));
  StartDispatcher(options);
  ASSERT_TRUE(WaitUntil([&] { return dispatcher_->in_flight() == 3; }));
  ASSERT_TRUE(WaitUntil([&] { return stub_.total() == 1; }));
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(stub_.total(), 1u);  // The other two wait for their pace, held leased.
  scheduler_.AdvanceBy(absl::Milliseconds(199));
  EXPECT_EQ(stub_.total(), 1u);
  scheduler_.AdvanceBy(absl::Milliseconds(1));
  EXPECT_EQ(stub_.total(), 2u);
  scheduler_.AdvanceBy(absl::Milliseconds(200));
  EXPECT_EQ(stub_.total(), 3u);
}

TEST_F(DispatcherTest, HoldsAtMostMaxInFlight) {
  DispatcherOptions options;
  options.max_in_flight = 2;
  for (int i = 0; i < 5; ++i) Enqueue(Track("user" + std::to_string(i), "e"));
  StartDispatcher(options);
  for (int delivered = 0; delivered < 5; ++delivered) {
    ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding() == std::min(2, 5 - delivered) * 1u; }));
    absl::SleepFor(absl::Milliseconds(10));
    EXPECT_LE(stub_.outstanding(), 2u);
    EXPECT_LE(dispatcher_->in_flight(), 2u);
    stub_.Take().answer(absl::OkStatus(), CallFacts());
  }
  ASSERT_TRUE(WaitUntil([&] { return Outcomes("delivered") == 5; }));
}

TEST_F(DispatcherTest, StopHandsBackWhatWaitsAndNeverCallsTheStubAgain) {
  DispatcherOptions options;
  options.pace[static_cast<size_t>(BudgetId::kTrack)] = absl::Seconds(10);
  const std::string first = Enqueue(Track("u1", "e"));
  const std::string waiting = Enqueue(Track("u2", "e"));
  StartDispatcher(options);
  ASSERT_TRUE(WaitUntil([&] { return stub_.total() == 1 && dispatcher_->in_flight() == 2; }));
  dispatcher_->Stop();
  ASSERT_TRUE(WaitUntil([&] { return dispatcher_->in_flight() == 1; }));  // Handed back.
  stub_.Take().answer(absl::OkStatus(), CallFacts());  // The one sent still finishes.
  dispatcher_->Join();
  EXPECT_EQ(dispatcher_->in_flight(), 0u);
  EXPECT_EQ(stub_.total(), 1u);
  scheduler_.AdvanceBy(absl::Minutes(1));
  EXPECT_EQ(stub_.total(), 1u);
  EXPECT_EQ(StateOf(first), DeliveryState::kDelivered);
  EXPECT_EQ(StateOf(waiting), DeliveryState::kPending);
  // Leasable again at once (by a restarted gateway).
  auto leased = testing::LeaseSync(*store_, 10);
  ASSERT_TRUE(leased.ok());
  ASSERT_EQ(leased->size(), 1u);
  EXPECT_EQ((*leased)[0].info.delivery_id, waiting);
}

TEST_F(DispatcherTest, AnUndecodableRecordIsADeadLetter) {
  auto appended = testing::AppendSync(*store_, testing::MakeDelivery("\xff\xff not a proto"));
  ASSERT_TRUE(appended.ok());
  StartDispatcher();
  ASSERT_TRUE(WaitUntil([&] { return Outcomes("dead") == 1; }));
  ASSERT_TRUE(WaitUntil([&] { return StateOf(appended->delivery_id) == DeliveryState::kDead; }));
  EXPECT_EQ(stub_.total(), 0u);
}

}  // namespace
}  // namespace userpilot::gateway
