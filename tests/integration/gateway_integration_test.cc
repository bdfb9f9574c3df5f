// Every RPC and every upstream error path, through the real gateway (gRPC server, validation,
// HTTP mapping, libcurl) against the emulator, asserting exactly what reached "Userpilot".
#include <memory>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "service/app/gateway.h"
#include "service/logging/logger.h"
#include "service/metrics/metrics_registry.h"
#include "spdlog/sinks/ostream_sink.h"
#include "tests/emulator/emulator.h"
#include "tests/integration/rpc_detail.h"
#include "userpilot/gateway/v1/gateway.grpc.pb.h"

namespace userpilot::gateway {
namespace {

using ::testing::ContainsRegex;
using testing::Detail;
using testing::Emulator;
using testing::EmulatorOptions;
using testing::FaultAction;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::RecordedRequest;
using testing::ScriptedFault;

constexpr char kApiKey[] = "it-secret-key-7f3a9c";

template <typename Message>
Message FromJson(const std::string& json) {
  Message message;
  auto status = google::protobuf::util::JsonStringToMessage(json, &message);
  EXPECT_TRUE(status.ok()) << status.ToString() << " in " << json;
  return message;
}

class GatewayIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    EmulatorOptions options;
    options.api_key = kApiKey;
    options.job_step = absl::Milliseconds(50);
    auto emulator = Emulator::Start(options);
    ASSERT_TRUE(emulator.ok()) << emulator.status();
    emulator_ = emulator->release();
    log_text_ = new std::ostringstream();
    LoggerOptions log_options;
    log_options.api_key = kApiKey;
    logger_ = new Logger(log_options, std::make_shared<spdlog::sinks::ostream_sink_mt>(*log_text_));
    gateway_ = StartGateway(emulator_->base_url(), kApiKey, logger_).release();
  }
  static void TearDownTestSuite() {
    delete gateway_;
    delete logger_;
    delete log_text_;
    delete emulator_;
  }

  static std::unique_ptr<Gateway> StartGateway(const std::string& upstream_url,
                                               const std::string& key, Logger* logger = nullptr) {
    ConfigInput input;
    input.listen = "127.0.0.1:0";
    input.metrics_listen = "127.0.0.1:0";
    input.upstream_url = upstream_url;
    input.upstream_timeout = absl::Seconds(5);
    input.connect_timeout = absl::Seconds(1);
    input.reflection = false;
    // The emulator's record must hold only what each test sends (the key check has its own
    // tests: key_checker_test, e2e.trace_and_key_check).
    input.key_check_interval = absl::ZeroDuration();
    // These tests check the mapping of each upstream answer, one attempt each, with budgets
    // too large to matter; traffic control has its own tests.
    input.traffic.retry_max_attempts = 1;
    input.traffic.circuit_breaker = false;
    for (std::string* rate : {&input.traffic.identify_rate, &input.traffic.track_rate,
                              &input.traffic.delete_rate, &input.traffic.job_read_rate}) {
      *rate = "100000/1s";
    }
    // Watched jobs are read at the emulator's pace (a step every 50 ms).
    input.jobs.watch_min_poll_interval = absl::Milliseconds(50);
    input.jobs.watch_max_poll_interval = absl::Milliseconds(200);
    auto config = LoadConfig(input, [key](absl::string_view name) -> std::optional<std::string> {
      if (name == "USERPILOT_API_KEY") return key;
      return std::nullopt;
    });
    EXPECT_TRUE(config.ok()) << config.status();
    GatewayEnvironment environment;
    environment.logger = logger;
    environment.serve_metrics = false;  // Read in-process with metrics().
    auto gateway = Gateway::Start(*config, environment);
    EXPECT_TRUE(gateway.ok()) << gateway.status();
    return *std::move(gateway);
  }

  void SetUp() override {
    emulator_->Reset();
    client_ = Client(*gateway_);
  }

  static std::unique_ptr<v1::UserpilotGateway::Stub> Client(const Gateway& gateway) {
    return v1::UserpilotGateway::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", gateway.port()), grpc::InsecureChannelCredentials()));
  }

  // A client context with a deadline, as every production caller should set.
  static std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout = absl::Seconds(5)) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
    context->AddMetadata("x-caller", "integration-test");
    return context;
  }

  // The only request the emulator received since the last reset.
  static RecordedRequest OnlyRequest() {
    std::vector<RecordedRequest> requests = emulator_->Requests();
    EXPECT_EQ(requests.size(), 1u);
    return requests.empty() ? RecordedRequest() : requests.back();
  }

  // The only POST since the last reset: a bulk call, which its job lane may precede with reads
  // (GetJob) of the lane's previous job, to send only once that job ended.
  static RecordedRequest OnlyPost() {
    RecordedRequest post;
    int posts = 0;
    for (const RecordedRequest& r : emulator_->Requests()) {
      if (r.method == "POST") {
        post = r;
        ++posts;
      } else {
        EXPECT_EQ(r.method, "GET");
        EXPECT_THAT(r.raw_path, HasSubstr("/v1/background_jobs/"));
      }
    }
    EXPECT_EQ(posts, 1);
    return post;
  }

  // Headers every upstream call carries.
  static void ExpectStandardHeaders(const RecordedRequest& request, bool has_body) {
    EXPECT_EQ(request.Header("authorization"), absl::StrCat("Token ", kApiKey));
    EXPECT_EQ(request.Header("x-api-version"), "2020-09-22");
    EXPECT_EQ(request.Header("accept"), "application/json");
    if (has_body) {
      EXPECT_EQ(request.Header("content-type"), "application/json");
    }
  }

  // Errors reach the caller without the gateway's key, whatever Userpilot said.
  static void ExpectNoKey(const grpc::Status& status) {
    EXPECT_THAT(status.error_message(), Not(HasSubstr(kApiKey)));
    EXPECT_THAT(status.error_details(), Not(HasSubstr(kApiKey)));
  }

  // Scripts the emulator's next matching request to end with `action` (and `http_status`).
  static void AddFault(FaultAction action, int http_status = 503, std::string path_prefix = "") {
    ScriptedFault fault;
    fault.action = action;
    fault.status = http_status;
    fault.path_prefix = std::move(path_prefix);
    ASSERT_TRUE(emulator_->AddScriptedFault(fault).ok());
  }

  // One metric sample's value, or -1 when the series does not exist.
  static double Metric(absl::string_view name, const std::map<std::string, std::string>& labels) {
    auto metric = FindMetric(gateway_->metrics().Collect(), name, labels);
    if (!metric.has_value()) return -1;
    if (metric->histogram.sample_count > 0)
      return static_cast<double>(metric->histogram.sample_count);
    return metric->counter.value + metric->gauge.value;
  }

  static Emulator* emulator_;
  static Gateway* gateway_;
  static Logger* logger_;
  static std::ostringstream* log_text_;  // What logger_ wrote (the access log).
  std::unique_ptr<v1::UserpilotGateway::Stub> client_;
};

Emulator* GatewayIntegrationTest::emulator_ = nullptr;
Gateway* GatewayIntegrationTest::gateway_ = nullptr;
Logger* GatewayIntegrationTest::logger_ = nullptr;
std::ostringstream* GatewayIntegrationTest::log_text_ = nullptr;

TEST_F(GatewayIntegrationTest, IdentifyUserSendsTheDocumentedBody) {
  auto request = FromJson<v1::IdentifyUserRequest>(R"({
    "user_id": "user_789456",
    "metadata": {"name": "Sarah Johnson", "years_experience": 8, "active": true, "old": null},
    "company": {"company_id": "comp_1", "metadata": {"industry": "SaaS", "customer_count": 2500}}
  })");
  v1::IdentifyUserResponse response;
  grpc::Status status = client_->IdentifyUser(Context().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  RecordedRequest sent = OnlyRequest();
  EXPECT_EQ(sent.method, "POST");
  EXPECT_EQ(sent.raw_path, "/v1/identify");
  ExpectStandardHeaders(sent, true);
  // Metadata is a protobuf map: its keys go out sorted, so the body is deterministic.
  EXPECT_EQ(sent.body,
            R"({"user_id":"user_789456","metadata":{"active":true,"name":"Sarah Johnson",)"
            R"("old":null,"years_experience":8},"company":{"company_id":"comp_1",)"
            R"("customer_count":2500,"industry":"SaaS"}})");
  // The emulator's x-request-id ids are "<prefix><sequence>"; the response carries the one of
  // this request.
  EXPECT_FALSE(response.upstream_request_id().empty());
}

TEST_F(GatewayIntegrationTest, IdentifyCompanyAndTrackAndDeletes) {
  {
    v1::IdentifyCompanyResponse response;
    auto request = FromJson<v1::IdentifyCompanyRequest>(
        R"({"company_id":"comp_1","metadata":{"plan":"pro","seats":12.5}})");
    ASSERT_TRUE(client_->IdentifyCompany(Context().get(), request, &response).ok());
    RecordedRequest sent = OnlyRequest();
    EXPECT_EQ(sent.method, "POST");
    EXPECT_EQ(sent.raw_path, "/v1/companies/identify");
    ExpectStandardHeaders(sent, true);
    EXPECT_EQ(sent.body, R"({"company_id":"comp_1","metadata":{"plan":"pro","seats":12.5}})");
    EXPECT_FALSE(response.upstream_request_id().empty());
  }
  emulator_->ClearRequests();
  {
    v1::TrackEventResponse response;
    auto request = FromJson<v1::TrackEventRequest>(
        R"({"user_id":"u1","event_name":"purchase_completed","metadata":{"amount":42}})");
    ASSERT_TRUE(client_->TrackEvent(Context().get(), request, &response).ok());
    RecordedRequest sent = OnlyRequest();
    EXPECT_EQ(sent.raw_path, "/v1/track");
    EXPECT_EQ(sent.body,
              R"({"user_id":"u1","event_name":"purchase_completed","metadata":{"amount":42}})");
  }
  emulator_->ClearRequests();
  {
    v1::DeleteUsersResponse response;
    auto request = FromJson<v1::DeleteUsersRequest>(R"({"user_ids":["u1","u2"]})");
    ASSERT_TRUE(client_->DeleteUsers(Context().get(), request, &response).ok());
    RecordedRequest sent = OnlyRequest();
    EXPECT_EQ(sent.method, "DELETE");
    EXPECT_EQ(sent.raw_path, "/v1/users");
    ExpectStandardHeaders(sent, true);
    EXPECT_EQ(sent.body, R"({"users":["u1","u2"]})");
  }
  emulator_->ClearRequests();
  emulator_->ClearRateWindows();  // One delete per 2 s: let the next one through at once.
  {
    v1::DeleteCompaniesResponse response;
    auto request = FromJson<v1::DeleteCompaniesRequest>(R"({"company_ids":["c1"]})");
    grpc::Status status = client_->DeleteCompanies(Context().get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    RecordedRequest sent = OnlyRequest();
    EXPECT_EQ(sent.method, "DELETE");
    EXPECT_EQ(sent.raw_path, "/v1/companies");
    EXPECT_EQ(sent.body, R"({"companies":["c1"]})");
  }
}

TEST_F(GatewayIntegrationTest, BulkJobReadsBackThroughGetJobAndListJobs) {
  auto request = FromJson<v1::BulkIdentifyUsersRequest>(
      R"({"users":[{"user_id":"a","metadata":{"n":1}},{"user_id":"b","company_id":"c1"}]})");
  v1::Job job;
  ASSERT_TRUE(client_->BulkIdentifyUsers(Context().get(), request, &job).ok());
  RecordedRequest sent = OnlyPost();
  EXPECT_EQ(sent.raw_path, "/v1/users/bulk_identify");
  EXPECT_EQ(sent.body, R"({"users":[{"user_id":"a","metadata":{"n":1}},)"
                       R"({"user_id":"b","company_id":"c1"}]})");
  EXPECT_THAT(job.job_id(), HasSubstr("bulk:jobs:"));
  EXPECT_EQ(job.status(), v1::JOB_STATUS_QUEUED);
  EXPECT_EQ(job.total_rows(), 2);

  // The id holds colons: it travels percent-encoded as one path segment.
  emulator_->ClearRequests();
  v1::GetJobRequest get;
  get.set_job_id(job.job_id());
  v1::Job read;
  ASSERT_TRUE(client_->GetJob(Context().get(), get, &read).ok());
  sent = OnlyRequest();
  EXPECT_EQ(sent.method, "GET");
  ExpectStandardHeaders(sent, false);
  std::string encoded = job.job_id();
  absl::StrReplaceAll({{":", "%3A"}}, &encoded);
  EXPECT_EQ(sent.raw_path, absl::StrCat("/v1/background_jobs/", encoded));
  EXPECT_EQ(read.job_id(), job.job_id());
  EXPECT_TRUE(read.has_completed_rows());

  v1::ListJobsResponse list;
  ASSERT_TRUE(client_->ListJobs(Context().get(), v1::ListJobsRequest(), &list).ok());
  ASSERT_GE(list.jobs_size(), 1);
  EXPECT_EQ(list.jobs(0).job_id(), job.job_id());

  // The job moves to completed at the emulator's pace (50 ms a step).
  for (int i = 0; i < 100 && read.status() != v1::JOB_STATUS_COMPLETED; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
    ASSERT_TRUE(client_->GetJob(Context().get(), get, &read).ok());
  }
  EXPECT_EQ(read.status(), v1::JOB_STATUS_COMPLETED);
  EXPECT_EQ(read.completed_rows(), 2);

  // Bulk companies, once the users job has finished.
  emulator_->ClearRequests();
  auto companies = FromJson<v1::BulkIdentifyCompaniesRequest>(
      R"({"companies":[{"company_id":"c1","metadata":{"tier":"gold"}}]})");
  ASSERT_TRUE(client_->BulkIdentifyCompanies(Context().get(), companies, &job).ok());
  sent = OnlyPost();
  EXPECT_EQ(sent.raw_path, "/v1/companies/bulk_identify");
  EXPECT_EQ(sent.body, R"({"companies":[{"company_id":"c1","metadata":{"tier":"gold"}}]})");
}

TEST_F(GatewayIntegrationTest, WatchJobStreamsABulkJobToItsEnd) {
  auto request = FromJson<v1::BulkIdentifyUsersRequest>(
      R"({"users":[{"user_id":"w1"},{"user_id":"w2"},{"user_id":"w3"}]})");
  v1::Job job;
  ASSERT_TRUE(client_->BulkIdentifyUsers(Context().get(), request, &job).ok());
  v1::WatchJobRequest watch;
  watch.set_job_id(job.job_id());
  auto context = Context(absl::Seconds(10));
  std::unique_ptr<grpc::ClientReader<v1::Job>> reader = client_->WatchJob(context.get(), watch);
  std::vector<v1::Job> updates;
  v1::Job update;
  while (reader->Read(&update)) updates.push_back(update);
  const grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  ASSERT_FALSE(updates.empty());
  EXPECT_EQ(updates.back().status(), v1::JOB_STATUS_COMPLETED);
  EXPECT_EQ(updates.back().completed_rows(), 3);
  for (size_t i = 1; i < updates.size(); ++i) {
    EXPECT_LE(updates[i - 1].completed_rows(), updates[i].completed_rows()) << "update " << i;
  }
  // The polls went through the job-read budget and reached the emulator.
  EXPECT_GE(Metric("userpilot_gateway_job_polls_total", {{"result", "ok"}}), 1);
}

TEST_F(GatewayIntegrationTest, MetricsCountCallsAttemptsAndBudgets) {
  const double handled_before = Metric("grpc_server_handled_total",
                                       {{"grpc_type", "unary"},
                                        {"grpc_service", "userpilot.gateway.v1.UserpilotGateway"},
                                        {"grpc_method", "TrackEvent"},
                                        {"grpc_code", "OK"}});
  v1::TrackEventRequest request;
  request.set_user_id("m1");
  request.set_event_name("metered");
  v1::TrackEventResponse response;
  ASSERT_TRUE(client_->TrackEvent(Context().get(), request, &response).ok());
  EXPECT_EQ(Metric("grpc_server_handled_total",
                   {{"grpc_type", "unary"},
                    {"grpc_service", "userpilot.gateway.v1.UserpilotGateway"},
                    {"grpc_method", "TrackEvent"},
                    {"grpc_code", "OK"}}),
            handled_before + 1);
  EXPECT_GE(Metric("userpilot_gateway_upstream_requests_total",
                   {{"endpoint", "POST /v1/track"}, {"status_class", "2xx"}}),
            1);
  // Admitted by the track budget (queued="true" when it had to wait a spacing interval).
  EXPECT_GE(Metric("userpilot_gateway_budget_admissions_total",
                   {{"budget", "track"}, {"queued", "false"}}) +
                Metric("userpilot_gateway_budget_admissions_total",
                       {{"budget", "track"}, {"queued", "true"}}),
            1);
  EXPECT_EQ(Metric("userpilot_gateway_circuit_state", {}), 0);
  EXPECT_GE(
      Metric("userpilot_gateway_build_info", {{"version", "unknown"}, {"revision", "unknown"}}), 1);
  // Nothing the caller sent becomes a label, and the key appears nowhere.
  const std::string exposition = gateway_->metrics().Serialize();
  EXPECT_THAT(exposition, Not(HasSubstr("metered")));
  EXPECT_THAT(exposition, Not(HasSubstr(kApiKey)));
}

TEST_F(GatewayIntegrationTest, EveryCallIsAccessLoggedWithoutContentOrKey) {
  v1::IdentifyUserRequest request;
  request.set_user_id("logged-user-77");
  v1::IdentifyUserResponse response;
  ASSERT_TRUE(client_->IdentifyUser(Context().get(), request, &response).ok());
  v1::IdentifyUserRequest invalid;  // No user_id: refused by validation, logged too.
  EXPECT_EQ(client_->IdentifyUser(Context().get(), invalid, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  logger_->Flush();
  const std::string log = log_text_->str();
  EXPECT_THAT(log, ContainsRegex(R"("method":"IdentifyUser","caller":"integration-test",)"
                                 R"("trace_id":"[0-9a-f]{32}","span_id":"[0-9a-f]{16}",)"
                                 R"("grpc_code":"OK","upstream_status":202,"attempts":1)"));
  EXPECT_THAT(log, HasSubstr(R"("grpc_code":"INVALID_ARGUMENT","upstream_status":0,"attempts":0)"));
  EXPECT_THAT(log, Not(HasSubstr("logged-user-77")));
  EXPECT_THAT(log, Not(HasSubstr(kApiKey)));
}

TEST_F(GatewayIntegrationTest, PathTraversalInJobIdStaysOneSegment) {
  v1::GetJobRequest get;
  get.set_job_id("../../v1/identify");
  v1::Job job;
  grpc::Status status = client_->GetJob(Context().get(), get, &job);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  RecordedRequest sent = OnlyRequest();
  EXPECT_EQ(sent.raw_path, "/v1/background_jobs/%2E%2E%2F%2E%2E%2Fv1%2Fidentify");
  EXPECT_EQ(sent.path, "/v1/background_jobs/../../v1/identify");
}

TEST_F(GatewayIntegrationTest, InvalidRequestsNeverReachUpstream) {
  auto request =
      FromJson<v1::IdentifyUserRequest>(R"({"user_id":"","metadata":{"plan":{"nested":true}}})");
  v1::IdentifyUserResponse response;
  grpc::Status status = client_->IdentifyUser(Context().get(), request, &response);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  auto bad_request = Detail<google::rpc::BadRequest>(status);
  ASSERT_TRUE(bad_request.has_value());
  std::vector<std::string> fields;
  for (const auto& violation : bad_request->field_violations()) fields.push_back(violation.field());
  EXPECT_THAT(fields, ::testing::UnorderedElementsAre("user_id", "metadata.plan"));
  EXPECT_TRUE(emulator_->Requests().empty());
}

TEST_F(GatewayIntegrationTest, Upstream400IsInvalidArgumentWithUserpilotsMessage) {
  AddFault(FaultAction::kStatus, 400, "/v1/track");
  auto request = FromJson<v1::TrackEventRequest>(R"({"user_id":"u1","event_name":"e"})");
  v1::TrackEventResponse response;
  grpc::Status status = client_->TrackEvent(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("HTTP 400"));
  ExpectNoKey(status);
}

TEST_F(GatewayIntegrationTest, RejectedKeyBlamesTheGatewayNotTheCaller) {
  for (int http_status : {401, 403}) {
    AddFault(FaultAction::kStatus, http_status);
    v1::IdentifyUserRequest request;
    request.set_user_id("u1");
    v1::IdentifyUserResponse response;
    grpc::Status status = client_->IdentifyUser(Context().get(), request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL) << http_status;
    auto info = Detail<google::rpc::ErrorInfo>(status);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->reason(), "UPSTREAM_CREDENTIALS_REJECTED");
    ExpectNoKey(status);
  }
}

TEST_F(GatewayIntegrationTest, WrongKeyIsRejectedByTheEmulatorAndNeverEchoed) {
  auto gateway = StartGateway(emulator_->base_url(), "wrong-key-b71c");
  auto client = Client(*gateway);
  v1::IdentifyUserRequest request;
  request.set_user_id("u1");
  v1::IdentifyUserResponse response;
  grpc::Status status = client->IdentifyUser(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(Detail<google::rpc::ErrorInfo>(status)->reason(), "UPSTREAM_CREDENTIALS_REJECTED");
  EXPECT_THAT(status.error_message(), Not(HasSubstr("wrong-key-b71c")));
  EXPECT_THAT(status.error_details(), Not(HasSubstr("wrong-key-b71c")));
  EXPECT_EQ(OnlyRequest().response_status, 401);
}

TEST_F(GatewayIntegrationTest, UnknownJobIsNotFound) {
  v1::GetJobRequest get;
  get.set_job_id("bulk:jobs:NX-00000000:missing");
  v1::Job job;
  EXPECT_EQ(client_->GetJob(Context().get(), get, &job).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(GatewayIntegrationTest, SecondBulkJobIsFailedPreconditionJobInProgress) {
  emulator_->SetJobStep(absl::Seconds(30));  // The first job stays running.
  auto request = FromJson<v1::BulkIdentifyUsersRequest>(R"({"users":[{"user_id":"a"}]})");
  v1::Job job;
  ASSERT_TRUE(client_->BulkIdentifyUsers(Context().get(), request, &job).ok());
  auto companies =
      FromJson<v1::BulkIdentifyCompaniesRequest>(R"({"companies":[{"company_id":"c"}]})");
  grpc::Status status = client_->BulkIdentifyCompanies(Context().get(), companies, &job);
  emulator_->SetJobStep(absl::Milliseconds(50));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  auto info = Detail<google::rpc::ErrorInfo>(status);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), "JOB_IN_PROGRESS");
}

TEST_F(GatewayIntegrationTest, RateLimitedIsResourceExhaustedWithRetryInfo) {
  testing::RateLimits limits = emulator_->GetLimits();
  limits.identify_limit = 1;
  limits.retry_after = true;
  emulator_->SetLimits(limits);
  v1::IdentifyCompanyRequest request;
  request.set_company_id("c1");
  v1::IdentifyCompanyResponse response;
  ASSERT_TRUE(client_->IdentifyCompany(Context().get(), request, &response).ok());
  grpc::Status status = client_->IdentifyCompany(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  auto retry = Detail<google::rpc::RetryInfo>(status);
  ASSERT_TRUE(retry.has_value());
  EXPECT_GT(retry->retry_delay().seconds(), 0);  // From Retry-After: the window's remainder.
  EXPECT_LE(retry->retry_delay().seconds(), 60);

  // Without Retry-After the caller still gets a RetryInfo (the gateway's default).
  limits.retry_after = false;
  emulator_->SetLimits(limits);
  status = client_->IdentifyCompany(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(Detail<google::rpc::RetryInfo>(status).has_value());
  emulator_->SetLimits(testing::RateLimits());
}

TEST_F(GatewayIntegrationTest, ServerErrorsAreUnavailable) {
  AddFault(FaultAction::kStatus, 503);
  AddFault(FaultAction::kStatus, 500);
  for (int i = 0; i < 2; ++i) {
    v1::ListJobsResponse list;
    grpc::Status status = client_->ListJobs(Context().get(), v1::ListJobsRequest(), &list);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << i;
    EXPECT_EQ(Detail<google::rpc::ErrorInfo>(status)->reason(), "UPSTREAM_UNAVAILABLE");
    ExpectNoKey(status);
  }
  EXPECT_EQ(emulator_->Requests().size(), 2u);
}

TEST_F(GatewayIntegrationTest, DroppedConnectionIsUnavailable) {
  // Warm a keep-alive connection, then drop twice: libcurl re-sends a request once, by itself,
  // when a reused connection closes before any byte of the answer (the race with a server that
  // closed an idle connection). The second drop reaches the caller.
  v1::ListJobsResponse list;
  ASSERT_TRUE(client_->ListJobs(Context().get(), v1::ListJobsRequest(), &list).ok());
  emulator_->ClearRequests();
  AddFault(FaultAction::kDrop);
  AddFault(FaultAction::kDrop);
  grpc::Status status = client_->ListJobs(Context().get(), v1::ListJobsRequest(), &list);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Detail<google::rpc::ErrorInfo>(status)->reason(), "UPSTREAM_UNAVAILABLE");
  EXPECT_EQ(emulator_->Requests().size(), 2u);
  ExpectNoKey(status);
}

TEST_F(GatewayIntegrationTest, HangEndsAtTheCallersDeadline) {
  AddFault(FaultAction::kHang);
  v1::ListJobsResponse list;
  const absl::Time start = absl::Now();
  grpc::Status status =
      client_->ListJobs(Context(absl::Milliseconds(400)).get(), v1::ListJobsRequest(), &list);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST_F(GatewayIntegrationTest, UnreachableUpstreamIsUnavailable) {
  // A port that was just free: nothing listens there.
  auto probe = Emulator::Start(EmulatorOptions());
  ASSERT_TRUE(probe.ok());
  const std::string dead_url = (*probe)->base_url();
  probe->reset();
  auto gateway = StartGateway(dead_url, kApiKey);
  auto client = Client(*gateway);
  v1::ListJobsResponse list;
  grpc::Status status = client->ListJobs(Context().get(), v1::ListJobsRequest(), &list);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  ExpectNoKey(status);
}

}  // namespace
}  // namespace userpilot::gateway
