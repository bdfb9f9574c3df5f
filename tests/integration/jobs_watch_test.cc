// WatchJob and WatchJobs through the real gateway (gRPC server, JobWatchRegistry, HTTP stub,
// libcurl) against the emulator, asserting what watchers receive and what reached "Userpilot".
//
// Job states are driven by the test (the emulator's ForceJobStatus) rather than by the clock,
// so every watcher's sequence is exact; the poll pace is fixed at 100 ms so the emulator's
// record can be checked against "one read per interval".
#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"
#include "tests/integration/jobs_test_env.h"

namespace userpilot::gateway::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr absl::Duration kPace = absl::Milliseconds(100);

JobsEnvOptions FixedPace() {
  JobsEnvOptions options;
  options.job_step = absl::Seconds(30);  // Jobs move only when the test says.
  options.watch.min_poll_interval = kPace;
  options.watch.max_poll_interval = kPace;
  options.watch.poll_interval_growth = 1.0;
  return options;
}

// One WatchJob or WatchJobs stream read on its own thread.
class Watcher {
 public:
  // Starts the call at once; reads only after Release() when `stalled`.
  Watcher(std::shared_ptr<grpc::Channel> channel, std::string job_id,
          absl::Duration timeout = absl::Seconds(20), bool stalled = false, bool all_jobs = false)
      : stub_(v1::UserpilotGateway::NewStub(std::move(channel))), stalled_(stalled) {
    context_ = JobsContext(timeout);
    thread_ = std::thread([this, job_id, all_jobs] {
      std::unique_ptr<grpc::ClientReader<v1::Job>> reader;
      if (all_jobs) {
        reader = stub_->WatchJobs(context_.get(), v1::WatchJobsRequest());
      } else {
        v1::WatchJobRequest request;
        request.set_job_id(job_id);
        reader = stub_->WatchJob(context_.get(), request);
      }
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !stalled_; });
      }
      v1::Job job;
      while (reader->Read(&job)) {
        std::lock_guard<std::mutex> lock(mu_);
        jobs_.push_back(job);
        cv_.notify_all();
      }
      grpc::Status status = reader->Finish();
      std::lock_guard<std::mutex> lock(mu_);
      status_ = std::move(status);
      done_ = true;
      cv_.notify_all();
    });
  }

  ~Watcher() {
    Release();
    Cancel();
    thread_.join();
  }

  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    stalled_ = false;
    cv_.notify_all();
  }
  void Cancel() { context_->TryCancel(); }

  // Waits until `n` messages arrived (or the stream ended).
  bool WaitForCount(size_t n, absl::Duration timeout = absl::Seconds(5)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoMilliseconds(timeout), [&] {
      return jobs_.size() >= n || done_;
    }) && jobs_.size() >= n;
  }
  bool WaitForEnd(absl::Duration timeout = absl::Seconds(5)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoMilliseconds(timeout), [&] { return done_; });
  }
  std::vector<v1::Job> jobs() {
    std::lock_guard<std::mutex> lock(mu_);
    return jobs_;
  }
  std::vector<std::string> statuses() {
    std::vector<std::string> out;
    for (const v1::Job& job : jobs()) out.push_back(job.raw_status());
    return out;
  }
  grpc::Status status() {
    std::lock_guard<std::mutex> lock(mu_);
    return status_;
  }

 private:
  std::unique_ptr<v1::UserpilotGateway::Stub> stub_;
  std::unique_ptr<grpc::ClientContext> context_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stalled_;
  std::vector<v1::Job> jobs_;
  grpc::Status status_;
  bool done_ = false;
  std::thread thread_;
};

class JobsWatchTest : public ::testing::Test {
 protected:
  void Start(JobsEnvOptions options = FixedPace()) {
    env_ = std::make_unique<JobsTestEnv>(std::move(options));
    client_ = env_->Client();
  }

  // Starts a bulk job through the gateway and pins it at `status`.
  std::string NewJob(const std::string& status = "queued") {
    v1::BulkIdentifyUsersRequest request;
    request.add_users()->set_user_id("u1");
    v1::Job job;
    auto context = JobsContext();
    grpc::Status rpc = client_->BulkIdentifyUsers(context.get(), request, &job);
    EXPECT_TRUE(rpc.ok()) << rpc.error_message();
    Force(job.job_id(), status);
    return job.job_id();
  }

  void Force(const std::string& id, const std::string& status) {
    ASSERT_TRUE(env_->emulator().ForceJobStatus(id, status).ok());
  }

  // Reads of job `id` that reached the emulator, in order.
  std::vector<absl::Time> Polls(const std::string& id) {
    std::vector<absl::Time> out;
    for (const RecordedRequest& r : env_->emulator().Requests()) {
      if (r.method == "GET" && r.path == "/v1/background_jobs/" + id) out.push_back(r.received_at);
    }
    return out;
  }

  std::unique_ptr<JobsTestEnv> env_;
  std::unique_ptr<v1::UserpilotGateway::Stub> client_;
};

TEST_F(JobsWatchTest, ManyWatchersSeeTheSameSequenceFromOneReadPerInterval) {
  Start();
  const std::string id = NewJob("queued");
  constexpr int kWatchers = 20;
  std::vector<std::unique_ptr<Watcher>> watchers;
  for (int i = 0; i < kWatchers; ++i) {
    watchers.push_back(std::make_unique<Watcher>(env_->Channel(), id));
  }
  for (auto& w : watchers) ASSERT_TRUE(w->WaitForCount(1));
  EXPECT_EQ(env_->registry().Stats().watched_jobs, 1u);
  EXPECT_EQ(env_->registry().Stats().subscribers, static_cast<size_t>(kWatchers));

  env_->emulator().ClearRequests();
  const absl::Time start = absl::Now();
  size_t expected = 1;
  for (const char* status : {"validating", "processing", "completed"}) {
    absl::SleepFor(3 * kPace);  // Some idle reads between changes.
    Force(id, status);
    ++expected;
    for (auto& w : watchers) ASSERT_TRUE(w->WaitForCount(expected)) << status;
  }
  for (auto& w : watchers) ASSERT_TRUE(w->WaitForEnd());
  const absl::Duration elapsed = absl::Now() - start;

  for (auto& w : watchers) {
    EXPECT_THAT(w->statuses(), ElementsAre("queued", "validating", "processing", "completed"));
    EXPECT_TRUE(w->status().ok()) << w->status().error_message();
  }
  // One read per interval for the job, whatever the number of watchers.
  const std::vector<absl::Time> polls = Polls(id);
  const double intervals = absl::FDivDuration(elapsed, kPace);
  EXPECT_GE(static_cast<double>(polls.size()), intervals - 3) << elapsed;
  EXPECT_LE(static_cast<double>(polls.size()), intervals + 2) << elapsed;
  for (size_t i = 1; i < polls.size(); ++i) {
    EXPECT_GE(polls[i] - polls[i - 1], kPace * 0.7) << "read " << i;
  }
  EXPECT_TRUE(WaitUntil([&] { return env_->registry().Stats().watched_jobs == 0; }));
}

TEST_F(JobsWatchTest, CancelledAndTimedOutWatchersFreeThePoller) {
  Start();
  const std::string id = NewJob("processing");
  auto timed_out = std::make_unique<Watcher>(env_->Channel(), id, absl::Milliseconds(500));
  auto cancelled = std::make_unique<Watcher>(env_->Channel(), id);
  ASSERT_TRUE(cancelled->WaitForCount(1));
  ASSERT_TRUE(timed_out->WaitForCount(1));
  cancelled->Cancel();
  ASSERT_TRUE(cancelled->WaitForEnd());
  EXPECT_EQ(cancelled->status().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(env_->registry().Stats().watched_jobs, 1u) << "one watcher is left";
  ASSERT_TRUE(timed_out->WaitForEnd());
  EXPECT_EQ(timed_out->status().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  ASSERT_TRUE(WaitUntil([&] {
    const JobWatchStats stats = env_->registry().Stats();
    return stats.watched_jobs == 0 && stats.subscribers == 0;
  }));
  // No reads after the last watcher left.
  absl::SleepFor(kPace);  // A read already in flight may still land.
  const size_t polls = Polls(id).size();
  absl::SleepFor(5 * kPace);
  EXPECT_EQ(Polls(id).size(), polls);
}

TEST_F(JobsWatchTest, StalledWatcherDoesNotDelayTheOthersAndGetsTheTerminalState) {
  Start();
  const std::string id = NewJob("queued");
  // A tiny, fixed HTTP/2 window: the stalled watcher's stream fills up after a few messages,
  // so the gateway really has writes waiting on it.
  grpc::ChannelArguments small_window;
  small_window.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  small_window.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  auto stalled = std::make_unique<Watcher>(env_->Channel(small_window), id, absl::Seconds(20),
                                           /*stalled=*/true);
  std::vector<std::unique_ptr<Watcher>> readers;
  for (int i = 0; i < 3; ++i) readers.push_back(std::make_unique<Watcher>(env_->Channel(), id));
  for (auto& r : readers) ASSERT_TRUE(r->WaitForCount(1));
  ASSERT_TRUE(WaitUntil([&] { return env_->registry().Stats().subscribers == 4; }));

  // 20 changes, then the end; each must reach the readers within a few intervals.
  size_t expected = 1;
  for (int i = 0; i < 20; ++i) {
    Force(id, i % 2 == 0 ? "processing" : "validating");
    ++expected;
    const absl::Time forced = absl::Now();
    for (auto& r : readers) ASSERT_TRUE(r->WaitForCount(expected, 10 * kPace)) << "change " << i;
    EXPECT_LT(absl::Now() - forced, 10 * kPace);
  }
  Force(id, "completed");
  for (auto& r : readers) {
    ASSERT_TRUE(r->WaitForEnd());
    EXPECT_EQ(r->jobs().size(), expected + 1);
    EXPECT_TRUE(r->status().ok());
  }

  stalled->Release();
  ASSERT_TRUE(stalled->WaitForEnd());
  EXPECT_TRUE(stalled->status().ok()) << stalled->status().error_message();
  const std::vector<std::string> seen = stalled->statuses();
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.front(), "queued");
  EXPECT_EQ(seen.back(), "completed") << "the terminal state is never skipped";
  EXPECT_LT(seen.size(), expected + 1) << "intermediate states are skipped, not queued";
}

TEST_F(JobsWatchTest, UnknownJobIsNotFoundAndAnEmptyIdIsInvalid) {
  Start();
  Watcher unknown(env_->Channel(), "bulk:jobs:NX-00000000:nope");
  ASSERT_TRUE(unknown.WaitForEnd());
  EXPECT_EQ(unknown.status().error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(unknown.jobs().empty());
  Watcher empty(env_->Channel(), "");
  ASSERT_TRUE(empty.WaitForEnd());
  EXPECT_EQ(empty.status().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(JobsWatchTest, AllJobsWatchSeesNewJobsAndTheirChanges) {
  Start();
  const std::string old_job = NewJob("completed");
  Watcher all(env_->Channel(), "", absl::Seconds(20), false, /*all_jobs=*/true);
  ASSERT_TRUE(WaitUntil([&] { return env_->registry().Stats().list_watched; }));
  absl::SleepFor(2 * kPace);  // The first list read is the baseline.
  const std::string id = NewJob("queued");
  ASSERT_TRUE(all.WaitForCount(1));
  absl::SleepFor(2 * kPace);
  Force(id, "completed");
  ASSERT_TRUE(all.WaitForCount(2));
  const std::vector<v1::Job> jobs = all.jobs();
  EXPECT_EQ(jobs[0].job_id(), id);
  EXPECT_EQ(jobs[0].raw_status(), "queued");
  EXPECT_EQ(jobs[1].job_id(), id);
  EXPECT_EQ(jobs[1].raw_status(), "completed");
  for (const v1::Job& job : jobs) EXPECT_NE(job.job_id(), old_job) << "only changes were asked";
}

TEST_F(JobsWatchTest, ShutdownEndsEveryWatchUnavailable) {
  Start();
  const std::string id = NewJob("processing");
  Watcher one(env_->Channel(), id);
  Watcher all(env_->Channel(), "", absl::Seconds(20), false, /*all_jobs=*/true);
  ASSERT_TRUE(one.WaitForCount(1));
  ASSERT_TRUE(WaitUntil([&] { return env_->registry().Stats().subscribers == 2; }));
  const absl::Time start = absl::Now();
  env_->Shutdown();
  ASSERT_TRUE(one.WaitForEnd());
  ASSERT_TRUE(all.WaitForEnd());
  EXPECT_LT(absl::Now() - start, absl::Seconds(2)) << "the server did not wait for watches";
  for (Watcher* w : {&one, &all}) {
    EXPECT_EQ(w->status().error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_THAT(w->status().error_message(), HasSubstr("shutting down"));
  }
}

TEST_F(JobsWatchTest, WatcherBoundIsResourceExhausted) {
  JobsEnvOptions options = FixedPace();
  options.watch.max_subscribers = 2;
  Start(options);
  const std::string id = NewJob("processing");
  Watcher a(env_->Channel(), id);
  Watcher b(env_->Channel(), id);
  ASSERT_TRUE(a.WaitForCount(1) && b.WaitForCount(1));
  Watcher c(env_->Channel(), id);
  ASSERT_TRUE(c.WaitForEnd());
  EXPECT_EQ(c.status().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(c.status().error_details()));
  bool retry_info = false;
  for (const auto& any : details.details()) retry_info |= any.Is<google::rpc::RetryInfo>();
  EXPECT_TRUE(retry_info);
}

}  // namespace
}  // namespace userpilot::gateway::testing
