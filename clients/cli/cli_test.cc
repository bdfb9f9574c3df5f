#include "clients/cli/cli.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"
#include "clients/cli/call.h"
#include "clients/cli/command_line.h"
#include "clients/cli/streams.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "userpilot/gateway/v1/gateway.grpc.pb.h"

namespace userpilot::gateway::cli {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;
using ::testing::Not;

// ---- Methods and request JSON ----

TEST(FindMethodTest, ExactNamesOnly) {
  const char* names[] = {
      "IdentifyUser", "IdentifyCompany", "BulkIdentifyUsers", "BulkIdentifyCompanies", "TrackEvent",
      "ListJobs",     "GetJob",          "DeleteUsers",       "DeleteCompanies"};
  for (const char* name : names) {
    absl::StatusOr<const google::protobuf::MethodDescriptor*> m = FindMethod(name);
    ASSERT_TRUE(m.ok()) << name;
    EXPECT_EQ((*m)->name(), name);
  }
  absl::StatusOr<const google::protobuf::MethodDescriptor*> m = FindMethod("identifyUser");
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("unknown method 'identifyUser'; the methods of "
                        "userpilot.gateway.v1.UserpilotGateway are: IdentifyUser, "));
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("DeleteCompanies"));
}

TEST(ParseRequestTest, ProtoNamesAndLowerCamelAreEquivalent) {
  const auto* method = *FindMethod("BulkIdentifyUsers");
  auto a = ParseRequest(
      *method,
      R"({"users":[{"user_id":"u1","company_id":"c1","metadata":{"seats":3,"pro":true,"x":null}}]})");
  auto b = ParseRequest(
      *method,
      R"({"users":[{"userId":"u1","companyId":"c1","metadata":{"seats":3,"pro":true,"x":null}}]})");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(MessageDifferencer::Equals(**a, **b));
  const auto& req = static_cast<const v1::BulkIdentifyUsersRequest&>(**a);
  ASSERT_EQ(req.users_size(), 1);
  EXPECT_EQ(req.users(0).user_id(), "u1");
  EXPECT_EQ(req.users(0).metadata().fields().at("seats").number_value(), 3);
}

TEST(ParseRequestTest, BlankMeansEmptyRequest) {
  auto r = ParseRequest(**FindMethod("ListJobs"), " \n");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->GetTypeName(), "userpilot.gateway.v1.ListJobsRequest");
}

TEST(ParseRequestTest, ErrorsShowTheExpectedShape) {
  for (const char* json : {R"({"userid":"u1"})", "{not json", R"({"user_id":5})"}) {
    auto r = ParseRequest(**FindMethod("TrackEvent"), json);
    ASSERT_FALSE(r.ok()) << json;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(r.status().message()),
                HasSubstr("the request is not a valid TrackEventRequest in JSON: "));
    EXPECT_THAT(std::string(r.status().message()),
                HasSubstr("expected shape: {\"user_id\": string, \"event_name\": string, "
                          "\"metadata\": object}"));
  }
}

TEST(ReadRequestTextTest, InlineStdinFileOrNothing) {
  std::istringstream in(R"({"job_id":"j"})");
  EXPECT_EQ(*ReadRequestText(std::nullopt, in), "{}");
  EXPECT_EQ(*ReadRequestText(std::string(R"({"a":1})"), in), R"({"a":1})");
  EXPECT_EQ(*ReadRequestText(std::string("-"), in), R"({"job_id":"j"})");

  std::string path = absl::StrCat(::testing::TempDir(), "/cli_test_", getpid(), ".json");
  std::ofstream(path) << R"({"user_ids":["a"]})";
  EXPECT_EQ(*ReadRequestText("@" + path, in), R"({"user_ids":["a"]})");
  absl::StatusOr<std::string> missing = ReadRequestText(std::string("@/nonexistent/x.json"), in);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("cannot open '/nonexistent/x.json': No such file"));
}

TEST(MessageShapeTest, ShowsNestedAndRepeatedFields) {
  EXPECT_EQ(
      MessageShape(*v1::IdentifyUserRequest::descriptor()),
      R"({"user_id": string, "metadata": object, "company": {"company_id": string, "metadata": object}})");
  EXPECT_EQ(MessageShape(*v1::DeleteUsersRequest::descriptor()), R"({"user_ids": [string]})");
  EXPECT_EQ(MessageShape(*v1::ListJobsRequest::descriptor()), "{}");
  std::string listing = MethodListing();
  for (int i = 0; i < GatewayService().method_count(); ++i) {
    EXPECT_THAT(listing, HasSubstr(absl::StrCat("  ", GatewayService().method(i)->name(), " -> ")));
  }
  EXPECT_THAT(listing, HasSubstr("  GetJob -> Job\n      {\"job_id\": string}\n"));
}

// ---- Output ----

TEST(MessageToJsonTest, ProtoNamesNoDefaults) {
  v1::ListJobsResponse response;
  v1::Job* job = response.add_jobs();
  job->set_job_id("bulk:jobs:1");
  job->set_status(v1::JOB_STATUS_PROCESSING);
  job->set_file_size(0);  // optional: present even at zero
  EXPECT_EQ(
      *MessageToJson(response, false),
      R"({"jobs":[{"job_id":"bulk:jobs:1","status":"JOB_STATUS_PROCESSING","file_size":"0"}]})");
  EXPECT_EQ(*MessageToJson(v1::IdentifyUserResponse(), true), "{}");
  EXPECT_EQ(*MessageToJson(response, true),
            "{\n  \"jobs\": [\n    {\n      \"job_id\": \"bulk:jobs:1\",\n      \"status\": "
            "\"JOB_STATUS_PROCESSING\",\n      \"file_size\": \"0\"\n    }\n  ]\n}");
}

TEST(PrettyJsonTest, LeavesStringsAlone) {
  EXPECT_EQ(PrettyJson(R"({"a":"x,{}[]:\"y","b":[],"c":{},"d":[1,2]})"),
            "{\n  \"a\": \"x,{}[]:\\\"y\",\n  \"b\": [],\n  \"c\": {},\n  \"d\": [\n    1,\n    "
            "2\n  ]\n}");
}

grpc::Status StatusWithDetails() {
  google::rpc::BadRequest bad;
  auto* v = bad.add_field_violations();
  v->set_field("users[3].user_id");
  v->set_description("required");
  google::rpc::RetryInfo retry;
  retry.mutable_retry_delay()->set_seconds(2);
  google::rpc::Status rpc;
  rpc.set_code(3);
  rpc.set_message("bad \"request\"");
  rpc.add_details()->PackFrom(bad);
  rpc.add_details()->PackFrom(retry);
  google::protobuf::Any* unknown = rpc.add_details();
  unknown->set_type_url("type.googleapis.com/example.Unknown");
  unknown->set_value("\x01\x02");
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, rpc.message(), rpc.SerializeAsString());
}

TEST(ErrorToJsonTest, DecodesDetails) {
  EXPECT_EQ(
      ErrorToJson(StatusWithDetails(), false),
      R"({"code":"INVALID_ARGUMENT","message":"bad \"request\"","details":[)"
      R"({"@type":"type.googleapis.com/google.rpc.BadRequest","field_violations":[{"field":"users[3].user_id","description":"required"}]},)"
      R"({"@type":"type.googleapis.com/google.rpc.RetryInfo","retry_delay":"2s"},)"
      R"({"@type":"type.googleapis.com/example.Unknown","value_base64":"AQI="}]})");
  EXPECT_EQ(ErrorToJson(grpc::Status(grpc::StatusCode::UNAVAILABLE, "down\n"), false),
            R"({"code":"UNAVAILABLE","message":"down\n","details":[]})");
  EXPECT_THAT(ErrorToJson(grpc::Status(grpc::StatusCode::INTERNAL, "x", "\xff\xff"), false),
              HasSubstr("grpc-status-details-bin is not a google.rpc.Status"));
  EXPECT_EQ(ErrorToJson(grpc::Status(grpc::StatusCode::NOT_FOUND, "no"), true),
            "{\n  \"code\": \"NOT_FOUND\",\n  \"message\": \"no\",\n  \"details\": []\n}");
}

// ---- Command line ----

absl::StatusOr<Invocation> Parse(std::vector<std::string> args,
                                 std::optional<std::string> env = std::nullopt) {
  return ParseCommandLine(args, env);
}

TEST(CommandLineTest, Defaults) {
  absl::FlagSaver saver;
  auto inv = Parse({"ListJobs"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->action, Invocation::Action::kCall);
  EXPECT_EQ(inv->method, "ListJobs");
  EXPECT_FALSE(inv->request_arg.has_value());
  EXPECT_EQ(inv->target, "localhost:50051");
  EXPECT_EQ(inv->deadline, absl::Seconds(30));
  EXPECT_EQ(inv->caller, "userpilotctl");
  EXPECT_TRUE(inv->pretty);
}

TEST(CommandLineTest, FlagsAnywhereAndEnvironmentTarget) {
  absl::FlagSaver saver;
  auto inv =
      Parse({"--deadline", "5s", "GetJob", "--nopretty", "-caller=batch", "{}"}, "gw.internal:1");
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->method, "GetJob");
  EXPECT_EQ(*inv->request_arg, "{}");
  EXPECT_EQ(inv->target, "gw.internal:1");
  EXPECT_EQ(inv->deadline, absl::Seconds(5));
  EXPECT_EQ(inv->caller, "batch");
  EXPECT_FALSE(inv->pretty);
}

TEST(CommandLineTest, FlagBeatsEnvironment) {
  absl::FlagSaver saver;
  auto inv = Parse({"--target=flag:2", "ListJobs"}, "env:1");
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->target, "flag:2");
}

TEST(CommandLineTest, StdinDashAndDoubleDash) {
  absl::FlagSaver saver;
  auto inv = Parse({"TrackEvent", "-"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(*inv->request_arg, "-");
  inv = Parse({"--", "TrackEvent", "--pretty"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(*inv->request_arg, "--pretty");
}

TEST(CommandLineTest, ListAndHelp) {
  absl::FlagSaver saver;
  EXPECT_EQ(Parse({"list"})->action, Invocation::Action::kList);
  EXPECT_EQ(Parse({"--help"})->action, Invocation::Action::kHelp);
  EXPECT_EQ(Parse({"-h"})->action, Invocation::Action::kHelp);
  EXPECT_EQ(Parse({"help"})->action, Invocation::Action::kHelp);
}

TEST(CommandLineTest, UsageErrors) {
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{}, "missing the method to call"},
      {{"--bogus", "ListJobs"}, "unknown flag '--bogus'"},
      {{"--noreflection", "ListJobs"}, "unknown flag '--noreflection'"},
      {{"--nocaller", "ListJobs"}, "unknown flag '--nocaller'"},
      {{"ListJobs", "--deadline"}, "flag --deadline needs a value"},
      {{"--deadline=soon", "ListJobs"}, "--deadline: "},
      {{"--deadline=0s", "ListJobs"}, "--deadline must be positive, not 0"},
      {{"--pretty=maybe", "ListJobs"}, "--pretty: "},
      {{"--target=", "ListJobs"}, "--target must not be empty"},
      {{"GetJob", "{}", "{}"}, "too many arguments after GetJob"},
      {{"list", "x"}, "'list' takes no arguments"},
  };
  for (const auto& [args, error] : cases) {
    absl::FlagSaver saver;
    absl::StatusOr<Invocation> inv = Parse(args);
    ASSERT_FALSE(inv.ok()) << error;
    EXPECT_EQ(inv.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(inv.status().message()), HasSubstr(error));
  }
}

TEST(CommandLineTest, UsageTextShowsFlagsAndMethods) {
  std::string usage = UsageText();
  for (const char* text :
       {"--target (default: localhost:50051)", "--deadline (default: 30s)",
        "--caller (default: userpilotctl)", "--pretty (default: true)", "USERPILOT_GATEWAY_TARGET",
        "  IdentifyUser -> IdentifyUserResponse", "userpilotctl ListJobs"}) {
    EXPECT_THAT(usage, HasSubstr(text));
  }
}

TEST(CommandLineTest, TlsAndTokenFlags) {
  {
    absl::FlagSaver saver;
    auto inv = Parse({"ListJobs"});
    ASSERT_TRUE(inv.ok()) << inv.status();
    EXPECT_FALSE(inv->tls);
  }
  {
    absl::FlagSaver saver;
    auto inv =
        Parse({"--tls_ca_file=ca.pem", "--tls_server_name=gw", "--token_file=t", "ListJobs"});
    ASSERT_TRUE(inv.ok()) << inv.status();
    EXPECT_TRUE(inv->tls);  // implied
    EXPECT_EQ(inv->tls_ca_file, "ca.pem");
    EXPECT_EQ(inv->tls_server_name, "gw");
    EXPECT_EQ(inv->token_file, "t");
    EXPECT_FALSE(inv->token_over_plaintext);
  }
  {
    absl::FlagSaver saver;
    auto inv = Parse({"--tls", "--token_over_plaintext", "ListJobs"});
    ASSERT_TRUE(inv.ok()) << inv.status();
    EXPECT_TRUE(inv->tls);
    EXPECT_TRUE(inv->token_over_plaintext);
  }
  absl::FlagSaver saver;
  auto inv = Parse({"--tls_cert_file=c.pem", "ListJobs"});
  ASSERT_FALSE(inv.ok());
  EXPECT_THAT(std::string(inv.status().message()),
              HasSubstr("--tls_cert_file and --tls_key_file go together"));
  EXPECT_THAT(UsageText(), HasSubstr("--tls_ca_file (default: )"));
  EXPECT_THAT(UsageText(), HasSubstr("USERPILOT_GATEWAY_TOKEN"));
}

TEST(ClientOptionsForTest, ReadsTheTlsFilesAndTheTokenWithoutEverQuotingIt) {
  const std::string dir = ::testing::TempDir() + "/cli_test_tls_" + std::to_string(getpid());
  ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  const std::string pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
  std::ofstream(dir + "/ca.pem") << pem;
  std::ofstream(dir + "/token") << "s3cret-token\n";
  Invocation inv;
  inv.caller = "ops";
  auto plain = ClientOptionsFor(inv, std::nullopt);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->tls.has_value());
  EXPECT_EQ(plain->bearer_token, "");
  EXPECT_EQ(plain->caller, "ops");

  inv.tls = true;
  inv.tls_ca_file = dir + "/ca.pem";
  inv.tls_server_name = "gateway.test";
  inv.token_file = dir + "/token";
  auto secure = ClientOptionsFor(inv, std::string("from-env"));
  ASSERT_TRUE(secure.ok()) << secure.status();
  ASSERT_TRUE(secure->tls.has_value());
  EXPECT_EQ(secure->tls->root_certs, pem);
  EXPECT_EQ(secure->tls->server_name, "gateway.test");
  EXPECT_EQ(secure->bearer_token, "s3cret-token");  // the file wins over the environment

  inv.token_file.clear();
  EXPECT_EQ(ClientOptionsFor(inv, std::string("from-env"))->bearer_token, "from-env");
  auto bad_env = ClientOptionsFor(inv, std::string("bad token"));
  ASSERT_FALSE(bad_env.ok());
  EXPECT_THAT(std::string(bad_env.status().message()),
              HasSubstr("USERPILOT_GATEWAY_TOKEN: the bearer token from USERPILOT_GATEWAY_TOKEN"));
  EXPECT_THAT(std::string(bad_env.status().message()), Not(HasSubstr("bad token")));

  inv.tls_ca_file = dir + "/missing.pem";
  auto missing = ClientOptionsFor(inv, std::nullopt);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("cannot set up TLS: the CA file '" + dir + "/missing.pem' cannot be read"));
  inv.tls_ca_file.clear();
  inv.token_file = dir + "/missing-token";
  EXPECT_THAT(std::string(ClientOptionsFor(inv, std::nullopt).status().message()),
              HasSubstr("--token_file: the token file '" + dir + "/missing-token'"));
}

// ---- A call against an in-process fake gateway ----

class FakeGateway final : public v1::UserpilotGateway::CallbackService {
 public:
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* context,
                                     const v1::ListJobsRequest*,
                                     v1::ListJobsResponse* response) override {
    auto caller = context->client_metadata().find("x-caller");
    v1::Job* job = response->add_jobs();
    job->set_job_id("bulk:jobs:NX-1");
    job->set_type(caller == context->client_metadata().end()
                      ? "none"
                      : std::string(caller->second.data(), caller->second.size()));
    // Report whether a deadline of about 7s arrived.
    auto left = context->deadline() - std::chrono::system_clock::now();
    job->set_elapsed_time(std::chrono::duration_cast<std::chrono::seconds>(left).count());
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerUnaryReactor* IdentifyUser(grpc::CallbackServerContext* context,
                                         const v1::IdentifyUserRequest*,
                                         v1::IdentifyUserResponse*) override {
    auto* reactor = context->DefaultReactor();
    reactor->Finish(StatusWithDetails());
    return reactor;
  }
};

class CallTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    service_ = new FakeGateway();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service_);
    server_ = builder.BuildAndStart().release();
  }
  static void TearDownTestSuite() {
    server_->Shutdown();
    delete server_;
    delete service_;
  }
  static Client MakeClient(const std::string& caller, const std::string& target = "") {
    ClientOptions options;
    options.caller = caller;
    return Client::Connect(target.empty() ? absl::StrCat("127.0.0.1:", port_) : target, options);
  }
  static inline FakeGateway* service_ = nullptr;
  static inline grpc::Server* server_ = nullptr;
  static inline int port_ = 0;
};

TEST_F(CallTest, UnaryCallSendsCallerAndDeadline) {
  const auto* method = *FindMethod("ListJobs");
  auto request = *ParseRequest(*method, "{}");
  auto response = NewResponse(*method);
  Client client = MakeClient("tests");
  grpc::Status status = CallUnary(client, *method, *request, *response, absl::Seconds(7));
  ASSERT_TRUE(status.ok()) << status.error_message();
  const auto& jobs = static_cast<const v1::ListJobsResponse&>(*response);
  ASSERT_EQ(jobs.jobs_size(), 1);
  EXPECT_EQ(jobs.jobs(0).type(), "tests");
  EXPECT_GE(jobs.jobs(0).elapsed_time(), 5);
  EXPECT_LE(jobs.jobs(0).elapsed_time(), 7);
  EXPECT_THAT(*MessageToJson(*response, false), HasSubstr(R"("job_id":"bulk:jobs:NX-1")"));
}

TEST_F(CallTest, ErrorDetailsSurviveTheWire) {
  const auto* method = *FindMethod("IdentifyUser");
  auto request = *ParseRequest(*method, R"({"user_id":"u1"})");
  auto response = NewResponse(*method);
  Client client = MakeClient("t");
  grpc::Status status = CallUnary(client, *method, *request, *response, absl::Seconds(5));
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(
      ErrorToJson(status, false),
      HasSubstr(R"("field_violations":[{"field":"users[3].user_id","description":"required"}])"));
}

TEST_F(CallTest, UnreachableGatewayIsAnRpcError) {
  const auto* method = *FindMethod("ListJobs");
  auto request = *ParseRequest(*method, "{}");
  auto response = NewResponse(*method);
  Client client = MakeClient("t", "127.0.0.1:1");
  grpc::Status status = CallUnary(client, *method, *request, *response, absl::Seconds(2));
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(ErrorToJson(status, false), HasSubstr(R"({"code":"UNAVAILABLE")"));
}

// ---- Streams: --watch, --file ----

TEST(CommandLineTest, WatchAndFileFlags) {
  {
    absl::FlagSaver saver;
    auto inv = Parse({"--watch", "--file=/tmp/u.ndjson", "ImportData", "{}"});
    ASSERT_TRUE(inv.ok()) << inv.status();
    EXPECT_TRUE(inv->watch);
    EXPECT_EQ(inv->file, "/tmp/u.ndjson");
    EXPECT_FALSE(inv->deadline_given);
  }
  {
    absl::FlagSaver saver;
    auto inv = Parse({"--watch", "BulkIdentifyUsers", "--deadline=1m", "{}"});
    ASSERT_TRUE(inv.ok()) << inv.status();
    EXPECT_TRUE(inv->watch);
    EXPECT_TRUE(inv->deadline_given);
  }
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{"ImportData"}, "ImportData needs --file"},
      {{"--file=x.csv", "ListJobs"}, "--file is for ImportData only"},
      {{"--watch", "GetJob", "{}"}, "--watch follows the job"},
  };
  for (const auto& [args, error] : cases) {
    absl::FlagSaver saver;
    absl::StatusOr<Invocation> inv = Parse(args);
    ASSERT_FALSE(inv.ok()) << error;
    EXPECT_THAT(std::string(inv.status().message()), HasSubstr(error));
  }
}

TEST(StreamsTest, ImportHeaderIsCompletedFromTheFile) {
  const std::string path = ::testing::TempDir() + "/users.NDJSON";
  std::ofstream(path) << "{\"user_id\":\"u1\"}\n";
  v1::ImportHeader header;
  header.set_target(v1::IMPORT_TARGET_USERS_BULK);
  auto complete = CompleteImportHeader(header, path);
  ASSERT_TRUE(complete.ok()) << complete.status();
  EXPECT_EQ(complete->filename(), "users.NDJSON");
  EXPECT_EQ(complete->format(), v1::IMPORT_FORMAT_NDJSON);
  EXPECT_EQ(complete->size_bytes(), 17);
  header.set_filename("given.ndjson");
  header.set_format(v1::IMPORT_FORMAT_CSV);
  complete = CompleteImportHeader(header, path);
  EXPECT_EQ(complete->filename(), "given.ndjson");
  EXPECT_EQ(complete->format(), v1::IMPORT_FORMAT_CSV);
  const std::string odd = ::testing::TempDir() + "/data.bin";
  std::ofstream(odd) << "x";
  EXPECT_THAT(std::string(CompleteImportHeader(v1::ImportHeader(), odd).status().message()),
              HasSubstr("cannot tell the format"));
  EXPECT_THAT(std::string(CompleteImportHeader(header, "/nonexistent/f.csv").status().message()),
              HasSubstr("cannot read"));
}

TEST(StreamsTest, ProgressLine) {
  v1::Job job;
  job.set_job_id("bulk:jobs:1");
  job.set_raw_status("processing");
  EXPECT_EQ(ProgressLine(job), "bulk:jobs:1  processing");
  job.set_total_rows(500);
  job.set_completed_rows(120);
  job.set_elapsed_time(12);
  EXPECT_EQ(ProgressLine(job), "bulk:jobs:1  processing  120/500 rows  12s");
}

TEST(MethodListingTest, StreamingMethodsAreCallable) {
  const std::string listing = MethodListing();
  EXPECT_THAT(listing,
              HasSubstr("  WatchJob -> Job  (stream of messages)\n      {\"job_id\": string}"));
  EXPECT_THAT(listing, HasSubstr("  ImportData -> Job  (the request is an ImportHeader; --file)"));
  EXPECT_THAT(listing, Not(HasSubstr("cannot call it yet")));
}

}  // namespace
}  // namespace userpilot::gateway::cli
