// userpilot::gateway::client::Client against the real gateway in front of the Userpilot emulator,
// both started by run_with_gateway.py, which passes USERPILOT_GATEWAY_TARGET and UPGW_EMULATOR_URL.
// Every unary RPC, the error details the gateway really sends, a retry after a real RetryInfo,
// TrackEvent not repeated after a 503, and WatchJob when the gateway implements it.
#include <cstdlib>
#include <string>
#include <thread>

#include "clients/cpp/client.h"
#include "curl/curl.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace userpilot::gateway::client {
namespace {

using ::testing::UnorderedElementsAre;

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// The emulator's admin API (tests/emulator/README.md).
std::string Admin(const std::string& method, const std::string& path,
                  const std::string& body = "") {
  CURL* curl = curl_easy_init();
  std::string url = Env("UPGW_EMULATOR_URL") + "/_emulator/" + path;
  std::string answer;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (!body.empty()) curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 5L);
  CURLcode rc = curl_easy_perform(curl);
  curl_easy_cleanup(curl);
  EXPECT_EQ(rc, CURLE_OK) << method << " " << url;
  return answer;
}

int Count(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + 1))
    ++n;
  return n;
}

class ClientIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(Env("USERPILOT_GATEWAY_TARGET").empty()) << "run me with run_with_gateway.py";
    Admin("POST", "reset");
  }
  Client client_ = [] {
    ClientOptions options;
    options.caller = "cpp-integration";
    return Client::Connect(Env("USERPILOT_GATEWAY_TARGET"), options);
  }();
};

v1::Job WaitUntilDone(Client& client, const std::string& job_id) {
  for (int i = 0; i < 100; ++i) {
    auto job = client.GetJob(job_id);
    EXPECT_TRUE(job.ok()) << ErrorDetails::Describe(job.status());
    if (!job.ok() || job->status() == v1::JOB_STATUS_COMPLETED) return job.value();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "job " << job_id << " did not complete";
  return v1::Job();
}

TEST_F(ClientIntegrationTest, EveryUnaryRpc) {
  v1::IdentifyUserRequest identify;
  identify.set_user_id("u1");
  (*identify.mutable_metadata()->mutable_fields())["plan"].set_string_value("pro");
  identify.mutable_company()->set_company_id("c1");
  auto user = client_.IdentifyUser(identify);
  ASSERT_TRUE(user.ok()) << ErrorDetails::Describe(user.status());
  EXPECT_FALSE(user->upstream_request_id().empty());

  v1::IdentifyCompanyRequest company;
  company.set_company_id("c1");
  ASSERT_TRUE(client_.IdentifyCompany(company).ok());

  v1::TrackEventRequest track;
  track.set_user_id("u1");
  track.set_event_name("signed_up");
  ASSERT_TRUE(client_.TrackEvent(track).ok());

  v1::BulkIdentifyUsersRequest bulk_users;
  bulk_users.add_users()->set_user_id("a");
  bulk_users.add_users()->set_user_id("b");
  auto job = client_.BulkIdentifyUsers(bulk_users);
  ASSERT_TRUE(job.ok()) << ErrorDetails::Describe(job.status());
  EXPECT_EQ(job->total_rows(), 2);
  auto listed = client_.ListJobs();
  ASSERT_TRUE(listed.ok());
  ASSERT_GE(listed->jobs_size(), 1);
  EXPECT_EQ(listed->jobs(0).job_id(), job->job_id());
  EXPECT_EQ(WaitUntilDone(client_, job->job_id()).completed_rows(), 2);

  v1::BulkIdentifyCompaniesRequest bulk_companies;
  bulk_companies.add_companies()->set_company_id("c1");
  ASSERT_TRUE(client_.BulkIdentifyCompanies(bulk_companies).ok());

  v1::DeleteUsersRequest delete_users;
  delete_users.add_user_ids("u1");
  ASSERT_TRUE(client_.DeleteUsers(delete_users).ok());
  Admin("PUT", "limits", R"({"delete_interval_ms": 1})");
  v1::DeleteCompaniesRequest delete_companies;
  delete_companies.add_company_ids("c1");
  ASSERT_TRUE(client_.DeleteCompanies(delete_companies).ok());
  Admin("PUT", "limits", R"({"delete_interval_ms": 2000})");

  std::string requests = Admin("GET", "requests");
  for (const char* path :
       {"/v1/identify", "/v1/companies/identify", "/v1/track", "/v1/users/bulk_identify",
        "/v1/companies/bulk_identify", "/v1/users", "/v1/companies"}) {
    EXPECT_GE(Count(requests, std::string("\"raw_path\":\"") + path + "\""), 1) << path;
  }
}

TEST_F(ClientIntegrationTest, BadRequestListsEveryViolation) {
  v1::BulkIdentifyUsersRequest bulk;
  bulk.add_users()->set_user_id("ok");
  v1::BulkUser* bad = bulk.add_users();
  (*bad->mutable_metadata()->mutable_fields())["plan"].mutable_struct_value();
  auto result = client_.BulkIdentifyUsers(bulk);
  ASSERT_EQ(result.status().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ErrorDetails details = result.details();
  ASSERT_NE(details.bad_request(), nullptr);
  std::vector<std::string> fields;
  for (const auto& v : details.bad_request()->field_violations()) fields.push_back(v.field());
  EXPECT_THAT(fields, UnorderedElementsAre("users[1].user_id", "users[1].metadata.plan"));
  EXPECT_EQ(result.attempts(), 1);
}

TEST_F(ClientIntegrationTest, NotFoundCarriesErrorInfo) {
  auto result = client_.GetJob("bulk:jobs:nope");
  ASSERT_EQ(result.status().error_code(), grpc::StatusCode::NOT_FOUND);
  ErrorDetails details = result.details();
  EXPECT_EQ(details.reason(), "UPSTREAM_NOT_FOUND");
  ASSERT_NE(details.error_info(), nullptr);
  EXPECT_EQ(details.error_info()->domain(), kErrorDomain);
  EXPECT_EQ(details.metadata("endpoint"), "GET /v1/background_jobs/{job_id}");
  EXPECT_EQ(result.attempts(), 1);
}

TEST_F(ClientIntegrationTest, RateLimitedCallSucceedsAfterTheRetryInfoDelay) {
  Admin(
      "POST", "faults/script",
      R"({"action":"status","status":429,"retry_after":1,"path_prefix":"/v1/identify","count":1})");
  v1::IdentifyUserRequest identify;
  identify.set_user_id("u-limited");
  auto start = std::chrono::steady_clock::now();
  auto result = client_.IdentifyUser(identify);
  ASSERT_TRUE(result.ok()) << ErrorDetails::Describe(result.status());
  // Either this client waited for the gateway's RetryInfo (1 s) and tried again, or the gateway
  // retried by itself; either way Userpilot saw the request twice and nobody hurried.
  EXPECT_EQ(Count(Admin("GET", "requests"), "\"raw_path\":\"/v1/identify\""), 2);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900));
}

TEST_F(ClientIntegrationTest, TrackEventIsNotRepeatedAfterAnUpstreamFailure) {
  Admin("POST", "faults/script",
        R"({"action":"status","status":503,"path_prefix":"/v1/track","count":1})");
  v1::TrackEventRequest track;
  track.set_user_id("u1");
  track.set_event_name("clicked");
  auto result = client_.TrackEvent(track);
  ASSERT_EQ(result.status().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(result.attempts(), 1);
  EXPECT_TRUE(result.details().request_may_have_been_sent());
  EXPECT_EQ(Count(Admin("GET", "requests"), "\"raw_path\":\"/v1/track\""), 1);
}

TEST_F(ClientIntegrationTest, WatchJobFollowsABulkJobToItsEnd) {
  v1::BulkIdentifyUsersRequest bulk;
  bulk.add_users()->set_user_id("w1");
  auto job = client_.BulkIdentifyUsers(bulk);
  ASSERT_TRUE(job.ok()) << ErrorDetails::Describe(job.status());
  std::vector<v1::JobStatus> seen;
  CallOptions options;
  options.timeout = std::chrono::seconds(20);
  auto last = client_.WatchJob(
      job->job_id(),
      [&](const v1::Job& state) {
        seen.push_back(state.status());
        return true;
      },
      options);
  if (last.status().error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    GTEST_SKIP() << "this gateway does not implement WatchJob yet";
  }
  ASSERT_TRUE(last.ok()) << ErrorDetails::Describe(last.status());
  EXPECT_EQ(last->status(), v1::JOB_STATUS_COMPLETED);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back(), v1::JOB_STATUS_COMPLETED);
}

}  // namespace
}  // namespace userpilot::gateway::client
