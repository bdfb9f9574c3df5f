#include "service/jobs/import/importer.h"

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/http/body_source.h"
#include "tests/mocks/fake_scheduler.h"
#include "tests/mocks/mock_userpilot_stub.h"
#include "tests/util/wire_details.h"

namespace userpilot::gateway {
namespace {

using ::testing::_;
using ::testing::HasSubstr;
using ::testing::NiceMock;

v1::Job MakeJob(const std::string& id, v1::JobStatus status, const std::string& type = "import") {
  v1::Job job;
  job.set_job_id(id);
  job.set_status(status);
  job.set_type(type);
  return job;
}

CallStatus Conflict() {
  CallFacts facts;
  facts.reason = ErrorReason::kJobInProgress;
  return CallStatus(absl::FailedPreconditionError("409: job_in_progress"), std::move(facts));
}

CallStatus RateLimited(absl::Duration retry_after) {
  CallFacts facts;
  facts.reason = ErrorReason::kUpstreamRateLimited;
  facts.retry_delay = RetryDelay{retry_after, RetryDelaySource::kRetryAfter};
  return CallStatus(absl::ResourceExhaustedError("429"), std::move(facts));
}

class ImporterTest : public ::testing::Test {
 protected:
  ImporterTest() {
    ON_CALL(stub_, ImportFile(_, _, _))
        .WillByDefault([this](const CallOptions&, const ImportFileRequest& request,
                              StubCallback<v1::Job> done) {
          EXPECT_NE(request.file, nullptr);
          upload_times_.push_back(scheduler_.Now());
          uploads_.push_back(std::move(done));
        });
    ON_CALL(stub_, ListJobs(_, _, _))
        .WillByDefault(
            [this](const CallOptions&, const v1::ListJobsRequest&,
                   StubCallback<v1::ListJobsResponse> done) { lists_.push_back(std::move(done)); });
    ON_CALL(stub_, GetJob(_, _, _))
        .WillByDefault([this](const CallOptions&, const v1::GetJobRequest& request,
                              StubCallback<v1::Job> done) {
          get_ids_.push_back(request.job_id());
          gets_.push_back(std::move(done));
        });
  }

  ImportOptions Options() {
    ImportOptions options;
    options.max_concurrent_imports = 2;
    options.worker_threads = 1;
    options.conflict_retry_interval = absl::Seconds(10);
    return options;
  }

  void Make(ImportOptions options) {
    registry_ = std::make_unique<JobWatchRegistry>(stub_, scheduler_, JobWatchOptions());
    importer_ = std::make_unique<Importer>(stub_, *registry_, scheduler_, std::move(options));
  }

  std::shared_ptr<ImportSubmission> Submit(bool wait, absl::Duration within = absl::Minutes(5)) {
    CallOptions options;
    options.deadline = scheduler_.Now() + within;
    options.caller = "test";
    ImportFileRequest request;
    request.target = v1::IMPORT_TARGET_HISTORICAL_IMPORT;
    request.format = v1::IMPORT_FORMAT_CSV;
    request.filename = "a.csv";
    request.file = std::make_shared<StringBodySource>("a\n1\n");
    return importer_->Submit(options, std::move(request), wait, [this](Result<v1::Job> job) {
      EXPECT_FALSE(result_.has_value()) << "done ran twice";
      result_ = std::move(job);
    });
  }

  template <typename T>
  struct Same {
    using type = T;
  };
  template <typename T>
  static void Answer(std::deque<StubCallback<T>>& calls, typename Same<Result<T>>::type answer) {
    ASSERT_FALSE(calls.empty());
    StubCallback<T> done = std::move(calls.front());
    calls.pop_front();
    std::move(done)(std::move(answer));
  }

  static v1::ListJobsResponse List(std::vector<v1::Job> jobs) {
    v1::ListJobsResponse response;
    for (auto& job : jobs) *response.add_jobs() = std::move(job);
    return response;
  }

  FakeScheduler scheduler_;
  NiceMock<MockUserpilotStub> stub_;
  std::deque<StubCallback<v1::Job>> uploads_;
  std::vector<absl::Time> upload_times_;
  std::deque<StubCallback<v1::ListJobsResponse>> lists_;
  std::deque<StubCallback<v1::Job>> gets_;
  std::vector<std::string> get_ids_;
  std::optional<Result<v1::Job>> result_;
  std::unique_ptr<JobWatchRegistry> registry_;
  std::unique_ptr<Importer> importer_;
};

TEST_F(ImporterTest, AdmitsUpToTheBoundThenRefusesWithRetryInfo) {
  Make(Options());
  auto a = importer_->Admit();
  auto b = importer_->Admit();
  ASSERT_TRUE(a.ok() && b.ok());
  auto c = importer_->Admit();
  EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(c.status().message(), HasSubstr("2 concurrent imports"));
  EXPECT_TRUE(wire::RetryDelay(c.error()).has_value());
  EXPECT_EQ(importer_->Stats().running, 2u);
  { Importer::Permit released = *std::move(a); }
  EXPECT_EQ(importer_->Stats().running, 1u);
  EXPECT_TRUE(importer_->Admit().ok());
  importer_->Shutdown();
  EXPECT_EQ(importer_->Admit().status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(ImporterTest, UploadAnswerIsTheResult) {
  Make(Options());
  auto submission = Submit(false);
  ASSERT_EQ(uploads_.size(), 1u);
  Answer(uploads_, MakeJob("import:jobs:1", v1::JOB_STATUS_QUEUED));
  ASSERT_TRUE(result_.has_value());
  ASSERT_TRUE(result_->ok());
  EXPECT_EQ((*result_)->job_id(), "import:jobs:1");
}

TEST_F(ImporterTest, ConflictWithoutWaitingIsJobInProgress) {
  Make(Options());
  auto submission = Submit(false);
  Answer(uploads_, Conflict());
  ASSERT_TRUE(result_.has_value());
  EXPECT_EQ(result_->status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(lists_.empty());
}

TEST_F(ImporterTest, ConflictWithWaitingWatchesTheRunningJobThenSubmitsAgain) {
  Make(Options());
  auto submission = Submit(true);
  Answer(uploads_, Conflict());
  ASSERT_EQ(lists_.size(), 1u);
  // The newest unfinished job of the same family is the one to wait for; bulk jobs and finished
  // imports are not.
  Answer(lists_, List({MakeJob("bulk:jobs:9", v1::JOB_STATUS_PROCESSING, "users_bulk_identify"),
                       MakeJob("import:jobs:2", v1::JOB_STATUS_PROCESSING),
                       MakeJob("import:jobs:1", v1::JOB_STATUS_COMPLETED)}));
  ASSERT_EQ(get_ids_.size(), 1u);
  EXPECT_EQ(get_ids_[0], "import:jobs:2");
  Answer(gets_, MakeJob("import:jobs:2", v1::JOB_STATUS_PROCESSING));
  EXPECT_EQ(uploads_.size(), 0u);
  scheduler_.AdvanceTo(scheduler_.next_due());
  Answer(gets_, MakeJob("import:jobs:2", v1::JOB_STATUS_COMPLETED));
  ASSERT_EQ(uploads_.size(), 1u) << "submitted again once the running job ended";
  EXPECT_EQ(registry_->Stats().subscribers, 0u) << "the watch was closed";
  Answer(uploads_, MakeJob("import:jobs:3", v1::JOB_STATUS_QUEUED));
  ASSERT_TRUE(result_.has_value() && result_->ok());
  EXPECT_EQ((*result_)->job_id(), "import:jobs:3");
  EXPECT_EQ(importer_->Stats().conflict_waits, 1);
  EXPECT_EQ(importer_->Stats().uploads, 2);
}

TEST_F(ImporterTest, ConflictWithNoRunningJobListedRetriesAfterAnInterval) {
  Make(Options());
  auto submission = Submit(true);
  Answer(uploads_, Conflict());
  Answer(lists_, List({MakeJob("import:jobs:1", v1::JOB_STATUS_COMPLETED)}));
  EXPECT_TRUE(get_ids_.empty());
  scheduler_.AdvanceBy(absl::Seconds(9));
  EXPECT_EQ(uploads_.size(), 0u);
  scheduler_.AdvanceBy(absl::Seconds(1));
  ASSERT_EQ(uploads_.size(), 1u);
  Answer(uploads_, MakeJob("import:jobs:5", v1::JOB_STATUS_QUEUED));
  EXPECT_TRUE(result_.has_value() && result_->ok());
}

TEST_F(ImporterTest, WaitThatReachesTheDeadlineIsDeadlineExceededNamingTheJob) {
  Make(Options());
  auto submission = Submit(true, absl::Seconds(30));
  Answer(uploads_, Conflict());
  Answer(lists_, List({MakeJob("import:jobs:2", v1::JOB_STATUS_PROCESSING)}));
  Answer(gets_, MakeJob("import:jobs:2", v1::JOB_STATUS_PROCESSING));
  for (int i = 0; i < 100 && !result_.has_value(); ++i) {
    scheduler_.AdvanceTo(scheduler_.next_due());
    if (!gets_.empty()) Answer(gets_, MakeJob("import:jobs:2", v1::JOB_STATUS_PROCESSING));
  }
  ASSERT_TRUE(result_.has_value());
  EXPECT_EQ(result_->status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(result_->status().message(), HasSubstr("job import:jobs:2"));
  auto info = wire::Info(result_->error());
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), "JOB_IN_PROGRESS");
  EXPECT_EQ(info->metadata().at("job_id"), "import:jobs:2");
  EXPECT_EQ(registry_->Stats().subscribers, 0u);
  EXPECT_EQ(uploads_.size(), 0u);
}

// Retrying an upload is the upstream stack's retry layer's decision: whatever the answer, the
// importer sends an upload once (and again only after waiting out a running job).
TEST_F(ImporterTest, FailedUploadsAreNeverRepeatedHere) {
  Make(Options());
  for (const CallStatus& failure :
       std::vector<CallStatus>{RateLimited(absl::Seconds(2)), absl::UnavailableError("503")}) {
    result_.reset();
    auto submission = Submit(true);
    Answer(uploads_, failure);
    ASSERT_TRUE(result_.has_value());
    EXPECT_EQ(result_->status().code(), failure.code());
    scheduler_.AdvanceBy(absl::Minutes(1));
    EXPECT_TRUE(uploads_.empty());
    EXPECT_TRUE(lists_.empty());
  }
  EXPECT_EQ(upload_times_.size(), 2u);
}

TEST_F(ImporterTest, CancelEndsAWaitAtOnce) {
  Make(Options());
  auto submission = Submit(true);
  Answer(uploads_, Conflict());
  Answer(lists_, List({MakeJob("import:jobs:2", v1::JOB_STATUS_QUEUED)}));
  EXPECT_EQ(registry_->Stats().subscribers, 1u);
  submission->Cancel();
  ASSERT_TRUE(result_.has_value());
  EXPECT_EQ(result_->status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(registry_->Stats().subscribers, 0u);
  submission->Cancel();  // Idempotent.
}

TEST_F(ImporterTest, CancelWithAnUploadInFlightEndsWhenItAnswers) {
  Make(Options());
  auto submission = Submit(true);
  submission->Cancel();
  EXPECT_FALSE(result_.has_value());
  Answer(uploads_, Conflict());
  ASSERT_TRUE(result_.has_value());
  EXPECT_EQ(result_->status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(lists_.empty()) << "no wait after a cancel";
}

TEST(ImportOptionsTest, ValidateNamesTheBadField) {
  EXPECT_TRUE(ImportOptions().Validate().ok());
  ImportOptions o;
  o.limits.rows.max_bulk_rows = 20000;
  EXPECT_THAT(o.Validate().message(), HasSubstr("max_bulk_rows"));
  o = ImportOptions();
  o.idle_timeout = absl::ZeroDuration();
  EXPECT_THAT(o.Validate().message(), HasSubstr("idle_timeout"));
  o = ImportOptions();
  o.max_concurrent_imports = 0;
  EXPECT_THAT(o.Validate().message(), HasSubstr("max_concurrent_imports"));
}

}  // namespace
}  // namespace userpilot::gateway
