#include "service/jobs/watch/job_watch_registry.h"

#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/mocks/fake_scheduler.h"
#include "tests/mocks/mock_userpilot_stub.h"
#include "tests/util/wire_details.h"

namespace userpilot::gateway {
namespace {

using ::testing::_;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::NiceMock;

// A sink that counts notices and references; the tests drive it on one thread.
class TestSink : public JobWatchSink {
 public:
  void OnJobsReady() override {
    EXPECT_GT(refs_, 0) << "notified without a reference held";
    ++ready_;
  }
  void Ref() override { ++refs_; }
  void Unref() override { --refs_; }

  int ready() const { return ready_; }
  int refs() const { return refs_; }

 private:
  int ready_ = 0;
  int refs_ = 0;
};

v1::Job MakeJob(const std::string& id, v1::JobStatus status, int64_t completed = -1,
                int64_t elapsed = 0) {
  v1::Job job;
  job.set_job_id(id);
  job.set_status(status);
  if (completed >= 0) job.set_completed_rows(completed);
  job.set_elapsed_time(elapsed);
  return job;
}

// "status/completed_rows" of each state taken, then "end:CODE".
struct Drained {
  std::vector<std::string> states;
  std::optional<CallStatus> end;
};

Drained Drain(JobSubscription& sub) {
  Drained out;
  while (true) {
    JobSubscription::Next next = sub.TakeNext();
    if (next.job != nullptr) {
      out.states.push_back(absl::StrCat(next.job->job_id(), ":",
                                        v1::JobStatus_Name(next.job->status()), "/",
                                        next.job->completed_rows()));
      continue;
    }
    out.end = next.end;
    return out;
  }
}

class JobWatchRegistryTest : public ::testing::Test {
 protected:
  JobWatchRegistryTest() {
    ON_CALL(stub_, GetJob(_, _, _))
        .WillByDefault([this](const CallOptions& options, const v1::GetJobRequest& request,
                              StubCallback<v1::Job> done) {
          EXPECT_EQ(options.caller, "job-watch");
          EXPECT_EQ(options.deadline, scheduler_.Now() + absl::Seconds(10));
          gets_.push_back({request.job_id(), scheduler_.Now()});
          pending_gets_.push_back(std::move(done));
        });
    ON_CALL(stub_, ListJobs(_, _, _))
        .WillByDefault([this](const CallOptions&, const v1::ListJobsRequest&,
                              StubCallback<v1::ListJobsResponse> done) {
          list_times_.push_back(scheduler_.Now());
          pending_lists_.push_back(std::move(done));
        });
  }

  static JobWatchOptions Options() {
    JobWatchOptions options;
    options.min_poll_interval = absl::Seconds(1);
    options.max_poll_interval = absl::Seconds(8);
    options.poll_interval_growth = 2.0;
    options.unreadable_timeout = absl::Seconds(30);
    return options;
  }

  JobWatchRegistry& Registry(JobWatchOptions options = Options()) {
    registry_ = std::make_unique<JobWatchRegistry>(stub_, scheduler_, std::move(options));
    return *registry_;
  }

  std::shared_ptr<JobSubscription> Watch(const std::string& id, TestSink& sink) {
    auto sub = registry_->WatchJob(id, &sink);
    EXPECT_TRUE(sub.ok()) << sub.status();
    return sub.ok() ? *sub : nullptr;
  }

  // Answers the oldest outstanding GetJob.
  void AnswerGet(Result<v1::Job> answer) {
    ASSERT_FALSE(pending_gets_.empty());
    StubCallback<v1::Job> done = std::move(pending_gets_.front());
    pending_gets_.pop_front();
    std::move(done)(std::move(answer));
  }

  void AnswerList(std::vector<v1::Job> jobs) {
    ASSERT_FALSE(pending_lists_.empty());
    StubCallback<v1::ListJobsResponse> done = std::move(pending_lists_.front());
    pending_lists_.pop_front();
    v1::ListJobsResponse response;
    for (auto& job : jobs) *response.add_jobs() = std::move(job);
    std::move(done)(std::move(response));
  }

  // Seconds since the start of each GetJob.
  std::vector<double> GetSeconds() const {
    std::vector<double> out;
    for (const auto& get : gets_) out.push_back(absl::ToDoubleSeconds(get.second - start_));
    return out;
  }

  struct Get {
    std::string id;
    absl::Time when;
  };

  FakeScheduler scheduler_;
  const absl::Time start_ = scheduler_.Now();
  NiceMock<MockUserpilotStub> stub_;
  std::vector<std::pair<std::string, absl::Time>> gets_;
  std::deque<StubCallback<v1::Job>> pending_gets_;
  std::vector<absl::Time> list_times_;
  std::deque<StubCallback<v1::ListJobsResponse>> pending_lists_;
  std::unique_ptr<JobWatchRegistry> registry_;
};

TEST_F(JobWatchRegistryTest, FirstWatcherStartsOneReadAndIsToldWhenItArrives) {
  Registry();
  TestSink sink;
  auto sub = Watch("j", sink);
  ASSERT_EQ(gets_.size(), 1u);
  EXPECT_EQ(gets_[0].first, "j");
  JobSubscription::Next nothing = sub->TakeNext();
  EXPECT_EQ(nothing.job, nullptr);
  EXPECT_FALSE(nothing.end.has_value());
  AnswerGet(MakeJob("j", v1::JOB_STATUS_QUEUED));
  EXPECT_EQ(sink.ready(), 1);
  EXPECT_EQ(sink.refs(), 0);
  EXPECT_THAT(Drain(*sub).states, ElementsAre("j:JOB_STATUS_QUEUED/0"));
  EXPECT_EQ(registry_->Stats().subscribers, 1u);
  EXPECT_EQ(registry_->Stats().watched_jobs, 1u);
}

TEST_F(JobWatchRegistryTest, ManyWatchersShareOneReadPerIntervalAndSeeTheSameSequence) {
  Registry();
  TestSink sinks[5];
  std::vector<std::shared_ptr<JobSubscription>> subs;
  for (TestSink& sink : sinks) subs.push_back(Watch("j", sink));
  EXPECT_EQ(gets_.size(), 1u);
  std::vector<Drained> seen(subs.size());
  auto take_all = [&] {
    for (size_t i = 0; i < subs.size(); ++i) {
      Drained d = Drain(*subs[i]);
      seen[i].states.insert(seen[i].states.end(), d.states.begin(), d.states.end());
      seen[i].end = d.end;
    }
  };
  AnswerGet(MakeJob("j", v1::JOB_STATUS_QUEUED));
  take_all();
  scheduler_.AdvanceBy(absl::Seconds(1));
  AnswerGet(MakeJob("j", v1::JOB_STATUS_PROCESSING, 10));
  take_all();
  scheduler_.AdvanceBy(absl::Seconds(1));
  AnswerGet(MakeJob("j", v1::JOB_STATUS_PROCESSING, 20));
  take_all();
  scheduler_.AdvanceBy(absl::Seconds(1));
  AnswerGet(MakeJob("j", v1::JOB_STATUS_COMPLETED, 30));
  take_all();
  EXPECT_EQ(gets_.size(), 4u) << "one read per interval, not per watcher";
  EXPECT_THAT(GetSeconds(), ElementsAre(0, 1, 2, 3));
  // Woken for every state but the first, which arrived before they had asked for anything.
  for (TestSink& sink : sinks) EXPECT_EQ(sink.ready(), 3);
  for (const Drained& drained : seen) {
    EXPECT_THAT(drained.states,
                ElementsAre("j:JOB_STATUS_QUEUED/0", "j:JOB_STATUS_PROCESSING/10",
                            "j:JOB_STATUS_PROCESSING/20", "j:JOB_STATUS_COMPLETED/30"));
    ASSERT_TRUE(drained.end.has_value());
    EXPECT_TRUE(drained.end->ok()) << *drained.end;
  }
  // The terminal state ended the poller: no timer, no further read.
  EXPECT_EQ(registry_->Stats().watched_jobs, 0u);
  EXPECT_EQ(scheduler_.pending(), 0u);
  scheduler_.AdvanceBy(absl::Minutes(1));
  EXPECT_EQ(gets_.size(), 4u);
  // Subscriptions count until their streams close.
  EXPECT_EQ(registry_->Stats().subscribers, 5u);
  subs.clear();
  EXPECT_EQ(registry_->Stats().subscribers, 0u);
}

TEST_F(JobWatchRegistryTest, DistinctJobsGetDistinctPollers) {
  Registry();
  TestSink a, b;
  auto sa = Watch("a", a);
  auto sb = Watch("b", b);
  ASSERT_EQ(gets_.size(), 2u);
  EXPECT_EQ(gets_[0].first, "a");
  EXPECT_EQ(gets_[1].first, "b");
  AnswerGet(MakeJob("a", v1::JOB_STATUS_QUEUED));
  AnswerGet(MakeJob("b", v1::JOB_STATUS_FAILED));
  EXPECT_THAT(Drain(*sa).states, ElementsAre("a:JOB_STATUS_QUEUED/0"));
  Drained drained_b = Drain(*sb);
  EXPECT_THAT(drained_b.states, ElementsAre("b:JOB_STATUS_FAILED/0"));
  EXPECT_TRUE(drained_b.end.has_value() && drained_b.end->ok());
  EXPECT_EQ(registry_->Stats().watched_jobs, 1u);
}

TEST_F(JobWatchRegistryTest, PaceSlowsWhileTheJobIsIdleAndSnapsBackOnAChange) {
  Registry();
  TestSink sink;
  auto sub = Watch("j", sink);
  AnswerGet(MakeJob("j", v1::JOB_STATUS_PROCESSING, 5, 1));  // t=0, first state.
  EXPECT_THAT(Drain(*sub).states, ElementsAre("j:JOB_STATUS_PROCESSING/5"));
  // Unchanged but for elapsed_time: 1 s, then 2, 4, 8 (the cap), 8.
  for (int i = 0; i < 5; ++i) {
    scheduler_.AdvanceTo(scheduler_.next_due());
    AnswerGet(MakeJob("j", v1::JOB_STATUS_PROCESSING, 5, 2 + i));
  }
  EXPECT_THAT(GetSeconds(), ElementsAre(0, 1, 3, 7, 15, 23));
  scheduler_.AdvanceTo(scheduler_.next_due());
  AnswerGet(MakeJob("j", v1::JOB_STATUS_PROCESSING, 6, 30));  // t=31: a change.
  scheduler_.AdvanceTo(scheduler_.next_due());
  EXPECT_THAT(GetSeconds(), ElementsAre(0, 1, 3, 7, 15, 23, 31, 32));
  // Idle polls sent nothing; the change did (with the latest elapsed_time).
  EXPECT_EQ(sink.ready(), 1);
  JobSubscription::Next next = sub->TakeNext();
  ASSERT_NE(next.job, nullptr);
  EXPECT_EQ(next.job->completed_rows(), 6);
  EXPECT_EQ(next.job->elapsed_time(), 30);
  EXPECT_EQ(sub->TakeNext().job, nullptr);
}

TEST_F(JobWatchRegistryTest, SlowAnswersDoNotAddReads) {
  Registry();
  TestSink sink;
  auto sub = Watch("j", sink);
  scheduler_.AdvanceBy(absl::Milliseconds(2500));  // The first answer takes 2.5 s.
  AnswerGet(MakeJob("j", v1::JOB_STATUS_QUEUED));
  EXPECT_EQ(gets_.size(), 1u) << "never two reads of one job at once";
  scheduler_.RunDue();  // The next read was due at 1 s: it goes at once.
  EXPECT_THAT(GetSeconds(), ElementsAre(0, 2.5));
}

TEST_F(JobWatchRegistryTest, SlowWatcherGetsTheLatestStateAndNeverMissesTheTerminalOne) {
  Registry();
  TestSink fast_sink, slow_sink;
  auto fast = Watch("j", fast_sink);
  auto slow = Watch("j", slow_sink);
  std::vector<std::string> fast_seen;
  const std::vector<v1::Job> states = {
      MakeJob("j", v1::JOB_STATUS_QUEUED), MakeJob("j", v1::JOB_STATUS_VALIDATING),
      MakeJob("j", v1::JOB_STATUS_PROCESSING, 50), MakeJob("j", v1::JOB_STATUS_PROCESSING, 90),
      MakeJob("j", v1::JOB_STATUS_COMPLETED, 100)};
  for (size_t i = 0; i < states.size(); ++i) {
    if (i > 0) scheduler_.AdvanceTo(scheduler_.next_due());
    AnswerGet(states[i]);
    Drained d = Drain(*fast);  // The fast watcher keeps up.
    fast_seen.insert(fast_seen.end(), d.states.begin(), d.states.end());
    if (i == 1) {
      // The slow one takes a single state midway, then stalls.
      JobSubscription::Next next = slow->TakeNext();
      ASSERT_NE(next.job, nullptr);
      EXPECT_EQ(next.job->status(), v1::JOB_STATUS_VALIDATING) << "the latest, not the oldest";
    }
  }
  EXPECT_EQ(fast_seen.size(), states.size());
  // One slot per job: the stalled watcher holds one state, the terminal one, then the end.
  Drained slow_rest = Drain(*slow);
  EXPECT_THAT(slow_rest.states, ElementsAre("j:JOB_STATUS_COMPLETED/100"));
  ASSERT_TRUE(slow_rest.end.has_value());
  EXPECT_TRUE(slow_rest.end->ok());
  EXPECT_EQ(slow_sink.ready(), 0) << "a watcher that never asked is never woken";
}

TEST_F(JobWatchRegistryTest, LateJoinerGetsTheLastStateAtOnceWithoutAnExtraRead) {
  Registry();
  TestSink first_sink, late_sink;
  auto first = Watch("j", first_sink);
  AnswerGet(MakeJob("j", v1::JOB_STATUS_PROCESSING, 40));
  auto late = Watch("j", late_sink);
  EXPECT_EQ(gets_.size(), 1u);
  JobSubscription::Next next = late->TakeNext();
  ASSERT_NE(next.job, nullptr);
  EXPECT_EQ(next.job->completed_rows(), 40);
}

TEST_F(JobWatchRegistryTest, LastWatcherLeavingStopsThePollerAndDropsTheAnswerInFlight) {
  Registry();
  TestSink a_sink, b_sink;
  auto a = Watch("j", a_sink);
  auto b = Watch("j", b_sink);
  AnswerGet(MakeJob("j", v1::JOB_STATUS_QUEUED));
  a->Close();
  EXPECT_EQ(registry_->Stats().watched_jobs, 1u) << "one watcher left";
  scheduler_.AdvanceBy(absl::Seconds(1));
  ASSERT_EQ(pending_gets_.size(), 1u);
  b->TakeNext();  // Arms b.
  b->TakeNext();
  b.reset();  // Destroying the subscription closes it: a deadline or a disconnect.
  EXPECT_EQ(registry_->Stats().watched_jobs, 0u);
  EXPECT_EQ(registry_->Stats().subscribers, 0u);
  AnswerGet(MakeJob("j", v1::JOB_STATUS_PROCESSING));  // Arrives after everyone left.
  EXPECT_EQ(b_sink.ready(), 0);
  EXPECT_EQ(scheduler_.pending(), 0u);
  scheduler_.AdvanceBy(absl::Minutes(5));
  EXPECT_EQ(gets_.size(), 2u);
  // A new watcher starts a new poller.
  TestSink c_sink;
  auto c = Watch("j", c_sink);
  EXPECT_EQ(gets_.size(), 3u);
}

TEST_F(JobWatchRegistryTest, ClosingBetweenReadsCancelsTheTimer) {
  Registry();
  TestSink sink;
  auto sub = Watch("j", sink);
  AnswerGet(MakeJob("j", v1::JOB_STATUS_QUEUED));
  EXPECT_EQ(scheduler_.pending(), 1u);
  sub->Close();
  EXPECT_EQ(scheduler_.pending(), 0u);
  JobSubscription::Next next = sub->TakeNext();
  ASSERT_TRUE(next.end.has_value());
  EXPECT_EQ(next.end->code(), absl::StatusCode::kCancelled);
}

TEST_F(JobWatchRegistryTest, BoundsAreResourceExhaustedWithRetryInfo) {
  JobWatchOptions options = Options();
  options.max_subscribers = 3;
  options.max_watched_jobs = 2;
  Registry(options);
  TestSink sinks[5];
  auto a1 = Watch("a", sinks[0]);
  auto b1 = Watch("b", sinks[1]);
  auto c1 = registry_->WatchJob("c", &sinks[2]);  // A third job.
  EXPECT_EQ(c1.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(c1.status().message(), HasSubstr("2 distinct jobs"));
  EXPECT_TRUE(wire::RetryDelay(c1.error()).has_value());
  auto a2 = Watch("a", sinks[3]);  // Same job: fine.
  auto a3 = registry_->WatchJob("a", &sinks[4]);
  EXPECT_EQ(a3.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(a3.status().message(), HasSubstr("3 job watches"));
  auto all = registry_->WatchAllJobs(&sinks[4], false);
  EXPECT_EQ(all.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(registry_->Stats().refused, 3);
  b1->Close();
  EXPECT_TRUE(registry_->WatchJob("c", &sinks[2]).ok()) << "room again";
}

TEST_F(JobWatchRegistryTest, ReadErrorsAreRetriedThenTheWatchEndsUnavailable) {
  Registry();  // unreadable_timeout 30 s, max interval 8 s.
  TestSink sink;
  auto sub = Watch("j", sink);
  AnswerGet(MakeJob("j", v1::JOB_STATUS_PROCESSING, 1));
  Drain(*sub);
  // Failures: the pace grows as for an idle job; a success in between resets the clock.
  scheduler_.AdvanceTo(scheduler_.next_due());
  AnswerGet(absl::UnavailableError("503"));
  scheduler_.AdvanceTo(scheduler_.next_due());
  AnswerGet(MakeJob("j", v1::JOB_STATUS_PROCESSING, 1));  // t=3: good again.
  for (int i = 0; i < 10 && scheduler_.pending() > 0; ++i) {
    scheduler_.AdvanceTo(scheduler_.next_due());
    AnswerGet(absl::DeadlineExceededError("upstream slow"));
  }
  // Reads at 0, 1 (fail), 3 (ok), then failures at 7, 15, 23, 31, 39 (t - 3 >= 30 ends it).
  EXPECT_THAT(GetSeconds(), ElementsAre(0, 1, 3, 7, 15, 23, 31, 39));
  Drained drained = Drain(*sub);
  ASSERT_TRUE(drained.end.has_value());
  EXPECT_EQ(drained.end->code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(drained.end->message(), HasSubstr("job j could not be read from Userpilot for 36s"));
  EXPECT_THAT(drained.end->message(), HasSubstr("upstream slow"));
  EXPECT_EQ(registry_->Stats().watched_jobs, 0u);
  EXPECT_EQ(registry_->Stats().poll_errors, 6);
}

TEST_F(JobWatchRegistryTest, UnknownJobEndsNotFoundWithTheUpstreamDetails) {
  Registry();
  TestSink a_sink, b_sink;
  auto a = Watch("nope", a_sink);
  auto b = Watch("nope", b_sink);
  a->TakeNext();
  CallFacts facts;
  facts.reason = ErrorReason::kUpstreamNotFound;
  const CallStatus not_found(absl::NotFoundError("no job nope"), facts);
  AnswerGet(not_found);
  EXPECT_EQ(a_sink.ready(), 1);
  for (auto* sub : {a.get(), b.get()}) {
    Drained d = Drain(*sub);
    EXPECT_TRUE(d.states.empty());
    ASSERT_TRUE(d.end.has_value());
    EXPECT_EQ(d.end->code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(wire::Reason(*d.end), "UPSTREAM_NOT_FOUND");
  }
  EXPECT_EQ(scheduler_.pending(), 0u);
}

TEST_F(JobWatchRegistryTest, ShutdownEndsEveryWatchUnavailableAndRefusesNewOnes) {
  Registry();
  TestSink a_sink, b_sink, list_sink;
  auto a = Watch("a", a_sink);
  auto b = Watch("b", b_sink);
  auto list = registry_->WatchAllJobs(&list_sink, true);
  ASSERT_TRUE(list.ok());
  AnswerGet(MakeJob("a", v1::JOB_STATUS_PROCESSING, 3));
  a->TakeNext();
  a->TakeNext();  // Armed: a waits.
  registry_->Shutdown();
  EXPECT_EQ(a_sink.ready(), 1);
  for (auto* sub : {a.get(), b.get(), list->get()}) {
    Drained d = Drain(*sub);
    ASSERT_TRUE(d.end.has_value());
    EXPECT_EQ(d.end->code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(d.end->message(), HasSubstr("shutting down"));
  }
  EXPECT_EQ(scheduler_.pending(), 0u);
  TestSink late;
  EXPECT_EQ(registry_->WatchJob("a", &late).status().code(), absl::StatusCode::kUnavailable);
  AnswerGet(MakeJob("b", v1::JOB_STATUS_QUEUED));  // In flight at shutdown: dropped.
  AnswerList({});
  EXPECT_EQ(b_sink.ready(), 0);
}

TEST_F(JobWatchRegistryTest, DestroyingTheRegistryWithReadsInFlightIsSafe) {
  Registry();
  TestSink sink;
  auto sub = Watch("j", sink);
  registry_.reset();
  AnswerGet(MakeJob("j", v1::JOB_STATUS_QUEUED));
  Drained d = Drain(*sub);
  ASSERT_TRUE(d.end.has_value());
  EXPECT_EQ(d.end->code(), absl::StatusCode::kUnavailable);
  sub.reset();  // Closing after the registry is gone is a no-op.
}

TEST_F(JobWatchRegistryTest, AllJobsWatchSendsNewAndChangedJobsFromOneSharedList) {
  Registry();
  TestSink existing_sink, changes_sink;
  auto existing = registry_->WatchAllJobs(&existing_sink, /*include_existing=*/true);
  auto changes = registry_->WatchAllJobs(&changes_sink, /*include_existing=*/false);
  ASSERT_TRUE(existing.ok() && changes.ok());
  EXPECT_EQ(list_times_.size(), 1u);
  AnswerList({MakeJob("b", v1::JOB_STATUS_PROCESSING), MakeJob("a", v1::JOB_STATUS_COMPLETED)});
  EXPECT_THAT(Drain(**existing).states,
              ElementsAre("b:JOB_STATUS_PROCESSING/0", "a:JOB_STATUS_COMPLETED/0"));
  EXPECT_TRUE(Drain(**changes).states.empty());
  scheduler_.AdvanceTo(scheduler_.next_due());
  // b moves on (and a's elapsed time alone changes: not sent); c appears.
  AnswerList({MakeJob("c", v1::JOB_STATUS_QUEUED), MakeJob("b", v1::JOB_STATUS_COMPLETED),
              MakeJob("a", v1::JOB_STATUS_COMPLETED, -1, 99)});
  for (auto* sub : {existing->get(), changes->get()}) {
    EXPECT_THAT(Drain(*sub).states,
                ElementsAre("c:JOB_STATUS_QUEUED/0", "b:JOB_STATUS_COMPLETED/0"));
  }
  // A late joiner asking for existing jobs gets the list as last read, without a read.
  TestSink late_sink;
  auto late = registry_->WatchAllJobs(&late_sink, true);
  EXPECT_EQ(Drain(**late).states.size(), 3u);
  EXPECT_EQ(list_times_.size(), 2u);
  EXPECT_TRUE(registry_->Stats().list_watched);
  existing->get()->Close();
  changes->get()->Close();
  late->get()->Close();
  EXPECT_FALSE(registry_->Stats().list_watched);
  EXPECT_EQ(scheduler_.pending(), 0u);
}

TEST_F(JobWatchRegistryTest, AllJobsWatchKeepsOneSlotPerJobForASlowReader) {
  Registry();
  TestSink sink;
  auto sub = registry_->WatchAllJobs(&sink, false);
  ASSERT_TRUE(sub.ok());
  AnswerList({MakeJob("a", v1::JOB_STATUS_QUEUED)});
  for (auto status :
       {v1::JOB_STATUS_VALIDATING, v1::JOB_STATUS_PROCESSING, v1::JOB_STATUS_COMPLETED}) {
    scheduler_.AdvanceTo(scheduler_.next_due());
    AnswerList({MakeJob("b", v1::JOB_STATUS_QUEUED), MakeJob("a", status)});
  }
  // In order of first arrival; a's slot holds only its latest state.
  EXPECT_THAT(Drain(**sub).states,
              ElementsAre("b:JOB_STATUS_QUEUED/0", "a:JOB_STATUS_COMPLETED/0"));
}

TEST_F(JobWatchRegistryTest, SinkIsNotifiedOnlyWhenArmedAndNeverAfterClose) {
  Registry();
  TestSink sink;
  auto sub = Watch("j", sink);
  AnswerGet(MakeJob("j", v1::JOB_STATUS_QUEUED));
  EXPECT_EQ(sink.ready(), 0) << "not armed: nothing taken yet";
  Drain(*sub);  // Takes the state, then arms.
  scheduler_.AdvanceTo(scheduler_.next_due());
  AnswerGet(MakeJob("j", v1::JOB_STATUS_VALIDATING));
  EXPECT_EQ(sink.ready(), 1);
  scheduler_.AdvanceTo(scheduler_.next_due());
  AnswerGet(MakeJob("j", v1::JOB_STATUS_PROCESSING));
  EXPECT_EQ(sink.ready(), 1) << "one notice per arming";
  Drain(*sub);
  sub->Close();
  scheduler_.AdvanceBy(absl::Minutes(1));
  EXPECT_EQ(sink.ready(), 1);
  EXPECT_EQ(sink.refs(), 0);
}

TEST(JobWatchOptionsTest, ValidateNamesTheBadField) {
  EXPECT_TRUE(JobWatchOptions().Validate().ok());
  JobWatchOptions o;
  o.max_poll_interval = absl::Milliseconds(10);
  EXPECT_THAT(o.Validate().message(), HasSubstr("max_poll_interval"));
  o = JobWatchOptions();
  o.poll_interval_growth = 0.5;
  EXPECT_THAT(o.Validate().message(), HasSubstr("poll_interval_growth"));
  o = JobWatchOptions();
  o.max_subscribers = 0;
  EXPECT_THAT(o.Validate().message(), HasSubstr("max_subscribers"));
}

}  // namespace
}  // namespace userpilot::gateway
