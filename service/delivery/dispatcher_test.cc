// The Dispatcher over a real embedded log, a scripted stub that holds every call until the test
// answers it, and a FakeScheduler: per-user order with one call in flight per user, dead
// letters and redrive, retries after the backoff, the pace that leaves synchronous callers
// their share, the in-flight bound, and stopping. Time moves only when the test says; the test
// waits (never times) for the store's writer thread.
#include "service/delivery/dispatcher.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/delivery/bulk_rows.h"
#include "service/delivery/enqueued_call.h"
#include "service/delivery/log_delivery_store.h"
#include "service/jobs/watch/job_watch_registry.h"
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
    std::vector<std::string> rows;  // A bulk call's ids, in order.
    std::shared_ptr<google::protobuf::Message> request;
    std::function<void(absl::Status, CallFacts)> answer;
    // Answers OK with this response (of the call's response type).
    std::function<void(const google::protobuf::Message&)> reply;
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
    } else if constexpr (std::is_same_v<typename Rpc::Request, v1::BulkIdentifyUsersRequest>) {
      for (const auto& row : request.users()) call.rows.push_back(row.user_id());
    } else if constexpr (std::is_same_v<typename Rpc::Request, v1::BulkIdentifyCompaniesRequest>) {
      for (const auto& row : request.companies()) call.rows.push_back(row.company_id());
    } else if constexpr (std::is_same_v<typename Rpc::Request, v1::GetJobRequest>) {
      call.user = request.job_id();
    }
    if constexpr (std::is_base_of_v<google::protobuf::Message, typename Rpc::Request>) {
      call.request = std::make_shared<typename Rpc::Request>(request);
    }
    auto shared = std::make_shared<StubCallback<typename Rpc::Response>>(std::move(done));
    call.reply = [shared](const google::protobuf::Message& response) {
      typename Rpc::Response typed;
      typed.CopyFrom(response);
      std::move (*shared)(Result<typename Rpc::Response>(std::move(typed), CallFacts()));
    };
    call.answer = [shared](absl::Status status, CallFacts facts) {
      if (status.ok()) {
        std::move (*shared)(Result<typename Rpc::Response>(typename Rpc::Response(), facts));
      } else {
        std::move (*shared)(Result<typename Rpc::Response>(status, facts));
      }
    };
    std::lock_guard<std::mutex> lock(mu_);
    ++totals_[call.rpc];
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
  std::vector<std::string> rpcs_outstanding() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> rpcs;
    for (const auto& call : calls_) rpcs.push_back(call.rpc);
    return rpcs;
  }
  size_t outstanding(const std::string& rpc) {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<size_t>(std::count_if(calls_.begin(), calls_.end(),
                                             [&](const Sent& call) { return call.rpc == rpc; }));
  }
  size_t total(const std::string& rpc) {
    std::lock_guard<std::mutex> lock(mu_);
    return totals_[rpc];
  }
  // Takes the oldest outstanding call of `rpc`.
  ScriptedStub::Sent TakeRpc(const std::string& rpc) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = calls_.begin(); it != calls_.end(); ++it) {
      if (it->rpc == rpc) {
        ScriptedStub::Sent call = std::move(*it);
        calls_.erase(it);
        return call;
      }
    }
    ADD_FAILURE() << "no outstanding " << rpc << " call";
    return {};
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
  std::map<std::string, size_t> totals_;
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

// An identify with a `plan` property; `company` (optional) and its properties.
v1::EnqueueRequest Identify(const std::string& user, const std::string& plan,
                            const std::string& company = "", const std::string& tier = "") {
  v1::EnqueueRequest request;
  v1::IdentifyUserRequest& call = *request.mutable_identify_user();
  call.set_user_id(user);
  (*call.mutable_metadata()->mutable_fields())["plan"].set_string_value(plan);
  if (!company.empty()) {
    call.mutable_company()->set_company_id(company);
    if (!tier.empty()) {
      (*call.mutable_company()->mutable_metadata()->mutable_fields())["tier"].set_string_value(
          tier);
    }
  }
  return request;
}

v1::EnqueueRequest IdentifyCompany(const std::string& company) {
  v1::EnqueueRequest request;
  request.mutable_identify_company()->set_company_id(company);
  return request;
}

v1::Job JobIn(const std::string& id, v1::JobStatus status, const std::string& raw) {
  v1::Job job;
  job.set_job_id(id);
  job.set_status(status);
  job.set_raw_status(raw);
  return job;
}

CallFacts Rejected(int http_status) {
  CallFacts facts;
  facts.reason = ErrorReason::kUpstreamRejectedRequest;
  facts.upstream.http_status = http_status;
  return facts;
}

// The embedded log behind a lease timeout the test sets (the log's own never expires), recording
// each Renew() and answering FAILED_PRECONDITION for the ids the test says another replica took.
class RenewingStore final : public DeliveryStore {
 public:
  explicit RenewingStore(DeliveryStore& store) : store_(store) {}

  void Append(NewDelivery delivery, AppendCallback done) override {
    store_.Append(std::move(delivery), std::move(done));
  }
  void Lease(LeaseOptions options, LeaseCallback done) override {
    store_.Lease(std::move(options), std::move(done));
  }
  void Complete(absl::string_view id, DeliveryOutcome outcome, StatusCallback done) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      most_completing_ = std::max(most_completing_, ++completing_);
    }
    store_.Complete(id, std::move(outcome),
                    [this, done = std::move(done)](absl::Status status) mutable {
                      {
                        std::lock_guard<std::mutex> lock(mu_);
                        --completing_;
                      }
                      std::move(done)(std::move(status));
                    });
  }
  void Get(absl::string_view id, InfoCallback done) override { store_.Get(id, std::move(done)); }
  void ListDeadLetters(size_t max, absl::string_view token, DeadLetterCallback done) override {
    store_.ListDeadLetters(max, token, std::move(done));
  }
  void Redrive(std::vector<std::string> ids, RedriveCallback done) override {
    store_.Redrive(std::move(ids), std::move(done));
  }
  void Renew(std::vector<std::string> ids, RenewCallback done) override {
    std::vector<absl::Status> statuses(ids.size());
    {
      std::lock_guard<std::mutex> lock(mu_);
      renewals_.push_back(ids);
      for (size_t i = 0; i < ids.size(); ++i) {
        if (taken_.count(ids[i]) > 0) statuses[i] = absl::FailedPreconditionError("taken");
      }
    }
    std::move(done)(std::move(statuses));
  }
  absl::Duration LeaseTimeout() const override { return lease_timeout_; }
  DeliveryStoreStats Stats() const override { return store_.Stats(); }
  void Close() override {}

  void set_lease_timeout(absl::Duration timeout) { lease_timeout_ = timeout; }
  void Take(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    taken_.insert(id);
  }
  std::vector<std::vector<std::string>> renewals() {
    std::lock_guard<std::mutex> lock(mu_);
    return renewals_;
  }
  // The most Complete()s outstanding at once so far.
  size_t most_completing() {
    std::lock_guard<std::mutex> lock(mu_);
    return most_completing_;
  }

 private:
  DeliveryStore& store_;
  absl::Duration lease_timeout_ = absl::InfiniteDuration();
  std::mutex mu_;
  std::vector<std::vector<std::string>> renewals_;
  std::set<std::string> taken_;
  size_t completing_ = 0;
  size_t most_completing_ = 0;
};

class DispatcherTest : public ::testing::Test {
 protected:
  void SetUp() override { OpenStore(); }
  void OpenStore() {
    LogDeliveryStoreOptions options;
    options.dir = folder_.path();
    options.clock = [this] { return scheduler_.Now(); };
    auto store = LogDeliveryStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    renewing_ = std::make_unique<RenewingStore>(*store_);
  }
  // As after a crash: every pending record is leased without an outcome, then the log is opened
  // again, so they are leased in doubt next. Before StartDispatcher().
  void CrashWithEverythingLeased() {
    ASSERT_TRUE(testing::LeaseSync(*store_, 100).ok());
    ReopenStore();
  }
  // Closes the log and opens it again (the dispatcher, if any, must be gone).
  void ReopenStore() {
    store_->Close();
    renewing_.reset();
    store_.reset();  // Releases the folder's lock.
    OpenStore();
  }
  // Restarts on the same folder (the dispatcher gone, the store reopened) and expects every one
  // of `n` records to be leased again in doubt: no outcome was recorded for them.
  void ExpectInDoubtAfterRestart(size_t n) {
    dispatcher_.reset();
    ReopenStore();
    auto leased = testing::LeaseSync(*store_, 10);
    ASSERT_TRUE(leased.ok());
    ASSERT_EQ(leased->size(), n);
    for (const LeasedDelivery& record : *leased) EXPECT_TRUE(record.in_doubt);
  }
  void TearDown() override {
    if (dispatcher_ != nullptr) {
      dispatcher_->Stop();
      jobs_->Shutdown();
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
    options.observer.on_coalesced_job = [this](CoalescedJobOutcome job, CoalescedRowOutcome row,
                                               size_t rows, const std::string& why) {
      std::lock_guard<std::mutex> lock(mu_);
      ++jobs_ended_[std::string(CoalescedJobOutcomeName(job))];
      rows_[std::string(CoalescedRowOutcomeName(row))] += static_cast<int>(rows);
      last_job_why_ = why;
    };
    options.observer.on_leases_lost = [this](size_t records) {
      std::lock_guard<std::mutex> lock(mu_);
      leases_lost_ += static_cast<int>(records);
    };
    options.observer.on_bulk_check = [this](BulkCheckResult result, size_t, const std::string&) {
      std::lock_guard<std::mutex> lock(mu_);
      ++checks_[std::string(BulkCheckResultName(result))];
    };
    options.observer.on_gate_released = [this](BulkGateRelease why, size_t records,
                                               const std::string& detail) {
      std::lock_guard<std::mutex> lock(mu_);
      released_[std::string(BulkGateReleaseName(why))] += static_cast<int>(records);
      last_release_detail_ = detail;
    };
    dispatcher_ = std::make_unique<Dispatcher>(*renewing_, stub_, scheduler_, std::move(options),
                                               jobs_.get());
    dispatcher_->Start();
  }

  // Coalescing on at `threshold` (and at most `max_rows` rows a job).
  static DispatcherOptions Coalescing(size_t threshold, size_t max_rows = 10000) {
    DispatcherOptions options;
    options.coalesce.threshold = threshold;
    options.coalesce.max_rows = max_rows;
    options.coalesce.job_timeout = absl::Minutes(10);
    return options;
  }

  // Answers the oldest bulk call with a running job, then the watch's first poll with
  // `status`. Returns the bulk call's rows.
  std::vector<std::string> RunJob(const std::string& job_id, v1::JobStatus status,
                                  const std::string& raw) {
    EXPECT_TRUE(WaitUntil([&] {
      return stub_.outstanding("BulkIdentifyUsers") + stub_.outstanding("BulkIdentifyCompanies") ==
             1;
    }));
    ScriptedStub::Sent bulk = stub_.outstanding("BulkIdentifyUsers") == 1
                                  ? stub_.TakeRpc("BulkIdentifyUsers")
                                  : stub_.TakeRpc("BulkIdentifyCompanies");
    bulk.reply(JobIn(job_id, v1::JOB_STATUS_QUEUED, "queued"));
    EXPECT_TRUE(WaitUntil([&] { return stub_.outstanding("GetJob") == 1; }));
    ScriptedStub::Sent poll = stub_.TakeRpc("GetJob");
    EXPECT_EQ(poll.user, job_id);
    poll.reply(JobIn(job_id, status, raw));
    return bulk.rows;
  }

  int JobsEnded(const std::string& outcome) {
    std::lock_guard<std::mutex> lock(mu_);
    return jobs_ended_[outcome];
  }
  int Checks(const std::string& result) {
    std::lock_guard<std::mutex> lock(mu_);
    return checks_[result];
  }
  int Released(const std::string& why) {
    std::lock_guard<std::mutex> lock(mu_);
    return released_[why];
  }
  // Answers the oldest ListJobs: one bulk job `running` (none when empty).
  void AnswerBulkCheck(const std::string& running) {
    ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("ListJobs") == 1; }));
    v1::ListJobsResponse jobs;
    v1::Job done = JobIn("bulk:jobs:old", v1::JOB_STATUS_COMPLETED, "completed");
    done.set_type("users_bulk_identify");
    *jobs.add_jobs() = done;
    if (!running.empty()) {
      v1::Job job = JobIn(running, v1::JOB_STATUS_PROCESSING, "processing");
      job.set_type("users_bulk_identify");
      *jobs.add_jobs() = job;
    }
    stub_.TakeRpc("ListJobs").reply(jobs);
  }
  int Rows(const std::string& outcome) {
    std::lock_guard<std::mutex> lock(mu_);
    return rows_[outcome];
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
  std::unique_ptr<JobWatchRegistry> jobs_ =
      std::make_unique<JobWatchRegistry>(stub_, scheduler_, JobWatchOptions());
  std::unique_ptr<LogDeliveryStore> store_;
  std::unique_ptr<RenewingStore> renewing_;  // What the dispatcher uses: store_ underneath.
  std::unique_ptr<Dispatcher> dispatcher_;
  std::mutex mu_;
  std::map<std::string, int> outcomes_;
  std::map<std::string, int> jobs_ended_;
  std::map<std::string, int> rows_;
  std::string last_job_why_;
  std::map<std::string, int> checks_;
  std::map<std::string, int> released_;
  std::string last_release_detail_;
  int in_doubt_ = 0;
  int leases_lost_ = 0;
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

// ----- Coalescing -----

TEST_F(DispatcherTest, BelowTheThresholdEachIdentifyIsSentOnItsOwn) {
  for (int i = 0; i < 4; ++i) Enqueue(Identify("user" + std::to_string(i), "free"));
  StartDispatcher(Coalescing(5));
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("IdentifyUser") == 4; }));
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(stub_.total("BulkIdentifyUsers"), 0u);
  while (stub_.outstanding() > 0) stub_.Take().answer(absl::OkStatus(), CallFacts());
  ASSERT_TRUE(WaitUntil([&] { return Outcomes("delivered") == 4; }));
  EXPECT_EQ(JobsEnded("completed"), 0);
}

TEST_F(DispatcherTest, AtTheThresholdOneBulkJobCarriesWhatEachCallWouldSend) {
  std::vector<std::string> ids;
  ids.push_back(Enqueue(Identify("u1", "free")));
  ids.push_back(Enqueue(Identify("u2", "pro", "acme")));  // company_id alone: a row can say it.
  ids.push_back(Enqueue(Identify("u3", "team")));
  {
    v1::EnqueueRequest removal = Identify("u4", "x");
    (*removal.mutable_identify_user()->mutable_metadata()->mutable_fields())["plan"].set_null_value(
        google::protobuf::NULL_VALUE);
    ids.push_back(Enqueue(removal));
  }
  ids.push_back(Enqueue(Identify("u5", "free")));
  StartDispatcher(Coalescing(5));
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("BulkIdentifyUsers") == 1; }));
  EXPECT_EQ(stub_.total("IdentifyUser"), 0u);
  EXPECT_EQ(dispatcher_->coalesced_rows(), 5u);
  ScriptedStub::Sent bulk = stub_.TakeRpc("BulkIdentifyUsers");
  EXPECT_EQ(bulk.caller, "delivery");
  EXPECT_THAT(bulk.rows, ElementsAre("u1", "u2", "u3", "u4", "u5"));
  const auto& request = static_cast<const v1::BulkIdentifyUsersRequest&>(*bulk.request);
  EXPECT_EQ(request.users(0).metadata().fields().at("plan").string_value(), "free");
  EXPECT_EQ(request.users(1).company_id(), "acme");
  EXPECT_EQ(request.users(1).metadata().fields().at("plan").string_value(), "pro");
  EXPECT_TRUE(request.users(3).metadata().fields().at("plan").has_null_value());
  EXPECT_EQ(request.users(2).company_id(), "");
  bulk.reply(JobIn("bulk:jobs:1", v1::JOB_STATUS_QUEUED, "queued"));
  // The watch polls the job; nothing is delivered before it completes.
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("GetJob") == 1; }));
  stub_.TakeRpc("GetJob").reply(JobIn("bulk:jobs:1", v1::JOB_STATUS_PROCESSING, "processing"));
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(Outcomes("delivered"), 0);
  for (const std::string& id : ids) EXPECT_EQ(StateOf(id), DeliveryState::kPending);
  ASSERT_TRUE(WaitUntil([&] {
    scheduler_.AdvanceBy(absl::Seconds(1));
    return stub_.outstanding("GetJob") == 1;
  }));
  stub_.TakeRpc("GetJob").reply(JobIn("bulk:jobs:1", v1::JOB_STATUS_COMPLETED, "completed"));
  ASSERT_TRUE(WaitUntil([&] { return Outcomes("delivered") == 5; }));
  ASSERT_TRUE(WaitUntil([&] { return store_->Stats().pending == 0; }));
  for (const std::string& id : ids) {
    EXPECT_EQ(StateOf(id), DeliveryState::kDelivered);
    EXPECT_EQ(testing::GetSync(*store_, id)->attempts, 1u);
  }
  EXPECT_EQ(JobsEnded("completed"), 1);
  EXPECT_EQ(Rows("delivered"), 5);
  EXPECT_EQ(stub_.total("IdentifyUser"), 0u);
  ASSERT_TRUE(WaitUntil([&] { return dispatcher_->in_flight() == 0; }));
}

TEST_F(DispatcherTest, AUsersLaterCallWaitsForTheJobAndOtherCallsFlowBesideIt) {
  const std::string first = Enqueue(Identify("alice", "v1"));
  Enqueue(Identify("bob", "v1"));
  Enqueue(Identify("carol", "v1"));
  const std::string second = Enqueue(Identify("alice", "v2"));
  Enqueue(Track("dave", "clicked"));
  StartDispatcher(Coalescing(3));
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("BulkIdentifyUsers") == 1; }));
  // Never two records of one user in a job; other calls (dave's track) go singly meanwhile.
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("TrackEvent") == 1; }));
  stub_.TakeRpc("TrackEvent").answer(absl::OkStatus(), CallFacts());
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(stub_.total("IdentifyUser"), 0u);  // alice v2 waits for her row's job.
  EXPECT_THAT(RunJob("bulk:jobs:2", v1::JOB_STATUS_COMPLETED, "completed"),
              ElementsAre("alice", "bob", "carol"));
  ASSERT_TRUE(WaitUntil([&] { return StateOf(first) == DeliveryState::kDelivered; }));
  // Only now alice's later call goes, singly (one pending identify: below the threshold).
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("IdentifyUser") == 1; }));
  ScriptedStub::Sent later = stub_.TakeRpc("IdentifyUser");
  EXPECT_EQ(later.user, "alice");
  EXPECT_EQ(static_cast<const v1::IdentifyUserRequest&>(*later.request)
                .metadata()
                .fields()
                .at("plan")
                .string_value(),
            "v2");
  later.answer(absl::OkStatus(), CallFacts());
  ASSERT_TRUE(WaitUntil([&] { return StateOf(second) == DeliveryState::kDelivered; }));
  EXPECT_EQ(stub_.total("BulkIdentifyUsers"), 1u);
}

TEST_F(DispatcherTest, AFailedJobsRowsAreSentAsSingleCallsNotCoalescedAgain) {
  std::vector<std::string> ids;
  for (const char* user : {"u1", "u2", "u3"}) ids.push_back(Enqueue(Identify(user, "pro")));
  StartDispatcher(Coalescing(3));
  EXPECT_EQ(RunJob("bulk:jobs:3", v1::JOB_STATUS_FAILED, "failed").size(), 3u);
  // Each row is sent as its own call next (the backlog is still at the threshold: no new job).
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("IdentifyUser") == 3; }));
  EXPECT_EQ(stub_.total("BulkIdentifyUsers"), 1u);
  EXPECT_EQ(JobsEnded("failed"), 1);
  EXPECT_EQ(Rows("returned"), 3);
  EXPECT_THAT(last_job_why_, HasSubstr("bulk:jobs:3 failed"));
  // Not a failed attempt: no retry counted, no error recorded, attempts unchanged.
  EXPECT_EQ(Outcomes("retry"), 0);
  for (const std::string& id : ids) {
    auto info = testing::GetSync(*store_, id);
    EXPECT_EQ(info->attempts, 1u);
    EXPECT_EQ(info->last_error, "");
  }
  while (stub_.outstanding() > 0) stub_.Take().answer(absl::OkStatus(), CallFacts());
  ASSERT_TRUE(WaitUntil([&] { return Outcomes("delivered") == 3; }));
  for (const std::string& id : ids) {
    ASSERT_TRUE(WaitUntil([&] { return StateOf(id) == DeliveryState::kDelivered; }));
  }
  EXPECT_EQ(stub_.total("BulkIdentifyUsers"), 1u);
}

TEST_F(DispatcherTest, ARefusedBulkCallSendsItsRowsSingly) {
  for (const char* user : {"u1", "u2"}) Enqueue(Identify(user, "pro"));
  StartDispatcher(Coalescing(2));
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("BulkIdentifyUsers") == 1; }));
  CallFacts busy;
  busy.reason = ErrorReason::kJobInProgress;
  stub_.TakeRpc("BulkIdentifyUsers")
      .answer(absl::FailedPreconditionError("a bulk job is running"), busy);
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("IdentifyUser") == 2; }));
  EXPECT_EQ(JobsEnded("refused"), 1);
  EXPECT_EQ(stub_.total("GetJob"), 0u);
  while (stub_.outstanding() > 0) stub_.Take().answer(absl::OkStatus(), CallFacts());
  ASSERT_TRUE(WaitUntil([&] { return Outcomes("delivered") == 2; }));
}

TEST_F(DispatcherTest, AJobNotEndedByItsDeadlineSendsItsRowsSinglyOnceNoBulkJobRuns) {
  for (const char* user : {"u1", "u2"}) Enqueue(Identify(user, "pro"));
  DispatcherOptions options = Coalescing(2);
  options.coalesce.job_timeout = absl::Minutes(3);
  StartDispatcher(options);
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("BulkIdentifyUsers") == 1; }));
  stub_.TakeRpc("BulkIdentifyUsers").reply(JobIn("bulk:jobs:4", v1::JOB_STATUS_QUEUED, "queued"));
  // The job keeps running; every poll says so, until the deadline.
  for (int i = 0; i < 200 && stub_.total("IdentifyUser") == 0; ++i) {
    if (stub_.outstanding("GetJob") > 0) {
      stub_.TakeRpc("GetJob").reply(JobIn("bulk:jobs:4", v1::JOB_STATUS_PROCESSING, "processing"));
    }
    scheduler_.AdvanceBy(absl::Seconds(5));
    absl::SleepFor(absl::Milliseconds(2));
  }
  EXPECT_GE(scheduler_.Now() - absl::FromUnixSeconds(1'800'000'000), absl::Minutes(3));
  EXPECT_EQ(JobsEnded("timeout"), 1);
  EXPECT_THAT(last_job_why_, HasSubstr("did not end within 3m"));
  // The job may still run at Userpilot: its rows wait until ListJobs shows no bulk job.
  EXPECT_EQ(dispatcher_->gated_rows(), 2u);
  EXPECT_EQ(stub_.total("IdentifyUser"), 0u);
  while (stub_.outstanding("GetJob") > 0) {
    stub_.TakeRpc("GetJob").reply(JobIn("bulk:jobs:4", v1::JOB_STATUS_PROCESSING, "processing"));
  }
  AnswerBulkCheck("bulk:jobs:4");
  scheduler_.AdvanceBy(absl::Seconds(1));
  EXPECT_EQ(stub_.total("ListJobs"), 1u);  // Not before the poll interval.
  EXPECT_EQ(stub_.total("IdentifyUser"), 0u);
  scheduler_.AdvanceBy(absl::Seconds(1));
  AnswerBulkCheck("");
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("IdentifyUser") == 2; }));
  EXPECT_EQ(dispatcher_->gated_rows(), 0u);
  EXPECT_EQ(Checks("job_running"), 1);
  EXPECT_EQ(Checks("no_job"), 1);
  EXPECT_EQ(Released("no_job"), 2);
}

TEST_F(DispatcherTest, AJobHoldsAtMostMaxRowsAndTheRestGoSingly) {
  for (int i = 0; i < 5; ++i) Enqueue(Identify("user" + std::to_string(i), "pro"));
  StartDispatcher(Coalescing(2, 3));
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("BulkIdentifyUsers") == 1; }));
  // The other two go singly beside the job (one job at a time).
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("IdentifyUser") == 2; }));
  EXPECT_EQ(dispatcher_->coalesced_rows(), 3u);
  EXPECT_THAT(RunJob("bulk:jobs:5", v1::JOB_STATUS_COMPLETED, "completed"),
              ElementsAre("user0", "user1", "user2"));
  while (stub_.outstanding("IdentifyUser") > 0) {
    stub_.TakeRpc("IdentifyUser").answer(absl::OkStatus(), CallFacts());
  }
  ASSERT_TRUE(WaitUntil([&] { return Outcomes("delivered") == 5; }));
}

TEST_F(DispatcherTest, AJobStaysWithinTheBulkRequestBytes) {
  for (int i = 0; i < 4; ++i) Enqueue(Identify("user" + std::to_string(i), "pro"));
  DispatcherOptions options = Coalescing(2);
  v1::BulkIdentifyUsersRequest two;
  for (int i = 0; i < 2; ++i) {
    *two.add_users() = *BulkRowOf(Identify("user" + std::to_string(i), "pro").identify_user());
  }
  options.coalesce.max_request_bytes = two.ByteSizeLong();  // Exactly two rows fit.
  StartDispatcher(options);
  EXPECT_THAT(RunJob("bulk:jobs:6", v1::JOB_STATUS_COMPLETED, "completed"),
              ElementsAre("user0", "user1"));
  // The two left out were handed back and go next (another job or singly).
  ASSERT_TRUE(WaitUntil([&] {
    while (stub_.outstanding("IdentifyUser") > 0) {
      stub_.TakeRpc("IdentifyUser").answer(absl::OkStatus(), CallFacts());
    }
    if (stub_.outstanding("BulkIdentifyUsers") == 1) {
      RunJob("bulk:jobs:7", v1::JOB_STATUS_COMPLETED, "completed");
    }
    return store_->Stats().pending == 0;
  }));
}

TEST_F(DispatcherTest, ACallWithCompanyPropertiesIsNotCoalesced) {
  const std::string with_tier = Enqueue(Identify("u1", "pro", "acme", "gold"));
  Enqueue(Identify("u2", "pro"));
  Enqueue(Identify("u3", "pro"));
  StartDispatcher(Coalescing(3));
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("BulkIdentifyUsers") == 1; }));
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("IdentifyUser") == 1; }));
  ScriptedStub::Sent single = stub_.TakeRpc("IdentifyUser");
  EXPECT_EQ(single.user, "u1");
  EXPECT_EQ(static_cast<const v1::IdentifyUserRequest&>(*single.request)
                .company()
                .metadata()
                .fields()
                .at("tier")
                .string_value(),
            "gold");
  single.answer(absl::OkStatus(), CallFacts());
  EXPECT_THAT(RunJob("bulk:jobs:8", v1::JOB_STATUS_COMPLETED, "completed"),
              ElementsAre("u2", "u3"));
  ASSERT_TRUE(WaitUntil([&] { return Outcomes("delivered") == 3; }));
}

TEST_F(DispatcherTest, CompaniesAreCoalescedIntoABulkCompaniesJob) {
  for (const char* company : {"c1", "c2", "c3"}) Enqueue(IdentifyCompany(company));
  StartDispatcher(Coalescing(3));
  EXPECT_THAT(RunJob("bulk:jobs:9", v1::JOB_STATUS_COMPLETED, "completed"),
              ElementsAre("c1", "c2", "c3"));
  ASSERT_TRUE(WaitUntil([&] { return Outcomes("delivered") == 3; }));
  EXPECT_EQ(stub_.total("BulkIdentifyCompanies"), 1u);
  EXPECT_EQ(stub_.total("IdentifyCompany"), 0u);
}

TEST_F(DispatcherTest, StopWhileAJobRunsLeavesItsRowsInDoubtWithoutLoss) {
  std::vector<std::string> ids;
  for (const char* user : {"u1", "u2", "u3"}) ids.push_back(Enqueue(Identify(user, "pro")));
  StartDispatcher(Coalescing(3));
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("BulkIdentifyUsers") == 1; }));
  stub_.TakeRpc("BulkIdentifyUsers").reply(JobIn("bulk:jobs:10", v1::JOB_STATUS_QUEUED, "queued"));
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("GetJob") == 1; }));
  dispatcher_->Stop();
  jobs_->Shutdown();
  stub_.TakeRpc("GetJob").answer(absl::UnavailableError("test over"), CallFacts());
  dispatcher_->Join();
  EXPECT_EQ(dispatcher_->in_flight(), 0u);
  EXPECT_EQ(dispatcher_->coalesced_rows(), 0u);
  EXPECT_EQ(JobsEnded("stopped"), 1);
  EXPECT_EQ(Rows("returned"), 3);
  EXPECT_EQ(Outcomes("delivered"), 0);
  for (const std::string& id : ids) EXPECT_EQ(StateOf(id), DeliveryState::kPending);
  EXPECT_EQ(stub_.total("IdentifyUser"), 0u);
  // No outcome was recorded: a restarted gateway leases them again in doubt (so they wait for
  // the bulk check).
  ExpectInDoubtAfterRestart(3);
}

TEST_F(DispatcherTest, StopAfterTheBulkCallWasMadeLeavesItsRowsInDoubt) {
  std::vector<std::string> ids;
  for (const char* user : {"u1", "u2", "u3"}) ids.push_back(Enqueue(Identify(user, "pro")));
  DispatcherOptions options = Coalescing(3);
  StartDispatcher(options);
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("BulkIdentifyUsers") == 1; }));
  // (The bulk call was made here; what Stop() does with an unsent job is the untried hand-back
  // of StopHandsBackWhatWaitsAndNeverCallsTheStubAgain.)
  dispatcher_->Stop();
  jobs_->Shutdown();
  stub_.TakeRpc("BulkIdentifyUsers").answer(absl::UnavailableError("test over"), CallFacts());
  dispatcher_->Join();
  EXPECT_EQ(stub_.total("ListJobs"), 0u);  // Never after Stop().
  ExpectInDoubtAfterRestart(3);
}

TEST_F(DispatcherTest, InDoubtIdentifiesWaitForOneBulkCheckAndTheirUsersLaterCallsWaitBehind) {
  for (const char* user : {"u1", "u2", "u3"}) Enqueue(Identify(user, "v1"));
  Enqueue(IdentifyCompany("acme"));
  Enqueue(Track("t1", "clicked"));
  CrashWithEverythingLeased();
  const std::string later = Enqueue(Identify("u1", "v2"));
  StartDispatcher();
  // Track never was a bulk row: it goes at once. The identifies wait for the check.
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("TrackEvent") == 1; }));
  ASSERT_TRUE(WaitUntil([&] { return dispatcher_->gated_rows() == 4; }));
  EXPECT_EQ(dispatcher_->in_flight(), 1u);  // The track: gated records are counted apart.
  stub_.TakeRpc("TrackEvent").answer(absl::OkStatus(), CallFacts());
  AnswerBulkCheck("bulk:jobs:crashed");
  for (int i = 0; i < 5; ++i) {
    scheduler_.AdvanceBy(absl::Seconds(2));
    AnswerBulkCheck("bulk:jobs:crashed");
  }
  EXPECT_EQ(stub_.total("IdentifyUser") + stub_.total("IdentifyCompany"), 0u);
  EXPECT_EQ(stub_.total("ListJobs"), 6u);  // One check for all four, every poll interval.
  scheduler_.AdvanceBy(absl::Seconds(2));
  AnswerBulkCheck("");
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("IdentifyUser") == 3; }));
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("IdentifyCompany") == 1; }));
  EXPECT_EQ(Released("no_job"), 4);
  // u1's later call waited behind its in-doubt one, and goes only after it.
  ScriptedStub::Sent first = stub_.Take("u1");
  EXPECT_EQ(static_cast<const v1::IdentifyUserRequest&>(*first.request)
                .metadata()
                .fields()
                .at("plan")
                .string_value(),
            "v1");
  first.answer(absl::OkStatus(), CallFacts());
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("IdentifyUser") == 3; }));
  while (stub_.outstanding() > 0) stub_.Take().answer(absl::OkStatus(), CallFacts());
  ASSERT_TRUE(WaitUntil([&] { return StateOf(later) == DeliveryState::kDelivered; }));
  EXPECT_EQ(stub_.total("ListJobs"), 7u);
  EXPECT_EQ(in_doubt_, 5);
}

TEST_F(DispatcherTest, AFailedBulkCheckIsRetriedAfterABackoffAndReleasesNothing) {
  for (const char* user : {"u1", "u2"}) Enqueue(Identify(user, "v1"));
  CrashWithEverythingLeased();
  DispatcherOptions options;
  options.min_backoff = absl::Seconds(5);
  StartDispatcher(options);
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("ListJobs") == 1; }));
  CallFacts facts;
  facts.upstream.http_status = 503;
  stub_.TakeRpc("ListJobs").answer(absl::UnavailableError("upstream down"), facts);
  ASSERT_TRUE(WaitUntil([&] { return Checks("failed") == 1; }));
  scheduler_.AdvanceBy(absl::Seconds(4));
  EXPECT_EQ(stub_.total("ListJobs"), 1u);
  EXPECT_EQ(stub_.total("IdentifyUser"), 0u);
  scheduler_.AdvanceBy(absl::Seconds(1));  // The backoff: 5 s.
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("ListJobs") == 1; }));
  stub_.TakeRpc("ListJobs").answer(absl::UnavailableError("upstream down"), facts);
  ASSERT_TRUE(WaitUntil([&] { return Checks("failed") == 2; }));
  scheduler_.AdvanceBy(absl::Seconds(9));
  EXPECT_EQ(stub_.total("ListJobs"), 2u);  // Doubled: 10 s.
  scheduler_.AdvanceBy(absl::Seconds(1));
  AnswerBulkCheck("");
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("IdentifyUser") == 2; }));
  EXPECT_EQ(Released("deadline"), 0);
}

TEST_F(DispatcherTest, ARowWaitsForTheBulkCheckAtMostTheTimeoutThenGoesAndIsReported) {
  Enqueue(Identify("u1", "v1"));
  CrashWithEverythingLeased();
  DispatcherOptions options;
  options.bulk_gate.timeout = absl::Minutes(1);
  StartDispatcher(options);
  for (int i = 0; i < 29; ++i) {
    AnswerBulkCheck("bulk:jobs:stuck");
    scheduler_.AdvanceBy(absl::Seconds(2));
  }
  EXPECT_EQ(stub_.total("IdentifyUser"), 0u);
  AnswerBulkCheck("bulk:jobs:stuck");
  scheduler_.AdvanceBy(absl::Seconds(2));  // 60 s since it came in.
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("IdentifyUser") == 1; }));
  EXPECT_EQ(Released("deadline"), 1);
  EXPECT_THAT(last_release_detail_, HasSubstr("bulk job bulk:jobs:stuck running"));
  EXPECT_EQ(dispatcher_->gated_rows(), 0u);
}

TEST_F(DispatcherTest, WaitingRowsAreRenewedAndOneAnotherReplicaTookOverIsDropped) {
  std::vector<std::string> ids;
  for (const char* user : {"u1", "u2"}) ids.push_back(Enqueue(Identify(user, "v1")));
  CrashWithEverythingLeased();
  renewing_->set_lease_timeout(absl::Minutes(1));
  StartDispatcher();
  for (int i = 0; i < 10; ++i) {  // 20 s: one renewal.
    AnswerBulkCheck("bulk:jobs:running");
    scheduler_.AdvanceBy(absl::Seconds(2));
  }
  ASSERT_TRUE(WaitUntil([&] { return renewing_->renewals().size() == 1; }));
  std::vector<std::string> renewed = renewing_->renewals()[0];
  std::sort(renewed.begin(), renewed.end());
  EXPECT_EQ(renewed, ids);
  renewing_->Take(ids[0]);
  for (int i = 0; i < 10; ++i) {
    AnswerBulkCheck("bulk:jobs:running");
    scheduler_.AdvanceBy(absl::Seconds(2));
  }
  ASSERT_TRUE(WaitUntil([&] { return dispatcher_->gated_rows() == 1; }));
  {
    std::lock_guard<std::mutex> lock(mu_);
    EXPECT_EQ(leases_lost_, 1);
  }
  AnswerBulkCheck("");
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("IdentifyUser") == 1; }));
  ScriptedStub::Sent call = stub_.Take();
  EXPECT_EQ(call.user, "u2");
  call.answer(absl::OkStatus(), CallFacts());
}

TEST_F(DispatcherTest, ARecordThatCameInAfterACheckWasMadeWaitsForTheNextOne) {
  Enqueue(Identify("u0", "v1"));
  CrashWithEverythingLeased();  // u0 in doubt.
  for (const char* user : {"u1", "u2"}) Enqueue(Identify(user, "pro"));
  DispatcherOptions options = Coalescing(2);
  options.coalesce.job_timeout = absl::Minutes(1);
  StartDispatcher(options);
  // u0 waits for a check; u1 and u2 go in a job.
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("ListJobs") == 1; }));
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("BulkIdentifyUsers") == 1; }));
  ScriptedStub::Sent check = stub_.TakeRpc("ListJobs");
  stub_.TakeRpc("BulkIdentifyUsers").reply(JobIn("bulk:jobs:11", v1::JOB_STATUS_QUEUED, "queued"));
  // The job's deadline cuts it while the check is outstanding: its rows come in after it.
  for (int i = 0; i < 100 && dispatcher_->gated_rows() < 3; ++i) {
    if (stub_.outstanding("GetJob") > 0) {
      stub_.TakeRpc("GetJob").reply(JobIn("bulk:jobs:11", v1::JOB_STATUS_PROCESSING, "processing"));
    }
    scheduler_.AdvanceBy(absl::Seconds(5));
    absl::SleepFor(absl::Milliseconds(2));
  }
  ASSERT_EQ(dispatcher_->gated_rows(), 3u);
  check.reply(v1::ListJobsResponse());  // Made before the job's rows came in: u0 only.
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("IdentifyUser") == 1; }));
  EXPECT_EQ(stub_.users_outstanding().back(), "u0");
  EXPECT_EQ(dispatcher_->gated_rows(), 2u);
  AnswerBulkCheck("");  // The next check, made at once.
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("IdentifyUser") == 3; }));
  EXPECT_EQ(stub_.total("ListJobs"), 2u);
}

TEST_F(DispatcherTest, ARunningJobsRowsAreRenewedEveryThirdOfTheLeaseTimeoutAndNotAfter) {
  renewing_->set_lease_timeout(absl::Minutes(1));
  std::vector<std::string> ids;
  for (const char* user : {"u1", "u2", "u3"}) ids.push_back(Enqueue(Identify(user, "pro")));
  StartDispatcher(Coalescing(3));
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("BulkIdentifyUsers") == 1; }));
  EXPECT_TRUE(renewing_->renewals().empty());
  stub_.TakeRpc("BulkIdentifyUsers").reply(JobIn("bulk:jobs:11", v1::JOB_STATUS_QUEUED, "queued"));
  // The job runs for 100 s: a renewal of its rows every 20 s, one at a time.
  for (int second = 1; second <= 100; ++second) {
    scheduler_.AdvanceBy(absl::Seconds(1));
    while (stub_.outstanding("GetJob") > 0) {
      stub_.TakeRpc("GetJob").reply(JobIn("bulk:jobs:11", v1::JOB_STATUS_PROCESSING, "processing"));
    }
    EXPECT_EQ(renewing_->renewals().size(), static_cast<size_t>(second / 20)) << second;
  }
  for (const std::vector<std::string>& renewal : renewing_->renewals()) {
    EXPECT_EQ(renewal, ids);
  }
  ASSERT_TRUE(WaitUntil([&] {
    scheduler_.AdvanceBy(absl::Seconds(1));
    return stub_.outstanding("GetJob") == 1;
  }));
  stub_.TakeRpc("GetJob").reply(JobIn("bulk:jobs:11", v1::JOB_STATUS_COMPLETED, "completed"));
  ASSERT_TRUE(WaitUntil([&] { return Outcomes("delivered") == 3; }));
  // Nothing held: no renewal after the job's outcome.
  const size_t renewals = renewing_->renewals().size();
  scheduler_.AdvanceBy(absl::Minutes(5));
  EXPECT_EQ(renewing_->renewals().size(), renewals);
  EXPECT_EQ(leases_lost_, 0);
}

TEST_F(DispatcherTest, ARowAnotherReplicaTookOverIsDroppedFromTheJobAndCounted) {
  renewing_->set_lease_timeout(absl::Seconds(30));
  std::vector<std::string> ids;
  for (const char* user : {"u1", "u2", "u3"}) ids.push_back(Enqueue(Identify(user, "pro")));
  StartDispatcher(Coalescing(3));
  ASSERT_TRUE(WaitUntil([&] { return stub_.outstanding("BulkIdentifyUsers") == 1; }));
  stub_.TakeRpc("BulkIdentifyUsers").reply(JobIn("bulk:jobs:12", v1::JOB_STATUS_QUEUED, "queued"));
  renewing_->Take(ids[1]);
  scheduler_.AdvanceBy(absl::Seconds(10));
  ASSERT_EQ(renewing_->renewals().size(), 1u);
  EXPECT_EQ(dispatcher_->coalesced_rows(), 2u);
  EXPECT_EQ(leases_lost_, 1);
  scheduler_.AdvanceBy(absl::Seconds(10));
  ASSERT_EQ(renewing_->renewals().size(), 2u);
  EXPECT_THAT(renewing_->renewals()[1], ElementsAre(ids[0], ids[2]));
  while (stub_.outstanding("GetJob") > 0) {
    stub_.TakeRpc("GetJob").reply(JobIn("bulk:jobs:12", v1::JOB_STATUS_PROCESSING, "processing"));
  }
  ASSERT_TRUE(WaitUntil([&] {
    scheduler_.AdvanceBy(absl::Seconds(1));
    return stub_.outstanding("GetJob") == 1;
  }));
  stub_.TakeRpc("GetJob").reply(JobIn("bulk:jobs:12", v1::JOB_STATUS_COMPLETED, "completed"));
  // Only the rows still its own are recorded delivered; the other is left to its new holder.
  ASSERT_TRUE(WaitUntil([&] { return Outcomes("delivered") == 2; }));
  EXPECT_EQ(Rows("delivered"), 2);
  EXPECT_EQ(StateOf(ids[0]), DeliveryState::kDelivered);
  EXPECT_EQ(StateOf(ids[1]), DeliveryState::kPending);
  EXPECT_EQ(StateOf(ids[2]), DeliveryState::kDelivered);
  ASSERT_TRUE(WaitUntil([&] { return dispatcher_->in_flight() == 0; }));
  EXPECT_EQ(stub_.total("IdentifyUser"), 0u);
}

TEST_F(DispatcherTest, AJobsRowsAreCompletedAtMostABoundAtATime) {
  constexpr int kRows = 600;
  std::atomic<int> appended{0};
  for (int i = 0; i < kRows; ++i) {  // Appended together: one group commit for many.
    store_->Append(ToNewDelivery(Identify("user" + std::to_string(i), "pro")),
                   [&appended](absl::StatusOr<AppendResult> r) {
                     EXPECT_TRUE(r.ok()) << r.status();
                     ++appended;
                   });
  }
  ASSERT_TRUE(WaitUntil([&] { return appended.load() == kRows; }));
  StartDispatcher(Coalescing(kRows));
  EXPECT_EQ(RunJob("bulk:jobs:13", v1::JOB_STATUS_COMPLETED, "completed").size(),
            static_cast<size_t>(kRows));
  ASSERT_TRUE(WaitUntil([&] { return Outcomes("delivered") == kRows; }));
  ASSERT_TRUE(WaitUntil([&] { return store_->Stats().pending == 0; }));
  ASSERT_TRUE(WaitUntil([&] { return dispatcher_->in_flight() == 0; }));
  EXPECT_LE(renewing_->most_completing(), 256u);
  EXPECT_GT(renewing_->most_completing(), 1u);
}

TEST(BulkRowsTest, ARowSaysExactlyWhatTheSingleCallSends) {
  v1::IdentifyUserRequest call = Identify("u1", "pro", "acme").identify_user();
  std::optional<v1::BulkUser> row = BulkRowOf(call);
  ASSERT_TRUE(row.has_value());
  EXPECT_EQ(row->user_id(), "u1");
  EXPECT_EQ(row->company_id(), "acme");
  EXPECT_EQ(row->metadata().SerializeAsString(), call.metadata().SerializeAsString());
  EXPECT_FALSE(BulkRowOf(Identify("u1", "pro", "acme", "gold").identify_user()).has_value());
  BulkRequestBuilder builder(kIdentifyUserKind, 10, 1 << 20);
  EXPECT_EQ(builder.Add(Identify("u1", "a")), BulkRequestBuilder::Added::kAdded);
  EXPECT_EQ(builder.Add(Identify("u1", "b")), BulkRequestBuilder::Added::kDuplicate);
  EXPECT_EQ(builder.Add(Track("u2", "e")), BulkRequestBuilder::Added::kNotARow);
  EXPECT_EQ(builder.Add(IdentifyCompany("c1")), BulkRequestBuilder::Added::kNotARow);
  EXPECT_EQ(builder.bytes(), builder.users().ByteSizeLong());
  BulkRequestBuilder one(kIdentifyUserKind, 1, 1 << 20);
  EXPECT_EQ(one.Add(Identify("u1", "a")), BulkRequestBuilder::Added::kAdded);
  EXPECT_EQ(one.Add(Identify("u2", "a")), BulkRequestBuilder::Added::kFull);
}

}  // namespace
}  // namespace userpilot::gateway
