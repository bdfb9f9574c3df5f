// Unit tests of userpilot::gateway::Client against a scripted in-process gRPC server: deadlines,
// x-caller, the retry rules (RetryInfo, idempotency, bounds), error details, WatchJob's
// reconnection and ImportData's chunking. tests/clients/ runs the client against the real
// gateway and the Userpilot emulator.
#include "clients/cpp/client.h"

#include <deque>
#include <map>
#include <mutex>
#include <sstream>

#include "gmock/gmock.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace userpilot::gateway {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A status with google.rpc details, as the gateway sends them.
grpc::Status WithDetails(grpc::StatusCode code, const std::string& message,
                         std::vector<google::protobuf::Message*> details) {
  google::rpc::Status status;
  status.set_code(code);
  status.set_message(message);
  for (google::protobuf::Message* d : details) status.add_details()->PackFrom(*d);
  return grpc::Status(code, message, status.SerializeAsString());
}

google::rpc::ErrorInfo Info(const std::string& reason, const std::string& may_have_been_sent) {
  google::rpc::ErrorInfo info;
  info.set_reason(reason);
  info.set_domain(kErrorDomain);
  (*info.mutable_metadata())["endpoint"] = "POST /v1/track";
  if (!may_have_been_sent.empty()) {
    (*info.mutable_metadata())["request_may_have_been_sent"] = may_have_been_sent;
  }
  return info;
}

google::rpc::RetryInfo Retry(milliseconds delay) {
  google::rpc::RetryInfo retry;
  retry.mutable_retry_delay()->set_seconds(delay.count() / 1000);
  retry.mutable_retry_delay()->set_nanos(static_cast<int>(delay.count() % 1000) * 1000000);
  return retry;
}

v1::Job MakeJob(v1::JobStatus status, int64_t elapsed) {
  v1::Job job;
  job.set_job_id("bulk:jobs:1");
  job.set_status(status);
  job.set_elapsed_time(elapsed);
  return job;
}

// Answers each RPC with the next scripted status (OK when the script is empty), and records what
// it received.
class ScriptedGateway final : public v1::UserpilotGateway::Service {
 public:
  struct Seen {
    std::string method;
    std::string caller;
    double deadline_seconds;  // from when the call arrived
  };

  void Script(const std::string& method, std::vector<grpc::Status> statuses) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& s : statuses) script_[method].push_back(std::move(s));
  }
  // Each watch attempt sends `jobs`, then ends with `end`.
  void ScriptWatch(std::vector<v1::Job> jobs, grpc::Status end) {
    std::lock_guard<std::mutex> lock(mu_);
    watches_.push_back({std::move(jobs), std::move(end)});
  }
  std::vector<Seen> seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }
  int calls(const std::string& method) {
    std::lock_guard<std::mutex> lock(mu_);
    int n = 0;
    for (const Seen& s : seen_) n += s.method == method;
    return n;
  }
  std::vector<v1::ImportDataRequest> imported() {
    std::lock_guard<std::mutex> lock(mu_);
    return imported_;
  }

  grpc::Status IdentifyUser(grpc::ServerContext* c, const v1::IdentifyUserRequest*,
                            v1::IdentifyUserResponse* r) override {
    r->set_upstream_request_id("req-identify");
    return Next("IdentifyUser", c);
  }
  grpc::Status TrackEvent(grpc::ServerContext* c, const v1::TrackEventRequest*,
                          v1::TrackEventResponse* r) override {
    r->set_upstream_request_id("req-track");
    return Next("TrackEvent", c);
  }
  grpc::Status BulkIdentifyUsers(grpc::ServerContext* c, const v1::BulkIdentifyUsersRequest*,
                                 v1::Job* job) override {
    job->set_job_id("bulk:jobs:1");
    return Next("BulkIdentifyUsers", c);
  }
  grpc::Status ListJobs(grpc::ServerContext* c, const v1::ListJobsRequest*,
                        v1::ListJobsResponse* r) override {
    *r->add_jobs() = MakeJob(v1::JOB_STATUS_QUEUED, 0);
    return Next("ListJobs", c);
  }
  grpc::Status GetJob(grpc::ServerContext* c, const v1::GetJobRequest* request,
                      v1::Job* job) override {
    job->set_job_id(request->job_id());
    return Next("GetJob", c);
  }
  grpc::Status WatchJob(grpc::ServerContext* c, const v1::WatchJobRequest*,
                        grpc::ServerWriter<v1::Job>* writer) override {
    Record("WatchJob", c);
    std::pair<std::vector<v1::Job>, grpc::Status> watch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (watches_.empty()) return grpc::Status(grpc::StatusCode::INTERNAL, "no watch scripted");
      watch = watches_.front();
      watches_.pop_front();
    }
    for (const v1::Job& job : watch.first) writer->Write(job);
    return watch.second;
  }
  grpc::Status ImportData(grpc::ServerContext* c, grpc::ServerReader<v1::ImportDataRequest>* reader,
                          v1::Job* job) override {
    Record("ImportData", c);
    v1::ImportDataRequest message;
    std::lock_guard<std::mutex> lock(mu_);
    while (reader->Read(&message)) imported_.push_back(message);
    job->set_job_id("import:jobs:1");
    return grpc::Status::OK;
  }

 private:
  void Record(const std::string& method, grpc::ServerContext* c) {
    std::string caller;
    auto it = c->client_metadata().find("x-caller");
    if (it != c->client_metadata().end()) caller = std::string(it->second.data(), it->second.size());
    double left = std::chrono::duration<double>(c->deadline() - std::chrono::system_clock::now()).count();
    std::lock_guard<std::mutex> lock(mu_);
    seen_.push_back({method, caller, left});
  }
  grpc::Status Next(const std::string& method, grpc::ServerContext* c) {
    Record(method, c);
    std::lock_guard<std::mutex> lock(mu_);
    auto& queue = script_[method];
    if (queue.empty()) return grpc::Status::OK;
    grpc::Status s = queue.front();
    queue.pop_front();
    return s;
  }

  std::mutex mu_;
  std::map<std::string, std::deque<grpc::Status>> script_;
  std::deque<std::pair<std::vector<v1::Job>, grpc::Status>> watches_;
  std::vector<Seen> seen_;
  std::vector<v1::ImportDataRequest> imported_;
};

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&gateway_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(port, 0);
    target_ = "127.0.0.1:" + std::to_string(port);
  }
  void TearDown() override { server_->Shutdown(std::chrono::system_clock::now()); }

  Client MakeClient(int max_attempts = 4) {
    ClientOptions options;
    options.caller = "unit-test";
    options.retry.max_attempts = max_attempts;
    options.retry.initial_backoff = milliseconds(100);
    options.sleep = [this](nanoseconds d) {
      std::lock_guard<std::mutex> lock(mu_);
      sleeps_.push_back(d);
    };
    return Client::Connect(target_, options);
  }
  std::vector<nanoseconds> sleeps() {
    std::lock_guard<std::mutex> lock(mu_);
    return sleeps_;
  }

  ScriptedGateway gateway_;
  std::unique_ptr<grpc::Server> server_;
  std::string target_;
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
  EXPECT_GE(waits[0], milliseconds(50));   // [backoff/2, backoff], backoff 100 ms
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
  gateway_.Script("IdentifyUser",
                  {WithDetails(grpc::StatusCode::INVALID_ARGUMENT, "invalid", {&bad, &quota, &info})});
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
  const google::protobuf::MethodDescriptor* method =
      v1::ListJobsRequest::descriptor()->file()->FindServiceByName("UserpilotGateway")->FindMethodByName(
          "ListJobs");
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
  gateway_.ScriptWatch({MakeJob(v1::JOB_STATUS_PROCESSING, 2), MakeJob(v1::JOB_STATUS_COMPLETED, 3)},
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

TEST(RetryDelayTest, Rules) {
  RetryOptions options;
  const nanoseconds backoff = milliseconds(400);
  grpc::Status unavailable(grpc::StatusCode::UNAVAILABLE, "x");
  EXPECT_EQ(Client::RetryDelay(unavailable, true, backoff, 0.0, options), nanoseconds(milliseconds(200)));
  EXPECT_EQ(Client::RetryDelay(unavailable, true, backoff, 1.0, options), nanoseconds(milliseconds(400)));
  EXPECT_EQ(Client::RetryDelay(unavailable, false, backoff, 1.0, options), std::nullopt);
  for (auto code : {grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::DEADLINE_EXCEEDED,
                    grpc::StatusCode::INTERNAL, grpc::StatusCode::NOT_FOUND,
                    grpc::StatusCode::FAILED_PRECONDITION, grpc::StatusCode::CANCELLED}) {
    EXPECT_EQ(Client::RetryDelay(grpc::Status(code, "x"), true, backoff, 0.5, options), std::nullopt);
  }
}

}  // namespace
}  // namespace userpilot::gateway
