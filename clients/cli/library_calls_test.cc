// userpilotctl's calls (call.h, streams.h) go through the C++ client library: retries (and
// --max_attempts), no deadline for "inf", watches that reconnect after a replica drains (with more
// patience than the library's default), and chunked uploads, against the scripted in-process
// gateway. The retries really sleep here (the library's backoff: a few seconds for the patient
// watch).
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"
#include "clients/cli/call.h"
#include "clients/cli/cli.h"
#include "clients/cli/command_line.h"
#include "clients/cli/streams.h"
#include "clients/cpp/testing/scripted_gateway.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"

namespace userpilot::gateway::cli {
namespace {

using client::testing::MakeJob;
using ::testing::ElementsAre;

class LibraryCallsTest : public ::testing::Test {
 protected:
  Client MakeClient(const std::string& caller = "ctl-test") {
    ClientOptions options;
    options.caller = caller;
    return Client::Connect(server_.target(), options);
  }
  client::testing::ScriptedGatewayServer server_;
  client::testing::ScriptedGateway& gateway_ = server_.gateway();
};

TEST_F(LibraryCallsTest, UnaryCallsAreRetriedByTheLibrary) {
  gateway_.Script("GetJob", {grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining")});
  const auto* method = *FindMethod("GetJob");
  auto request = *ParseRequest(*method, R"({"job_id":"bulk:jobs:7"})");
  auto response = NewResponse(*method);
  Client client = MakeClient();
  grpc::Status status = CallUnary(client, *method, *request, *response, absl::Seconds(20));
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(static_cast<const v1::Job&>(*response).job_id(), "bulk:jobs:7");
  std::vector<client::testing::ScriptedGateway::Seen> seen = gateway_.seen();
  ASSERT_EQ(seen.size(), 2u);
  for (const auto& s : seen) EXPECT_EQ(s.caller, "ctl-test");
}

TEST_F(LibraryCallsTest, MaxAttemptsOneTurnsRetriesOff) {
  gateway_.Script("GetJob", {grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining")});
  const auto* method = *FindMethod("GetJob");
  auto request = *ParseRequest(*method, R"({"job_id":"j"})");
  auto response = NewResponse(*method);
  Client client = MakeClient();
  grpc::Status status =
      CallUnary(client, *method, *request, *response, absl::Seconds(20), /*max_attempts=*/1);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(gateway_.calls("GetJob"), 1);
}

TEST(MaxAttemptsFlagTest, DefaultsToTheLibrarysAndMustBePositive) {
  {
    absl::FlagSaver saver;
    auto inv = ParseCommandLine({"ListJobs"}, std::nullopt);
    ASSERT_TRUE(inv.ok()) << inv.status();
    EXPECT_EQ(inv->max_attempts, client::RetryOptions().max_attempts);
  }
  {
    absl::FlagSaver saver;
    auto inv = ParseCommandLine({"--max_attempts=1", "DeleteUsers", "{}"}, std::nullopt);
    ASSERT_TRUE(inv.ok()) << inv.status();
    EXPECT_EQ(inv->max_attempts, 1);
  }
  absl::FlagSaver saver;
  auto inv = ParseCommandLine({"--max_attempts=0", "ListJobs"}, std::nullopt);
  ASSERT_FALSE(inv.ok());
  EXPECT_THAT(std::string(inv.status().message()),
              ::testing::HasSubstr("--max_attempts must be at least 1, not 0"));
  EXPECT_THAT(UsageText(), ::testing::HasSubstr("--max_attempts (default: 4)"));
}

TEST_F(LibraryCallsTest, InfiniteDeadlineSendsNone) {
  const auto* method = *FindMethod("ListJobs");
  auto request = *ParseRequest(*method, "{}");
  auto response = NewResponse(*method);
  Client client = MakeClient("t");
  ASSERT_TRUE(CallUnary(client, *method, *request, *response, absl::InfiniteDuration()).ok());
  ASSERT_EQ(gateway_.seen().size(), 1u);
  EXPECT_GT(gateway_.seen()[0].deadline_seconds, 365 * 24 * 3600.0);
}

TEST_F(LibraryCallsTest, WatchJobReconnectsAfterADrainWithoutRepeatingAState) {
  gateway_.ScriptWatch({MakeJob(v1::JOB_STATUS_QUEUED, 0), MakeJob(v1::JOB_STATUS_PROCESSING, 1)},
                       grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining"));
  gateway_.ScriptWatch(
      {MakeJob(v1::JOB_STATUS_PROCESSING, 2), MakeJob(v1::JOB_STATUS_COMPLETED, 3)},
      grpc::Status::OK);
  std::vector<v1::JobStatus> seen;
  Client client = MakeClient();
  grpc::Status status = WatchJob(client, "bulk:jobs:1", absl::InfiniteFuture(),
                                 [&](const v1::Job& job) { seen.push_back(job.status()); });
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(seen, ElementsAre(v1::JOB_STATUS_QUEUED, v1::JOB_STATUS_PROCESSING,
                                v1::JOB_STATUS_COMPLETED));
  EXPECT_EQ(gateway_.calls("WatchJob"), 2);
}

TEST_F(LibraryCallsTest, WatchJobIsMorePatientThanTheLibraryDefault) {
  // Four attempts in a row that bring nothing new: the library's default (4 attempts) would
  // give up on the last; a watch from userpilotctl (kWatchAttempts) goes on to the end.
  gateway_.ScriptWatch({MakeJob(v1::JOB_STATUS_PROCESSING, 1)},
                       grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining"));
  for (int i = 0; i < 4; ++i) {
    gateway_.ScriptWatch({}, grpc::Status(grpc::StatusCode::UNAVAILABLE, "restarting"));
  }
  gateway_.ScriptWatch({MakeJob(v1::JOB_STATUS_COMPLETED, 9)}, grpc::Status::OK);
  ASSERT_GT(kWatchAttempts, ClientOptions().retry.max_attempts + 1);
  v1::Job last;
  Client client = MakeClient();
  grpc::Status status = WatchJob(client, "bulk:jobs:1", absl::Now() + absl::Minutes(2),
                                 [&](const v1::Job& job) { last = job; });
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(last.status(), v1::JOB_STATUS_COMPLETED);
  EXPECT_EQ(gateway_.calls("WatchJob"), 6);
}

TEST_F(LibraryCallsTest, ImportFileStreamsTheFileInChunks) {
  const std::string path = ::testing::TempDir() + "/library_calls_test.csv";
  std::ofstream(path, std::ios::binary) << "user_id\nu1\nu2\n";
  v1::ImportHeader header;
  header.set_target(v1::IMPORT_TARGET_USERS_BULK);
  auto complete = CompleteImportHeader(header, path);
  ASSERT_TRUE(complete.ok()) << complete.status();
  v1::Job job;
  Client client = MakeClient();
  grpc::Status status = ImportFile(client, *complete, path, absl::Now() + absl::Seconds(20), &job,
                                   /*chunk_bytes=*/4);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(job.job_id(), "import:jobs:1");
  std::vector<v1::ImportDataRequest> got = gateway_.imported();
  ASSERT_GE(got.size(), 2u);
  EXPECT_EQ(got[0].header().size_bytes(), 14);
  std::string bytes;
  for (size_t i = 1; i < got.size(); ++i) bytes += got[i].chunk();
  EXPECT_EQ(bytes, "user_id\nu1\nu2\n");
  EXPECT_EQ(gateway_.seen()[0].caller, "ctl-test");

  EXPECT_EQ(ImportFile(client, *complete, "/nonexistent/x.csv", absl::InfiniteFuture(), &job)
                .error_code(),
            grpc::StatusCode::UNKNOWN);
}

}  // namespace
}  // namespace userpilot::gateway::cli
