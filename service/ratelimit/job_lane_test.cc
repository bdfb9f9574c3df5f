#include "service/ratelimit/job_lane.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/ratelimit/job_lane_observer.h"
#include "tests/mocks/fake_scheduler.h"
#include "tests/mocks/mock_userpilot_stub.h"
#include "tests/util/wire_details.h"

namespace userpilot::gateway {
namespace {

using ::testing::_;
using ::testing::NiceMock;

// A Userpilot with one bulk job and one import job at a time, on the fake clock: a job runs
// until the test finishes it. GetJob and ListJobs count as polls.
class FakeJobs {
 public:
  explicit FakeJobs(NiceMock<MockUserpilotStub>& mock) {
    ON_CALL(mock, BulkIdentifyUsers(_, _, _))
        .WillByDefault([this](const CallOptions&, const v1::BulkIdentifyUsersRequest&,
                              StubCallback<v1::Job> done) { Submit("users_bulk_identify", done); });
    ON_CALL(mock, BulkIdentifyCompanies(_, _, _))
        .WillByDefault(
            [this](const CallOptions&, const v1::BulkIdentifyCompaniesRequest&,
                   StubCallback<v1::Job> done) { Submit("companies_bulk_identify", done); });
    ON_CALL(mock, ImportFile(_, _, _))
        .WillByDefault([this](const CallOptions&, const ImportFileRequest& request,
                              StubCallback<v1::Job> done) {
          Submit(request.target == v1::IMPORT_TARGET_HISTORICAL_IMPORT ? "import"
                                                                       : "users_bulk_identify",
                 done);
        });
    ON_CALL(mock, GetJob(_, _, _))
        .WillByDefault([this](const CallOptions&, const v1::GetJobRequest& request,
                              StubCallback<v1::Job> done) {
          ++polls;
          auto it = jobs.find(request.job_id());
          if (it == jobs.end()) {
            std::move(done)(Result<v1::Job>(absl::NotFoundError("no such job")));
            return;
          }
          std::move(done)(it->second);
        });
    ON_CALL(mock, ListJobs(_, _, _))
        .WillByDefault([this](const CallOptions&, const v1::ListJobsRequest&,
                              StubCallback<v1::ListJobsResponse> done) {
          ++lists;
          v1::ListJobsResponse response;
          for (const auto& [id, job] : jobs) *response.add_jobs() = job;
          std::move(done)(response);
        });
  }

  // Starts a job as if another client of the key had submitted it.
  std::string Start(const std::string& type) {
    const std::string id = absl::StrCat(type == "import" ? "import" : "bulk", ":jobs:NX-", ++next);
    v1::Job job;
    job.set_job_id(id);
    job.set_type(type);
    job.set_status(v1::JOB_STATUS_PROCESSING);
    jobs[id] = job;
    return id;
  }
  void Finish(const std::string& id) { jobs[id].set_status(v1::JOB_STATUS_COMPLETED); }
  bool Running(bool import) const {
    for (const auto& [id, job] : jobs) {
      if (job.status() == v1::JOB_STATUS_PROCESSING && (job.type() == "import") == import) {
        return true;
      }
    }
    return false;
  }

  std::map<std::string, v1::Job> jobs;
  int submitted = 0;
  int conflicts = 0;
  int polls = 0;
  int lists = 0;

 private:
  void Submit(const std::string& type, StubCallback<v1::Job>& done) {
    if (Running(type == "import")) {
      ++conflicts;
      CallFacts facts;
      facts.reason = ErrorReason::kJobInProgress;
      std::move(done)(Result<v1::Job>(absl::FailedPreconditionError("409"), std::move(facts)));
      return;
    }
    ++submitted;
    std::move(done)(jobs[Start(type)]);
  }
  int next = 0;
};

class JobLaneTest : public ::testing::Test {
 protected:
  JobLaneTest() { Make(JobLaneOptions()); }

  void Make(JobLaneOptions options) {
    stub_ = std::make_unique<JobLaneStub>(mock_, scheduler_, options);
  }

  CallOptions Deadline(absl::Duration d) {
    CallOptions options;
    options.deadline = scheduler_.Now() + d;
    return options;
  }

  // A BulkIdentifyUsers with `deadline`; its answer lands in the returned slot.
  std::shared_ptr<std::optional<Result<v1::Job>>> Users(absl::Duration deadline) {
    auto slot = std::make_shared<std::optional<Result<v1::Job>>>();
    stub_->BulkIdentifyUsers(Deadline(deadline), v1::BulkIdentifyUsersRequest(),
                             [slot](Result<v1::Job> r) { slot->emplace(std::move(r)); });
    return slot;
  }
  std::shared_ptr<std::optional<Result<v1::Job>>> Companies(absl::Duration deadline) {
    auto slot = std::make_shared<std::optional<Result<v1::Job>>>();
    stub_->BulkIdentifyCompanies(Deadline(deadline), v1::BulkIdentifyCompaniesRequest(),
                                 [slot](Result<v1::Job> r) { slot->emplace(std::move(r)); });
    return slot;
  }

  static void ExpectJobInProgress(const std::optional<Result<v1::Job>>& answer,
                                  const std::string& job_id) {
    ASSERT_TRUE(answer.has_value());
    ASSERT_FALSE(answer->ok());
    EXPECT_TRUE(absl::IsFailedPrecondition(answer->status())) << answer->status();
    const CallStatus error = answer->error();
    EXPECT_EQ(wire::Reason(error), "JOB_IN_PROGRESS");
    EXPECT_EQ(wire::Metadata(error)["job_id"], job_id);
    EXPECT_THAT(std::string(answer->status().message()), ::testing::HasSubstr(job_id));
  }

  FakeScheduler scheduler_;
  std::shared_ptr<NiceMock<MockUserpilotStub>> mock_ =
      std::make_shared<NiceMock<MockUserpilotStub>>();
  FakeJobs jobs_{*mock_};
  std::unique_ptr<JobLaneStub> stub_;
};

TEST_F(JobLaneTest, CompaniesRightAfterAFinishedUsersJobIsSentAtOnce) {
  auto users = Users(absl::Seconds(60));
  ASSERT_TRUE(users->has_value());
  ASSERT_TRUE((*users)->ok());
  jobs_.Finish((**users)->job_id());
  auto companies = Companies(absl::Seconds(60));
  // One poll says the users job completed; the call is sent with no time passing.
  ASSERT_TRUE(companies->has_value());
  EXPECT_TRUE((*companies)->ok()) << (*companies)->status();
  EXPECT_EQ(jobs_.submitted, 2);
  EXPECT_EQ(jobs_.conflicts, 0);
  EXPECT_EQ(jobs_.polls, 1);
  EXPECT_EQ(stub_->Stats()[0].remembered_job, (**companies)->job_id());
}

TEST_F(JobLaneTest, ABulkWhileTheLastRunsWaitsForItWithinItsDeadline) {
  auto users = Users(absl::Seconds(60));
  const std::string first = (**users)->job_id();
  const absl::Time start = scheduler_.Now();
  auto companies = Companies(absl::Seconds(30));
  EXPECT_FALSE(companies->has_value());
  scheduler_.AdvanceBy(absl::Seconds(3));
  EXPECT_FALSE(companies->has_value());
  jobs_.Finish(first);
  scheduler_.AdvanceBy(absl::Seconds(2));  // The next poll (every 2 s) sees it finished.
  ASSERT_TRUE(companies->has_value());
  EXPECT_TRUE((*companies)->ok()) << (*companies)->status();
  EXPECT_EQ(jobs_.conflicts, 0);  // Never sent while the first ran.
  EXPECT_EQ(jobs_.polls, 3);      // At 0, 2 and 4 s.
  EXPECT_LE(scheduler_.Now() - start, absl::Seconds(5));
  EXPECT_EQ(stub_->Stats()[0].waited, 1u);
}

TEST_F(JobLaneTest, ABulkThatCannotOutwaitTheRunningJobIsRefusedAtOnce) {
  auto users = Users(absl::Seconds(60));
  const std::string first = (**users)->job_id();
  auto companies = Companies(absl::Seconds(1));
  // The next poll would come after the deadline less headroom: refused now, nothing sent.
  ExpectJobInProgress(*companies, first);
  EXPECT_EQ(jobs_.submitted, 1);
  EXPECT_EQ(jobs_.conflicts, 0);
  EXPECT_EQ(stub_->Stats()[0].refused_job_unfinished, 1u);
  EXPECT_EQ(stub_->Stats()[0].refused(), 1u);
}

TEST_F(JobLaneTest, AConflictWithAJobStartedElsewhereWaitsForThatJob) {
  const std::string elsewhere = jobs_.Start("companies_bulk_identify");
  auto users = Users(absl::Seconds(30));
  EXPECT_FALSE(users->has_value());
  EXPECT_EQ(jobs_.conflicts, 1);
  EXPECT_EQ(jobs_.lists, 1);
  EXPECT_EQ(stub_->Stats()[0].remembered_job, elsewhere);
  jobs_.Finish(elsewhere);
  scheduler_.AdvanceBy(absl::Seconds(2));
  ASSERT_TRUE(users->has_value());
  EXPECT_TRUE((*users)->ok()) << (*users)->status();
  EXPECT_EQ(jobs_.submitted, 1);
  EXPECT_EQ(stub_->Stats()[0].conflicts, 1u);
}

TEST_F(JobLaneTest, AConflictThatCannotBeOutwaitedIsRefusedNamingTheRunningJob) {
  const std::string elsewhere = jobs_.Start("users_bulk_identify");
  auto companies = Companies(absl::Seconds(1));
  ExpectJobInProgress(*companies, elsewhere);
  EXPECT_EQ(jobs_.submitted, 0);
}

TEST_F(JobLaneTest, ImportsHaveTheirOwnLane) {
  auto users = Users(absl::Seconds(60));
  ASSERT_TRUE((*users)->ok());
  std::optional<Result<v1::Job>> import;
  ImportFileRequest request;
  request.target = v1::IMPORT_TARGET_HISTORICAL_IMPORT;
  stub_->ImportFile(Deadline(absl::Seconds(1)), request,
                    [&](Result<v1::Job> r) { import.emplace(std::move(r)); });
  ASSERT_TRUE(import.has_value());
  EXPECT_TRUE(import->ok()) << import->status();
  EXPECT_EQ(jobs_.polls, 0);
  // A bulk file upload is on the bulk lane: it waits for the users job.
  std::optional<Result<v1::Job>> bulk_file;
  request.target = v1::IMPORT_TARGET_USERS_BULK;
  stub_->ImportFile(Deadline(absl::Seconds(1)), request,
                    [&](Result<v1::Job> r) { bulk_file.emplace(std::move(r)); });
  ExpectJobInProgress(bulk_file, (**users)->job_id());
}

TEST_F(JobLaneTest, WaitingCallsAreBoundedAndEachIsRefusedAtItsDeadline) {
  JobLaneOptions options;
  options.max_waiting = 1;
  Make(options);
  auto users = Users(absl::Seconds(60));
  const std::string first = (**users)->job_id();
  auto head = Users(absl::Seconds(30));   // Polls the first job.
  auto queued = Users(absl::Seconds(5));  // Waits its turn.
  auto full = Users(absl::Seconds(30));   // One too many.
  EXPECT_FALSE(full->has_value());        // Never answered inside the call ...
  scheduler_.RunDue();
  ExpectJobInProgress(*full, first);  // ... but at once.
  EXPECT_FALSE(queued->has_value());
  scheduler_.AdvanceBy(absl::Seconds(5) - JobLaneOptions().headroom);
  ExpectJobInProgress(*queued, first);  // Its deadline (less headroom) came first.
  EXPECT_FALSE(head->has_value());
  jobs_.Finish(first);
  scheduler_.AdvanceBy(absl::Seconds(2));
  ASSERT_TRUE(head->has_value());
  EXPECT_TRUE((*head)->ok());
  EXPECT_EQ(stub_->Stats()[0].refused_lane_full, 1u);
  EXPECT_EQ(stub_->Stats()[0].refused_deadline, 1u);
  EXPECT_EQ(stub_->Stats()[0].refused_job_unfinished, 0u);
  EXPECT_EQ(stub_->Stats()[0].max_waiting, 1u);
  EXPECT_EQ(stub_->Stats()[0].waiting, 0u);
}

class RecordingLaneObserver : public JobLaneObserver {
 public:
  void OnSent(absl::string_view lane, absl::Duration wait) override {
    sends.emplace_back(std::string(lane), wait);
  }
  std::vector<std::pair<std::string, absl::Duration>> sends;
};

TEST_F(JobLaneTest, TheObserverSeesEverySendWithItsWait) {
  RecordingLaneObserver observer;
  JobLaneOptions options;
  options.observer = &observer;
  Make(options);
  auto users = Users(absl::Seconds(60));
  const std::string first = (**users)->job_id();
  auto companies = Companies(absl::Seconds(60));  // Polls the users job every 2 s.
  scheduler_.AdvanceBy(absl::Seconds(3));
  jobs_.Finish(first);
  scheduler_.AdvanceBy(absl::Seconds(1));  // The poll at 4 s finds it finished.
  ASSERT_TRUE(companies->has_value());
  EXPECT_TRUE((*companies)->ok());
  const std::vector<std::pair<std::string, absl::Duration>> want = {{"bulk", absl::ZeroDuration()},
                                                                    {"bulk", absl::Seconds(4)}};
  EXPECT_EQ(observer.sends, want);
  const JobLaneStats stats = stub_->Stats()[0];
  EXPECT_EQ(stats.lane, "bulk");
  EXPECT_EQ(stats.sent, 2u);
  EXPECT_EQ(stats.waited, 1u);
  EXPECT_EQ(stub_->Stats()[1].lane, "imports");
  EXPECT_EQ(stub_->Stats()[1].sent, 0u);
}

TEST_F(JobLaneTest, OtherCallsPassStraightThrough) {
  EXPECT_CALL(*mock_, TrackEvent(_, _, _))
      .WillOnce([](const CallOptions&, const v1::TrackEventRequest&,
                   StubCallback<v1::TrackEventResponse> done) {
        std::move(done)(v1::TrackEventResponse());
      });
  std::optional<Result<v1::TrackEventResponse>> answer;
  stub_->TrackEvent(Deadline(absl::Seconds(1)), v1::TrackEventRequest(),
                    [&](Result<v1::TrackEventResponse> r) { answer.emplace(std::move(r)); });
  ASSERT_TRUE(answer.has_value());
  EXPECT_TRUE(answer->ok());
}

TEST(JobLaneOptionsTest, ValidateNamesTheField) {
  JobLaneOptions options;
  EXPECT_TRUE(options.Validate().ok());
  options.poll_interval = absl::ZeroDuration();
  EXPECT_THAT(std::string(options.Validate().message()), ::testing::HasSubstr("poll_interval"));
  options = JobLaneOptions();
  options.max_waiting = 0;
  EXPECT_THAT(std::string(options.Validate().message()), ::testing::HasSubstr("max_waiting"));
}

}  // namespace
}  // namespace userpilot::gateway
