#include "service/jobs/import/import_session.h"

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

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

// What the gRPC reactor does for a session, recorded. Worker threads call it, so the test
// waits for what it expects (a condition, never a sleep).
class FakeStream final : public ImportStream {
 public:
  void ReadNext() override {
    std::lock_guard<std::mutex> lock(mu_);
    ++reads_;
    changed_.notify_all();
  }
  void Finish(Result<v1::Job> result) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++finishes_;
    result_ = std::move(result);
    changed_.notify_all();
  }

  // Waits until `reads` reads were asked for, or the call finished; true for the former.
  bool AwaitRead(int reads) {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait_for(lock, std::chrono::seconds(30),
                      [&] { return reads_ >= reads || result_.has_value(); });
    return reads_ >= reads && !result_.has_value();
  }
  Result<v1::Job> AwaitResult() {
    std::unique_lock<std::mutex> lock(mu_);
    changed_.wait_for(lock, std::chrono::seconds(30), [&] { return result_.has_value(); });
    EXPECT_TRUE(result_.has_value());
    return result_.value_or(absl::InternalError("no result"));
  }
  std::optional<Result<v1::Job>> result() {
    std::lock_guard<std::mutex> lock(mu_);
    return result_;
  }
  int reads() {
    std::lock_guard<std::mutex> lock(mu_);
    return reads_;
  }
  int finishes() {
    std::lock_guard<std::mutex> lock(mu_);
    return finishes_;
  }

 private:
  std::mutex mu_;
  std::condition_variable changed_;
  int reads_ = 0;
  int finishes_ = 0;
  std::optional<Result<v1::Job>> result_;
};

v1::ImportDataRequest Header(v1::ImportTarget target = v1::IMPORT_TARGET_USERS_BULK) {
  v1::ImportDataRequest message;
  message.mutable_header()->set_target(target);
  message.mutable_header()->set_format(v1::IMPORT_FORMAT_NDJSON);
  message.mutable_header()->set_filename("users.ndjson");
  return message;
}

v1::ImportDataRequest Chunk(std::string bytes) {
  v1::ImportDataRequest message;
  message.set_chunk(std::move(bytes));
  return message;
}

std::string Read(const HttpBodySource& body) {
  std::string out(static_cast<size_t>(body.size()), '\0');
  EXPECT_EQ(*body.ReadAt(0, out.data(), out.size()), out.size());
  return out;
}

class ImportSessionTest : public ::testing::Test {
 protected:
  static constexpr size_t kSlots = 4;

  ImportSessionTest() {
    ON_CALL(stub_, ImportFile(_, _, _))
        .WillByDefault([this](const CallOptions& options, const ImportFileRequest& request,
                              StubCallback<v1::Job> done) {
          std::lock_guard<std::mutex> lock(mu_);
          uploaded_.push_back(Read(*request.file));
          upload_deadline_ = options.deadline;
          upload_caller_ = options.caller;
          uploads_.push_back(std::move(done));
          upload_arrived_.notify_all();
        });
    ImportOptions options;
    options.max_concurrent_imports = kSlots;
    options.worker_threads = 1;
    options.idle_timeout = absl::Seconds(30);
    registry_ = std::make_unique<JobWatchRegistry>(stub_, scheduler_, JobWatchOptions());
    importer_ = std::make_unique<Importer>(stub_, *registry_, scheduler_, options);
  }

  // A started session on `stream_` whose deadline is `within` from now.
  std::shared_ptr<ImportSession> Start(absl::Duration within = absl::Minutes(5)) {
    ImportCall call;
    call.deadline = scheduler_.Now() + within;
    call.caller = "batch";
    auto session = ImportSession::Create(*importer_, call, stream_);
    session->Start();
    return session;
  }

  // Waits for the upload and answers it.
  void AnswerUpload(Result<v1::Job> answer) {
    StubCallback<v1::Job> done;
    {
      std::unique_lock<std::mutex> lock(mu_);
      upload_arrived_.wait_for(lock, std::chrono::seconds(30), [&] { return !uploads_.empty(); });
      ASSERT_FALSE(uploads_.empty());
      done = std::move(uploads_.front());
      uploads_.pop_front();
    }
    std::move(done)(std::move(answer));
  }

  size_t uploads() {
    std::lock_guard<std::mutex> lock(mu_);
    return uploaded_.size();
  }

  FakeScheduler scheduler_;
  NiceMock<MockUserpilotStub> stub_;
  std::unique_ptr<JobWatchRegistry> registry_;
  std::unique_ptr<Importer> importer_;
  std::shared_ptr<FakeStream> stream_ = std::make_shared<FakeStream>();

  std::mutex mu_;
  std::condition_variable upload_arrived_;
  std::deque<StubCallback<v1::Job>> uploads_;
  std::vector<std::string> uploaded_;
  absl::Time upload_deadline_;
  std::string upload_caller_;
};

TEST_F(ImportSessionTest, HeaderChunksAndAHalfCloseUploadTheFileOnce) {
  auto session = Start();
  ASSERT_TRUE(stream_->AwaitRead(1));
  session->OnMessage(Header());
  ASSERT_TRUE(stream_->AwaitRead(2));
  session->OnMessage(Chunk("{\"user_id\":\"u1\"}\n{\"user_"));
  ASSERT_TRUE(stream_->AwaitRead(3));
  session->OnMessage(Chunk("id\":\"u2\"}\n"));
  ASSERT_TRUE(stream_->AwaitRead(4));
  EXPECT_EQ(uploads(), 0u) << "nothing before the end of the stream";
  session->OnEndOfStream();
  v1::Job job;
  job.set_job_id("bulk:jobs:1");
  AnswerUpload(job);
  const Result<v1::Job> result = stream_->AwaitResult();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->job_id(), "bulk:jobs:1");
  ASSERT_EQ(uploads(), 1u);
  EXPECT_EQ(uploaded_[0], "{\"user_id\":\"u1\"}\n{\"user_id\":\"u2\"}\n");
  EXPECT_EQ(upload_deadline_, scheduler_.Now() + absl::Minutes(5));
  EXPECT_EQ(upload_caller_, "batch");
  EXPECT_EQ(importer_->Stats().bytes_received, 34);
  EXPECT_EQ(stream_->finishes(), 1);
  EXPECT_EQ(stream_->reads(), 4);
}

TEST_F(ImportSessionTest, AnUndecodableMessageMidStreamEndsTheCallAndUploadsNothing) {
  auto session = Start();
  ASSERT_TRUE(stream_->AwaitRead(1));
  session->OnMessage(Header());
  ASSERT_TRUE(stream_->AwaitRead(2));
  session->OnMessage(Chunk("{\"user_id\":\"u1\"}\n"));
  ASSERT_TRUE(stream_->AwaitRead(3));
  session->OnUndecodableMessage();
  const Result<v1::Job> result = stream_->AwaitResult();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  auto bad = wire::Detail<google::rpc::BadRequest>(result.error());
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->field_violations(0).field(), "message 3");
  // Whatever the transport says next, nothing is sent.
  session->OnEndOfStream();
  session->OnMessage(Chunk("{\"user_id\":\"u2\"}\n"));
  EXPECT_EQ(uploads(), 0u);
  EXPECT_EQ(stream_->finishes(), 1);
  EXPECT_EQ(stream_->reads(), 3);
}

TEST_F(ImportSessionTest, ABrokenStreamUploadsNothing) {
  auto session = Start();
  ASSERT_TRUE(stream_->AwaitRead(1));
  session->OnMessage(Header());
  ASSERT_TRUE(stream_->AwaitRead(2));
  session->OnMessage(Chunk("{\"user_id\":\"u1\"}\n"));
  ASSERT_TRUE(stream_->AwaitRead(3));
  session->OnStreamBroken();
  EXPECT_EQ(stream_->AwaitResult().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(uploads(), 0u);
}

TEST_F(ImportSessionTest, ACallerThatGoesSilentIsEndedAfterTheIdleTimeout) {
  auto session = Start(absl::Minutes(5));
  ASSERT_TRUE(stream_->AwaitRead(1));
  session->OnMessage(Header());
  ASSERT_TRUE(stream_->AwaitRead(2));
  scheduler_.AdvanceBy(absl::Seconds(29));
  EXPECT_FALSE(stream_->result().has_value());
  scheduler_.AdvanceBy(absl::Seconds(1));
  const Result<v1::Job> result = stream_->AwaitResult();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(result.status().message(), HasSubstr("sent nothing for 30s"));
  EXPECT_EQ(importer_->Stats().idle_timeouts, 1);
  EXPECT_EQ(importer_->Stats().deadline_timeouts, 0);
  EXPECT_EQ(uploads(), 0u);
}

TEST_F(ImportSessionTest, EachMessageRestartsTheIdleTimer) {
  auto session = Start(absl::Minutes(5));
  ASSERT_TRUE(stream_->AwaitRead(1));
  session->OnMessage(Header());
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(stream_->AwaitRead(2 + i));
    scheduler_.AdvanceBy(absl::Seconds(20));
    session->OnMessage(Chunk("{\"user_id\":\"u\"}\n"));
  }
  ASSERT_TRUE(stream_->AwaitRead(6));
  EXPECT_FALSE(stream_->result().has_value()) << "80 s in all, but never 30 s idle";
}

TEST_F(ImportSessionTest, TheCallDeadlineEndsAStreamThatIsStillReading) {
  auto session = Start(absl::Seconds(10));
  ASSERT_TRUE(stream_->AwaitRead(1));
  session->OnMessage(Header());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(stream_->AwaitRead(2 + i));
    scheduler_.AdvanceBy(absl::Seconds(4));
    if (stream_->result().has_value()) break;
    session->OnMessage(Chunk("{\"user_id\":\"u\"}\n"));
  }
  const Result<v1::Job> result = stream_->AwaitResult();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(result.status().message(), HasSubstr("deadline"));
  EXPECT_EQ(importer_->Stats().deadline_timeouts, 1);
  EXPECT_EQ(uploads(), 0u);
}

TEST_F(ImportSessionTest, AdmissionRefusalEndsTheCallBeforeAnyRead) {
  std::vector<std::shared_ptr<FakeStream>> streams;
  std::vector<std::shared_ptr<ImportSession>> sessions;
  for (size_t i = 0; i < kSlots; ++i) {
    streams.push_back(std::make_shared<FakeStream>());
    sessions.push_back(ImportSession::Create(*importer_, ImportCall(), streams.back()));
    sessions.back()->Start();
    ASSERT_TRUE(streams.back()->AwaitRead(1));
  }
  auto refused_stream = std::make_shared<FakeStream>();
  auto refused = ImportSession::Create(*importer_, ImportCall(), refused_stream);
  refused->Start();
  EXPECT_EQ(refused_stream->AwaitResult().status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(refused_stream->reads(), 0);
  EXPECT_EQ(importer_->Stats().refused, 1);
}

TEST_F(ImportSessionTest, TheSlotIsHeldUntilTheSessionIsGone) {
  auto session = Start();
  ASSERT_TRUE(stream_->AwaitRead(1));
  session->OnCancel();
  EXPECT_EQ(stream_->AwaitResult().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(importer_->Stats().running, 1u);
  session.reset();
  EXPECT_EQ(importer_->Stats().running, 0u);
}

TEST_F(ImportSessionTest, HeaderRules) {
  {
    auto session = Start();
    ASSERT_TRUE(stream_->AwaitRead(1));
    session->OnMessage(Chunk("{}\n"));
    const absl::Status status = stream_->AwaitResult().status();
    EXPECT_THAT(status.message(), HasSubstr("the first message must be the header"));
  }
  stream_ = std::make_shared<FakeStream>();
  {
    auto session = Start();
    ASSERT_TRUE(stream_->AwaitRead(1));
    session->OnMessage(Header());
    ASSERT_TRUE(stream_->AwaitRead(2));
    session->OnMessage(Header());
    const absl::Status status = stream_->AwaitResult().status();
    EXPECT_THAT(status.message(), HasSubstr("only the first message may be a header"));
  }
  stream_ = std::make_shared<FakeStream>();
  {
    auto session = Start();
    ASSERT_TRUE(stream_->AwaitRead(1));
    v1::ImportDataRequest header = Header();
    header.mutable_header()->set_size_bytes(5);
    session->OnMessage(header);
    ASSERT_TRUE(stream_->AwaitRead(2));
    session->OnMessage(Chunk("{\"user_id\":\"u1\"}\n"));
    ASSERT_TRUE(stream_->AwaitRead(3));
    session->OnEndOfStream();
    const absl::Status status = stream_->AwaitResult().status();
    EXPECT_THAT(status.message(), HasSubstr("header.size_bytes: the header announced 5 bytes"));
  }
  stream_ = std::make_shared<FakeStream>();
  {
    auto session = Start();
    ASSERT_TRUE(stream_->AwaitRead(1));
    session->OnEndOfStream();
    EXPECT_THAT(stream_->AwaitResult().status().message(), HasSubstr("ended before the header"));
  }
  EXPECT_EQ(uploads(), 0u);
}

TEST_F(ImportSessionTest, CancelDuringTheUploadEndsWithItsAnswer) {
  auto session = Start();
  ASSERT_TRUE(stream_->AwaitRead(1));
  session->OnMessage(Header());
  ASSERT_TRUE(stream_->AwaitRead(2));
  session->OnMessage(Chunk("{\"user_id\":\"u1\"}\n"));
  ASSERT_TRUE(stream_->AwaitRead(3));
  session->OnEndOfStream();
  {
    std::unique_lock<std::mutex> lock(mu_);
    upload_arrived_.wait_for(lock, std::chrono::seconds(30), [&] { return !uploads_.empty(); });
  }
  session->OnCancel();
  scheduler_.AdvanceBy(absl::Minutes(10));  // Past the deadline: the upload keeps it.
  EXPECT_FALSE(stream_->result().has_value());
  v1::Job job;
  job.set_job_id("bulk:jobs:2");
  AnswerUpload(job);
  EXPECT_EQ(stream_->AwaitResult()->job_id(), "bulk:jobs:2");
  EXPECT_EQ(importer_->Stats().deadline_timeouts, 0);
}

}  // namespace
}  // namespace userpilot::gateway
