// Unit tests of userpilot::gateway::client::Client against a scripted in-process gRPC server:
// deadlines, x-caller, the retry rules (RetryInfo, idempotency, bounds), error details, WatchJob's
// reconnection and ImportData's chunking. tests/clients/ runs the client against the real
// gateway and the Userpilot emulator.
#include "clients/cpp/client.h"

#include <map>
#include <mutex>
#include <sstream>

#include "clients/cpp/testing/scripted_gateway.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace userpilot::gateway::client {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::Info;
using testing::MakeJob;
using testing::Retry;
using testing::ScriptedGateway;
using testing::ScriptedGatewayServer;
using testing::WithDetails;

class ClientTest : public ::testing::Test {
 protected:
  Client MakeClient(int max_attempts = 4) {
    ClientOptions options;
    options.caller = "unit-test";
    options.retry.max_attempts = max_attempts;
    options.retry.initial_backoff = milliseconds(100);
    options.sleep = [this](nanoseconds d) {
      std::lock_guard<std::mutex> lock(mu_);
      sleeps_.push_back(d);
    };
    return Client::Connect(server_.target(), options);
  }
  std::vector<nanoseconds> sleeps() {
    std::lock_guard<std::mutex> lock(mu_);
    return sleeps_;
  }

  ScriptedGatewayServer server_;
  ScriptedGateway& gateway_ = server_.gateway();
  std::mutex mu_;
  std::vector<nanoseconds> sleeps_;
};

v1::IdentifyUserRequest Identify() {
  v1::IdentifyUserRequest request;
  request.set_user_id("u-1");
  return request;
}

v1::TrackEventRequest Track() {
  v1::TrackEventRequest request;
  request.set_user_id("u-1");
  request.set_event_name("signed_up");
  return request;
}

TEST_F(ClientTest, SendsCallerAndDefaultDeadlinePerKindOfRpc) {
  Client client = MakeClient();
  ASSERT_TRUE(client.IdentifyUser(Identify()).ok());
  ASSERT_TRUE(client.BulkIdentifyUsers(v1::BulkIdentifyUsersRequest()).ok());
  auto job = client.GetJob("bulk:jobs:9", CallOptions::WithTimeout(milliseconds(2500)));
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->job_id(), "bulk:jobs:9");
  std::vector<ScriptedGateway::Seen> seen = gateway_.seen();
  ASSERT_EQ(seen.size(), 3u);
  for (const auto& s : seen) EXPECT_EQ(s.caller, "unit-test");
  EXPECT_NEAR(seen[0].deadline_seconds, 10, 1);   // write
  EXPECT_NEAR(seen[1].deadline_seconds, 60, 1);   // bulk
  EXPECT_NEAR(seen[2].deadline_seconds, 2.5, 1);  // the caller's own
}

TEST_F(ClientTest, RetriesUnavailableWithBackoffThenSucceeds) {
  gateway_.Script("IdentifyUser", {grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"),
                                   grpc::Status(grpc::StatusCode::UNAVAILABLE, "down")});
  Client client = MakeClient();
  auto result = client.IdentifyUser(Identify());
  ASSERT_TRUE(result.ok()) << result.status().error_message();
  EXPECT_EQ(result->upstream_request_id(), "req-identify");
  EXPECT_EQ(result.attempts(), 3);
  std::vector<nanoseconds> waits = sleeps();
  ASSERT_EQ(waits.size(), 2u);
  EXPECT_GE(waits[0], milliseconds(50));  // [backoff/2, backoff], backoff 100 ms
  EXPECT_LE(waits[0], milliseconds(100));
  EXPECT_GE(waits[1], milliseconds(100));  // then 200 ms
  EXPECT_LE(waits[1], milliseconds(200));
}

TEST_F(ClientTest, WaitsTheServersRetryInfoDelay) {
  google::rpc::ErrorInfo info = Info("UPSTREAM_RATE_LIMITED", "");
  google::rpc::RetryInfo retry = Retry(milliseconds(1500));
  gateway_.Script("IdentifyUser",
                  {WithDetails(grpc::StatusCode::RESOURCE_EXHAUSTED, "429", {&info, &retry})});
  Client client = MakeClient();
  auto result = client.IdentifyUser(Identify());
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result.attempts(), 2);
  ASSERT_EQ(sleeps().size(), 1u);
  EXPECT_GE(sleeps()[0], milliseconds(1500));
  EXPECT_LE(sleeps()[0], milliseconds(1800));
}

TEST_F(ClientTest, StopsAfterMaxAttempts) {
  for (int i = 0; i < 10; ++i) {
    gateway_.Script("GetJob", {grpc::Status(grpc::StatusCode::UNAVAILABLE, "down")});
  }
  Client client = MakeClient(/*max_attempts=*/4);
  auto result = client.GetJob("j");
  EXPECT_EQ(result.status().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(result.attempts(), 4);
  EXPECT_EQ(gateway_.calls("GetJob"), 4);
  CallOptions once;
  once.max_attempts = 1;
  EXPECT_EQ(client.GetJob("j", once).attempts(), 1);
}

TEST_F(ClientTest, NeverWaitsPastTheDeadline) {
  google::rpc::RetryInfo retry = Retry(milliseconds(5000));
  gateway_.Script("IdentifyUser",
                  {WithDetails(grpc::StatusCode::RESOURCE_EXHAUSTED, "429", {&retry})});
  Client client = MakeClient();
  auto result = client.IdentifyUser(Identify(), CallOptions::WithTimeout(milliseconds(1000)));
  EXPECT_EQ(result.status().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(result.attempts(), 1);
  EXPECT_TRUE(sleeps().empty());
}

TEST_F(ClientTest, DoesNotWaitForAnOverlongRetryDelay) {
  google::rpc::RetryInfo retry = Retry(milliseconds(120000));
  gateway_.Script("IdentifyUser",
                  {WithDetails(grpc::StatusCode::RESOURCE_EXHAUSTED, "429", {&retry})});
  Client client = MakeClient();
  auto result = client.IdentifyUser(Identify(), CallOptions::WithTimeout(milliseconds(600000)));
  EXPECT_EQ(result.attempts(), 1);
  EXPECT_EQ(result.details().retry_delay(), std::optional<nanoseconds>(milliseconds(120000)));
}

TEST_F(ClientTest, TrackEventIsRetriedOnUnavailableOnlyWhenSurelyNotSent) {
  Client client = MakeClient();
  google::rpc::ErrorInfo maybe_sent = Info("UPSTREAM_UNAVAILABLE", "true");
  gateway_.Script("TrackEvent",
                  {WithDetails(grpc::StatusCode::UNAVAILABLE, "reset", {&maybe_sent})});
  EXPECT_EQ(client.TrackEvent(Track()).attempts(), 1);

  gateway_.Script("TrackEvent", {grpc::Status(grpc::StatusCode::UNAVAILABLE, "no details")});
  EXPECT_EQ(client.TrackEvent(Track()).attempts(), 1);

  google::rpc::ErrorInfo not_sent = Info("UPSTREAM_UNAVAILABLE", "false");
  gateway_.Script("TrackEvent",
                  {WithDetails(grpc::StatusCode::UNAVAILABLE, "refused", {&not_sent})});
  auto result = client.TrackEvent(Track());
  EXPECT_TRUE(result.ok());
  EXPECT_EQ(result.attempts(), 2);

  // RESOURCE_EXHAUSTED: refused, so never recorded; retried.
  google::rpc::RetryInfo retry = Retry(milliseconds(200));
  gateway_.Script("TrackEvent",
                  {WithDetails(grpc::StatusCode::RESOURCE_EXHAUSTED, "429", {&retry})});
  EXPECT_EQ(client.TrackEvent(Track()).attempts(), 2);
  EXPECT_EQ(gateway_.calls("TrackEvent"), 6);
}

TEST_F(ClientTest, BulkIdentifyIsNotRepeatedWhenItMayHaveStartedAJob) {
  gateway_.Script("BulkIdentifyUsers", {grpc::Status(grpc::StatusCode::UNAVAILABLE, "reset")});
  Client client = MakeClient();
  EXPECT_EQ(client.BulkIdentifyUsers(v1::BulkIdentifyUsersRequest()).attempts(), 1);
}

TEST_F(ClientTest, OtherErrorsAreNotRetriedAndCarryTypedDetails) {
  google::rpc::BadRequest bad;
  auto* v = bad.add_field_violations();
  v->set_field("user_id");
  v->set_description("is required");
  google::rpc::QuotaFailure quota;
  quota.add_violations()->set_subject("budget:identify");
  google::rpc::ErrorInfo info = Info("JOB_IN_PROGRESS", "");
  (*info.mutable_metadata())["upstream_request_id"] = "req-9";
  gateway_.Script("IdentifyUser", {WithDetails(grpc::StatusCode::INVALID_ARGUMENT, "invalid",
                                               {&bad, &quota, &info})});
  // RESOURCE_EXHAUSTED without details is gRPC's own (message too large): not retried either.
  gateway_.Script("IdentifyUser", {grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "too big")});
  Client client = MakeClient();

  auto result = client.IdentifyUser(Identify());
  EXPECT_EQ(result.status().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(result.attempts(), 1);
  ErrorDetails details = result.details();
  ASSERT_NE(details.bad_request(), nullptr);
  EXPECT_EQ(details.bad_request()->field_violations(0).field(), "user_id");
  ASSERT_NE(details.quota_failure(), nullptr);
  EXPECT_EQ(details.quota_failure()->violations(0).subject(), "budget:identify");
  EXPECT_EQ(details.reason(), "JOB_IN_PROGRESS");
  EXPECT_EQ(details.metadata("upstream_request_id"), "req-9");
  EXPECT_EQ(details.metadata("nope"), "");
  EXPECT_EQ(details.retry_info(), nullptr);
  EXPECT_TRUE(details.request_may_have_been_sent());
  EXPECT_THAT(ErrorDetails::Describe(result.status()),
              AllOf(HasSubstr("INVALID_ARGUMENT: invalid"), HasSubstr("reason=JOB_IN_PROGRESS"),
                    HasSubstr("{user_id: is required}")));

  EXPECT_EQ(client.IdentifyUser(Identify()).attempts(), 1);
  EXPECT_TRUE(sleeps().empty());
}

TEST_F(ClientTest, GenericCallByDescriptor) {
  Client client = MakeClient();
  const google::protobuf::MethodDescriptor* method = v1::ListJobsRequest::descriptor()
                                                         ->file()
                                                         ->FindServiceByName("UserpilotGateway")
                                                         ->FindMethodByName("ListJobs");
  ASSERT_NE(method, nullptr);
  v1::ListJobsResponse response;
  int attempts = 0;
  ASSERT_TRUE(client.Call(*method, v1::ListJobsRequest(), &response, {}, &attempts).ok());
  EXPECT_EQ(response.jobs_size(), 1);
  EXPECT_EQ(attempts, 1);
}

TEST_F(ClientTest, WatchJobReconnectsWithoutRepeatingAState) {
  gateway_.ScriptWatch({MakeJob(v1::JOB_STATUS_QUEUED, 0), MakeJob(v1::JOB_STATUS_PROCESSING, 1)},
                       grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining"));
  // The new replica starts with the state already delivered (a later elapsed_time).
  gateway_.ScriptWatch(
      {MakeJob(v1::JOB_STATUS_PROCESSING, 2), MakeJob(v1::JOB_STATUS_COMPLETED, 3)},
      grpc::Status::OK);
  Client client = MakeClient();
  std::vector<v1::JobStatus> delivered;
  auto result = client.WatchJob("bulk:jobs:1", [&](const v1::Job& job) {
    delivered.push_back(job.status());
    return true;
  });
  ASSERT_TRUE(result.ok()) << result.status().error_message();
  EXPECT_THAT(delivered, ElementsAre(v1::JOB_STATUS_QUEUED, v1::JOB_STATUS_PROCESSING,
                                     v1::JOB_STATUS_COMPLETED));
  EXPECT_EQ(result->status(), v1::JOB_STATUS_COMPLETED);
  EXPECT_EQ(result.attempts(), 2);
  EXPECT_EQ(gateway_.seen()[0].caller, "unit-test");
}

TEST_F(ClientTest, WatchJobResumesAStreamTheServerEndedAtItsOwnDeadline) {
  gateway_.ScriptWatch({MakeJob(v1::JOB_STATUS_PROCESSING, 1)},
                       grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "max_deadline"));
  gateway_.ScriptWatch({MakeJob(v1::JOB_STATUS_COMPLETED, 2)}, grpc::Status::OK);
  Client client = MakeClient();
  auto result = client.WatchJob("bulk:jobs:1", [](const v1::Job&) { return true; });
  ASSERT_TRUE(result.ok()) << result.status().error_message();
  EXPECT_EQ(result->status(), v1::JOB_STATUS_COMPLETED);
  EXPECT_EQ(result.attempts(), 2);
}

TEST_F(ClientTest, WatchJobStopsWhenTheCallbackSaysSo) {
  gateway_.ScriptWatch({MakeJob(v1::JOB_STATUS_QUEUED, 0), MakeJob(v1::JOB_STATUS_PROCESSING, 1)},
                       grpc::Status::OK);
  Client client = MakeClient();
  int calls = 0;
  auto result = client.WatchJob("bulk:jobs:1", [&](const v1::Job&) { return ++calls < 1; });
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(result->status(), v1::JOB_STATUS_QUEUED);
}

TEST_F(ClientTest, WatchJobGivesUpOnOtherErrors) {
  gateway_.ScriptWatch({}, grpc::Status(grpc::StatusCode::NOT_FOUND, "no such job"));
  Client client = MakeClient();
  auto result = client.WatchJob("nope", [](const v1::Job&) { return true; });
  EXPECT_EQ(result.status().error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(result.attempts(), 1);
}

TEST_F(ClientTest, WatchJobGivesUpAfterMaxAttemptsReconnectionsThatBringNothingNew) {
  gateway_.ScriptWatch({MakeJob(v1::JOB_STATUS_PROCESSING, 1)},
                       grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining"));
  // Each new replica only repeats the state already delivered, then goes away too.
  for (int i = 0; i < 5; ++i) {
    gateway_.ScriptWatch({MakeJob(v1::JOB_STATUS_PROCESSING, 2 + i)},
                         grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining"));
  }
  Client client = MakeClient(/*max_attempts=*/3);
  int delivered = 0;
  auto result = client.WatchJob("bulk:jobs:1", [&](const v1::Job&) {
    ++delivered;
    return true;
  });
  EXPECT_EQ(result.status().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(delivered, 1);
  // The first stream progressed; then three fruitless attempts in a row end the watch.
  EXPECT_EQ(result.attempts(), 4);
  EXPECT_EQ(sleeps().size(), 3u);
}

TEST_F(ClientTest, WatchJobOutlivesAnyNumberOfDrainsThatEachLeftItProgressing) {
  for (int i = 0; i < 6; ++i) {
    v1::Job step = MakeJob(v1::JOB_STATUS_PROCESSING, i);
    step.set_completed_rows(100 * i);
    gateway_.ScriptWatch({step}, grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining"));
  }
  v1::Job done = MakeJob(v1::JOB_STATUS_COMPLETED, 6);
  gateway_.ScriptWatch({done}, grpc::Status::OK);
  Client client = MakeClient(/*max_attempts=*/2);
  std::vector<int64_t> rows;
  // No deadline at all (time_point::max(), what userpilotctl passes for "inf").
  CallOptions forever;
  forever.deadline = std::chrono::system_clock::time_point::max();
  auto result = client.WatchJob(
      "bulk:jobs:1",
      [&](const v1::Job& job) {
        rows.push_back(job.completed_rows());
        return true;
      },
      forever);
  ASSERT_TRUE(result.ok()) << result.status().error_message();
  EXPECT_EQ(result.attempts(), 7);
  EXPECT_EQ(rows.size(), 7u);  // each stream brought a step forward: none skipped
  EXPECT_EQ(result->status(), v1::JOB_STATUS_COMPLETED);
  // Backoff starts again from the initial delay after each stream that progressed.
  for (nanoseconds d : sleeps()) EXPECT_LE(d, milliseconds(100));
}

TEST_F(ClientTest, WatchJobsReconnectsAfterUnavailable) {
  gateway_.ScriptWatchJobs({MakeJob(v1::JOB_STATUS_QUEUED, 0)},
                           grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining"));
  gateway_.ScriptWatchJobs({MakeJob(v1::JOB_STATUS_COMPLETED, 1)},
                           grpc::Status(grpc::StatusCode::CANCELLED, "server going away"));
  Client client = MakeClient();
  std::vector<v1::JobStatus> seen;
  grpc::Status status = client.WatchJobs(/*include_existing=*/true, [&](const v1::Job& job) {
    seen.push_back(job.status());
    return true;
  });
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_THAT(seen, ElementsAre(v1::JOB_STATUS_QUEUED, v1::JOB_STATUS_COMPLETED));
  EXPECT_EQ(gateway_.calls("WatchJobs"), 2);
}

TEST_F(ClientTest, ImportDataSendsTheHeaderThenTheFileInChunks) {
  Client client = MakeClient();
  v1::ImportHeader header;
  header.set_target(v1::IMPORT_TARGET_USERS_BULK);
  header.set_format(v1::IMPORT_FORMAT_NDJSON);
  std::istringstream file("{\"user_id\":\"a\"}\n{\"user_id\":\"b\"}\n");
  auto result = client.ImportData(header, file, {}, /*chunk_bytes=*/8);
  ASSERT_TRUE(result.ok()) << result.status().error_message();
  EXPECT_EQ(result->job_id(), "import:jobs:1");
  std::vector<v1::ImportDataRequest> got = gateway_.imported();
  ASSERT_GE(got.size(), 2u);
  EXPECT_TRUE(got[0].has_header());
  EXPECT_EQ(got[0].header().target(), v1::IMPORT_TARGET_USERS_BULK);
  EXPECT_EQ(got[0].header().size_bytes(), 32);  // from the seekable stream
  std::string bytes;
  for (size_t i = 1; i < got.size(); ++i) {
    EXPECT_LE(got[i].chunk().size(), 8u);
    bytes += got[i].chunk();
  }
  EXPECT_EQ(bytes, "{\"user_id\":\"a\"}\n{\"user_id\":\"b\"}\n");
}

TEST(ErrorDetailsTest, KeepsEveryDetailInOrderAndNoticesMalformedOnes) {
  google::rpc::ErrorInfo info = Info("UPSTREAM_RATE_LIMITED", "false");
  google::rpc::RetryInfo retry = Retry(milliseconds(250));
  google::rpc::Help help;  // a type without an accessor of its own
  help.add_links()->set_url("https://example.com/limits");
  ErrorDetails details(
      WithDetails(grpc::StatusCode::RESOURCE_EXHAUSTED, "429", {&retry, &help, &info}));
  ASSERT_EQ(details.all().size(), 3u);
  EXPECT_TRUE(details.all()[0].Is<google::rpc::RetryInfo>());
  EXPECT_TRUE(details.all()[1].Is<google::rpc::Help>());
  EXPECT_TRUE(details.all()[2].Is<google::rpc::ErrorInfo>());
  EXPECT_EQ(details.retry_delay(), std::optional<nanoseconds>(milliseconds(250)));
  EXPECT_FALSE(details.request_may_have_been_sent());
  EXPECT_FALSE(details.malformed());

  ErrorDetails garbage(grpc::Status(grpc::StatusCode::INTERNAL, "x", "\xff\xff"));
  EXPECT_TRUE(garbage.malformed());
  EXPECT_TRUE(garbage.all().empty());
  EXPECT_EQ(garbage.error_info(), nullptr);
  EXPECT_FALSE(ErrorDetails(grpc::Status(grpc::StatusCode::INTERNAL, "no details")).malformed());
  EXPECT_TRUE(ErrorDetails(grpc::Status::OK).all().empty());
}

TEST(ErrorDetailsTest, StatusCodeNames) {
  EXPECT_EQ(StatusCodeName(grpc::StatusCode::OK), "OK");
  EXPECT_EQ(StatusCodeName(grpc::StatusCode::RESOURCE_EXHAUSTED), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(StatusCodeName(grpc::StatusCode::UNAUTHENTICATED), "UNAUTHENTICATED");
  EXPECT_EQ(StatusCodeName(static_cast<grpc::StatusCode>(99)), "CODE_99");
}

TEST(PolicyForTest, FollowsTheContractsIdempotencyLevels) {
  const google::protobuf::ServiceDescriptor* service =
      v1::Job::descriptor()->file()->FindServiceByName("UserpilotGateway");
  DefaultDeadlines d;
  d.write = milliseconds(1);
  d.bulk = milliseconds(2);
  d.read = milliseconds(3);
  d.import = milliseconds(4);
  d.watch = milliseconds(5);
  const std::map<std::string, std::pair<milliseconds, bool>> expected = {
      {"IdentifyUser", {d.write, true}},
      {"IdentifyCompany", {d.write, true}},
      {"BulkIdentifyUsers", {d.bulk, false}},
      {"BulkIdentifyCompanies", {d.bulk, false}},
      {"TrackEvent", {d.write, false}},
      {"ListJobs", {d.read, true}},
      {"GetJob", {d.read, true}},
      {"DeleteUsers", {d.write, true}},
      {"DeleteCompanies", {d.write, true}},
      {"WatchJob", {d.watch, true}},
      {"WatchJobs", {d.watch, true}},
      {"ImportData", {d.import, false}},
      {"Enqueue", {d.write, false}},
      {"EnqueueBatch", {d.write, false}},
      {"GetDelivery", {d.read, true}},
      {"ListDeadLetters", {d.read, true}},
      {"RedriveDeadLetters", {d.write, true}},
  };
  ASSERT_EQ(service->method_count(), static_cast<int>(expected.size()))
      << "a method was added to the contract: add it here";
  for (int i = 0; i < service->method_count(); ++i) {
    const google::protobuf::MethodDescriptor& method = *service->method(i);
    ASSERT_EQ(expected.count(method.name()), 1u) << method.name();
    Client::MethodPolicy policy = Client::PolicyFor(method, d);
    EXPECT_EQ(policy.deadline, expected.at(method.name()).first) << method.name();
    EXPECT_EQ(policy.idempotent, expected.at(method.name()).second) << method.name();
  }
}

TEST(PolicyForTest, ReadsTheOptionNotTheName) {
  // A contract where TrackEvent says it is idempotent and IdentifyUser says nothing: the client
  // believes the descriptors, so a changed option needs no change here.
  google::protobuf::FileDescriptorProto file;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"pb(
        name: "policy_test.proto"
        package: "policy_test"
        syntax: "proto3"
        message_type { name: "M" }
        service {
          name: "S"
          method {
            name: "TrackEvent"
            input_type: ".policy_test.M"
            output_type: ".policy_test.M"
            options { idempotency_level: IDEMPOTENT }
          }
          method { name: "IdentifyUser" input_type: ".policy_test.M" output_type: ".policy_test.M" }
          method {
            name: "Peek"
            input_type: ".policy_test.M"
            output_type: ".policy_test.M"
            server_streaming: true
            options { idempotency_level: NO_SIDE_EFFECTS }
          }
        })pb",
      &file));
  google::protobuf::DescriptorPool pool;
  const google::protobuf::FileDescriptor* built = pool.BuildFile(file);
  ASSERT_NE(built, nullptr);
  const google::protobuf::ServiceDescriptor* service = built->service(0);
  DefaultDeadlines d;
  EXPECT_TRUE(Client::PolicyFor(*service->FindMethodByName("TrackEvent"), d).idempotent);
  EXPECT_FALSE(Client::PolicyFor(*service->FindMethodByName("IdentifyUser"), d).idempotent);
  EXPECT_EQ(Client::PolicyFor(*service->FindMethodByName("IdentifyUser"), d).deadline, d.write);
  EXPECT_TRUE(Client::PolicyFor(*service->FindMethodByName("Peek"), d).idempotent);
  EXPECT_EQ(Client::PolicyFor(*service->FindMethodByName("Peek"), d).deadline, d.watch);
}

TEST(RetryDelayTest, Rules) {
  RetryOptions options;
  const nanoseconds backoff = milliseconds(400);
  grpc::Status unavailable(grpc::StatusCode::UNAVAILABLE, "x");
  EXPECT_EQ(Client::RetryDelay(unavailable, true, backoff, 0.0, options),
            nanoseconds(milliseconds(200)));
  EXPECT_EQ(Client::RetryDelay(unavailable, true, backoff, 1.0, options),
            nanoseconds(milliseconds(400)));
  EXPECT_EQ(Client::RetryDelay(unavailable, false, backoff, 1.0, options), std::nullopt);
  for (auto code : {grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::DEADLINE_EXCEEDED,
                    grpc::StatusCode::INTERNAL, grpc::StatusCode::NOT_FOUND,
                    grpc::StatusCode::FAILED_PRECONDITION, grpc::StatusCode::CANCELLED}) {
    EXPECT_EQ(Client::RetryDelay(grpc::Status(code, "x"), true, backoff, 0.5, options),
              std::nullopt);
  }
}

}  // namespace
}  // namespace userpilot::gateway::client
