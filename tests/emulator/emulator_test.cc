// Tests of the Userpilot emulator, driven over loopback with libcurl as a client would.
#include "tests/emulator/emulator.h"

#include <curl/curl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "tests/emulator/emulator_test_util.h"
#include "tests/emulator/json.h"

namespace userpilot::gateway::testing {
namespace {

using ::google::protobuf::Value;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::StartsWith;

TEST_F(EmulatorTest, ListensOnLoopbackWithPort) {
  EXPECT_GT(emulator_->port(), 0);
  EXPECT_EQ(emulator_->base_url(), absl::StrCat("http://127.0.0.1:", emulator_->port()));
}

TEST_F(EmulatorTest, ValidateAnswers200WithTheKey) {
  const HttpResult r = client_->Get("/v1/validate");
  EXPECT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 200);
}

TEST_F(EmulatorTest, MissingOrWrongKeyAnswers401WithErrorBody) {
  Request missing;
  missing.path = "/v1/validate";
  missing.auth = false;
  Request wrong = missing;
  wrong.headers = {"Authorization: Token not-the-key"};
  Request bearer = missing;
  bearer.headers = {"Authorization: Bearer emulator-key"};
  for (const Request& r : {missing, wrong, bearer}) {
    const HttpResult result = client_->Do(r);
    EXPECT_EQ(result.status, 401);
    const Value error = FirstError(result);
    EXPECT_EQ(Str(error, "error"), "unauthorized");
    EXPECT_EQ(Str(error, "error_code"), "invalid_api_key");
    EXPECT_NE(Str(error, "message"), "<absent>");
    EXPECT_NE(Str(error, "details"), "<absent>");
  }
  Request identify;
  identify.method = "POST";
  identify.path = "/v1/identify";
  identify.body = R"({"user_id":"u1"})";
  identify.auth = false;
  EXPECT_EQ(client_->Do(identify).status, 401);
}

TEST_F(EmulatorTest, RealTimeEndpointsAnswer202) {
  EXPECT_EQ(client_->Post("/v1/identify", R"({"user_id":"u1"})").status, 202);
  EXPECT_EQ(client_
                ->Post("/v1/identify",
                       R"({"user_id":"u1","metadata":{"plan":"pro","seats":3,"trial":false,
                              "gone":null},"company":{"company_id":"c1","name":"Acme"}})")
                .status,
            202);
  // Older guides name the company's id `id`.
  EXPECT_EQ(client_->Post("/v1/identify", R"({"user_id":"u1","company":{"id":"c1"}})").status, 202);
  EXPECT_EQ(client_->Post("/v1/companies/identify", R"({"company_id":"c1","metadata":{"size":12}})")
                .status,
            202);
  const HttpResult track =
      client_->Post("/v1/track", R"({"user_id":"u1","event_name":"e","metadata":{"n":1}})");
  EXPECT_EQ(track.status, 202);
  EXPECT_EQ(track.body, "{}");
  EXPECT_EQ(client_->Send("DELETE", "/v1/users", R"({"users":["u1","u2"]})").status, 202);
  clock_.Advance(absl::Seconds(2));  // One delete per 2 s.
  EXPECT_EQ(client_->Send("DELETE", "/v1/companies", R"({"companies":["c1"]})").status, 202);
}

TEST_F(EmulatorTest, EmptyAcceptedBodyOption) {
  EmulatorOptions options;
  options.empty_accepted_body = true;
  Start(options);
  const HttpResult r = client_->Post("/v1/identify", R"({"user_id":"u1"})");
  EXPECT_EQ(r.status, 202);
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(r.Header("content-length"), "0");
}

TEST_F(EmulatorTest, EveryAnswerHasUniqueRequestIdAndJsonContentType) {
  std::vector<HttpResult> results = {client_->Post("/v1/identify", R"({"user_id":"u1"})"),
                                     client_->Get("/v1/validate"), client_->Get("/v1/nope"),
                                     client_->Post("/v1/identify", "{"),
                                     client_->Get("/v1/background_jobs")};
  Request unauthorized;
  unauthorized.path = "/v1/validate";
  unauthorized.auth = false;
  results.push_back(client_->Do(unauthorized));
  std::set<std::string> ids;
  for (const HttpResult& r : results) {
    EXPECT_EQ(r.Header("content-type"), "application/json; charset=utf-8");
    EXPECT_FALSE(r.Header("x-request-id").empty());
    ids.insert(r.Header("x-request-id"));
  }
  EXPECT_EQ(ids.size(), results.size());
}

TEST_F(EmulatorTest, UnknownPathAnswers404WithErrorBody) {
  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/v1/nope"}, {"GET", "/"}, {"GET", "/v1/identify"}, {"POST", "/v2/identify"}}) {
    const HttpResult r = client_->Send(method, path, method == "POST" ? "{}" : "");
    EXPECT_EQ(r.status, 404) << method << " " << path;
    EXPECT_EQ(Str(FirstError(r), "error"), "not_found");
  }
}

struct InvalidCase {
  std::string name;
  std::string method;
  std::string path;
  std::string body;
  std::string error_code;
  std::string details;
};

TEST_F(EmulatorTest, InvalidBodiesAnswer400NamingTheField) {
  const std::vector<InvalidCase> cases = {
      {"malformed json", "POST", "/v1/identify", R"({"user_id":)", "invalid_json", ""},
      {"empty body", "POST", "/v1/identify", "", "invalid_json", ""},
      {"not an object", "POST", "/v1/identify", R"(["u1"])", "invalid_body", ""},
      {"missing user_id", "POST", "/v1/identify", R"({"metadata":{}})", "missing_field", "user_id"},
      {"empty user_id", "POST", "/v1/identify", R"({"user_id":""})", "empty_field", "user_id"},
      {"numeric user_id", "POST", "/v1/identify", R"({"user_id":7})", "invalid_type", "user_id"},
      {"metadata not object", "POST", "/v1/identify", R"({"user_id":"u","metadata":"x"})",
       "invalid_metadata", "metadata"},
      {"nested metadata object", "POST", "/v1/identify",
       R"({"user_id":"u","metadata":{"a":{"b":1}}})", "invalid_metadata", "metadata.a"},
      {"nested metadata array", "POST", "/v1/track",
       R"({"user_id":"u","event_name":"e","metadata":{"tags":[1]}})", "invalid_metadata",
       "metadata.tags"},
      {"company without id", "POST", "/v1/identify", R"({"user_id":"u","company":{"name":"A"}})",
       "missing_field", "company.company_id"},
      {"company nested property", "POST", "/v1/identify",
       R"({"user_id":"u","company":{"company_id":"c","x":{}}})", "invalid_metadata", "company.x"},
      {"company not object", "POST", "/v1/identify", R"({"user_id":"u","company":"c"})",
       "invalid_type", "company"},
      {"missing company_id", "POST", "/v1/companies/identify", R"({"metadata":{}})",
       "missing_field", "company_id"},
      {"missing event_name", "POST", "/v1/track", R"({"user_id":"u"})", "missing_field",
       "event_name"},
      {"empty event_name", "POST", "/v1/track", R"({"user_id":"u","event_name":""})", "empty_field",
       "event_name"},
      {"bulk without users", "POST", "/v1/users/bulk_identify", R"({})", "missing_field", "users"},
      {"bulk empty", "POST", "/v1/users/bulk_identify", R"({"users":[]})", "no_rows", "users"},
      {"bulk too many", "POST", "/v1/users/bulk_identify", Users(10001), "too_many_rows", "users"},
      {"bulk row without id", "POST", "/v1/users/bulk_identify",
       R"({"users":[{"user_id":"a"},{"metadata":{}}]})", "missing_field", "users[1].user_id"},
      {"bulk row nested metadata", "POST", "/v1/companies/bulk_identify",
       R"({"companies":[{"company_id":"c","metadata":{"a":[]}}]})", "invalid_metadata",
       "companies[0].metadata.a"},
      {"delete empty", "DELETE", "/v1/users", R"({"users":[]})", "no_rows", "users"},
      {"delete non-string", "DELETE", "/v1/companies", R"({"companies":[1]})", "invalid_type",
       "companies[0]"},
  };
  RateLimits no_limits;
  no_limits.enabled = false;
  emulator_->SetLimits(no_limits);
  for (const InvalidCase& c : cases) {
    SCOPED_TRACE(c.name);
    const HttpResult r = client_->Send(c.method, c.path, c.body);
    EXPECT_EQ(r.status, 400);
    const Value error = FirstError(r);
    EXPECT_EQ(Str(error, "error"), "bad_request");
    EXPECT_EQ(Str(error, "error_code"), c.error_code);
    if (!c.details.empty()) {
      EXPECT_EQ(Str(error, "details"), c.details);
    }
  }
  // A full bulk payload (10,000 rows) is accepted.
  EXPECT_EQ(client_->Post("/v1/users/bulk_identify", Users(10000)).status, 202);
}

TEST_F(EmulatorTest, InvalidBodyListsEveryViolation) {
  const HttpResult r = client_->Post(
      "/v1/track", R"({"user_id":"","event_name":3,"metadata":{"a":{},"b":[],"c":"ok"}})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(FindField(r.Json(), "errors")->list_value().values_size(), 4) << r.body;
}

TEST_F(EmulatorTest, BulkIdentifyAnswers202WithJob) {
  const HttpResult r = client_->Post(
      "/v1/users/bulk_identify",
      R"({"users":[{"user_id":"u1","company_id":"c1","metadata":{"n":1}},{"user_id":"u2"}]})");
  ASSERT_EQ(r.status, 202) << r.body;
  const Value job = r.Json();
  EXPECT_THAT(Str(job, "job_id"), StartsWith("bulk:jobs:NX-"));
  EXPECT_EQ(Str(job, "status"), "queued");
  EXPECT_EQ(Str(job, "type"), "users_bulk_identify");
  EXPECT_EQ(FindField(job, "total_rows")->number_value(), 2);
  EXPECT_EQ(FindField(job, "file_size")->kind_case(), Value::kNumberValue);
  EXPECT_EQ(FindField(job, "end_time")->kind_case(), Value::kNullValue);
  EXPECT_EQ(Str(job, "start_time"), "2025-05-19T07:29:12Z");
  EXPECT_EQ(FindField(job, "elapsed_time")->number_value(), 0);
  EXPECT_EQ(FindField(job, "completed_rows"), nullptr);  // Single-job GET only.
  EXPECT_THAT(Str(job, "links"), HasSubstr("/v1/background_jobs/bulk%3Ajobs%3ANX-"));
  // The id looks like bulk:jobs:NX-<8 hex>:<uuid>.
  const std::vector<std::string> parts = absl::StrSplit(Str(job, "job_id"), ':');
  ASSERT_EQ(parts.size(), 4u);
  EXPECT_EQ(parts[2].size(), 11u);
  EXPECT_EQ(parts[3].size(), 36u);
}

TEST_F(EmulatorTest, BulkIdentifyAcceptsMultipartNdjson) {
  const HttpResult r = client_->Upload("/v1/companies/bulk_identify",
                                       "{\"company_id\":\"c1\"}\r\n{\"company_id\":\"c2\","
                                       "\"metadata\":{\"plan\":\"pro\"}}\n\n",
                                       "companies.ndjson", "application/x-ndjson");
  ASSERT_EQ(r.status, 202) << r.body;
  const Value job = r.Json();
  EXPECT_EQ(FindField(job, "total_rows")->number_value(), 2);
  EXPECT_EQ(Str(job, "filename"), "companies.ndjson");
  EXPECT_EQ(Str(job, "type"), "companies_bulk_identify");

  emulator_->ClearJobs();
  const HttpResult bad = client_->Upload(
      "/v1/users/bulk_identify", "{\"user_id\":\"u1\"}\n{\"company_id\":\"c\"}\n", "users.ndjson");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(Str(FirstError(bad), "details"), "file line 2.user_id");
}

TEST_F(EmulatorTest, JobMovesThroughItsLifecycleWithTheClock) {
  EmulatorOptions options;
  options.job_step = absl::Seconds(10);
  Start(options);
  const HttpResult created = client_->Post("/v1/users/bulk_identify", Users(100));
  ASSERT_EQ(created.status, 202);
  const std::string path = absl::StrCat("/v1/background_jobs/", Str(created.Json(), "job_id"));
  const auto status_at = [&](absl::Duration advance) {
    clock_.Advance(advance);
    const HttpResult r = client_->Get(path);
    EXPECT_EQ(r.status, 200);
    return r.Json();
  };
  Value job = status_at(absl::ZeroDuration());
  EXPECT_EQ(Str(job, "status"), "queued");
  EXPECT_EQ(FindField(job, "completed_rows")->number_value(), 0);
  EXPECT_EQ(Str(status_at(absl::Seconds(10)), "status"), "validating");
  job = status_at(absl::Seconds(15));
  EXPECT_EQ(Str(job, "status"), "processing");
  EXPECT_EQ(FindField(job, "completed_rows")->number_value(), 50);
  EXPECT_EQ(FindField(job, "end_time")->kind_case(), Value::kNullValue);
  EXPECT_EQ(FindField(job, "elapsed_time")->number_value(), 25);
  job = status_at(absl::Seconds(5));
  EXPECT_EQ(Str(job, "status"), "completed");
  EXPECT_EQ(FindField(job, "completed_rows")->number_value(), 100);
  EXPECT_EQ(Str(job, "end_time"), "2025-05-19T07:29:42Z");
  EXPECT_EQ(FindField(status_at(absl::Hours(1)), "elapsed_time")->number_value(), 30);
}

TEST_F(EmulatorTest, FailedJobEndsFailed) {
  const HttpResult created = client_->Post("/v1/users/bulk_identify", Users(10));
  const std::string id = Str(created.Json(), "job_id");
  clock_.Advance(absl::Milliseconds(2500));  // Processing, half done.
  ASSERT_TRUE(emulator_->FailJob(id).ok());
  clock_.Advance(absl::Seconds(10));
  const Value job = client_->Get(absl::StrCat("/v1/background_jobs/", id)).Json();
  EXPECT_EQ(Str(job, "status"), "failed");
  EXPECT_EQ(FindField(job, "completed_rows")->number_value(), 5);
  EXPECT_EQ(Str(job, "end_time"), "2025-05-19T07:29:14Z");

  EXPECT_EQ(emulator_->ForceJobStatus(id, "pending_refresh").code(), absl::StatusCode::kOk);
  EXPECT_EQ(emulator_->GetJob(id)->status, "pending_refresh");
  EXPECT_EQ(emulator_->ForceJobStatus(id, "exploded").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(emulator_->FailJob("bulk:jobs:none").code(), absl::StatusCode::kNotFound);
}

TEST_F(EmulatorTest, OneBulkJobAtATimeAcrossUsersAndCompanies) {
  ASSERT_EQ(client_->Post("/v1/users/bulk_identify", Users(1)).status, 202);
  const HttpResult users = client_->Post("/v1/users/bulk_identify", Users(1));
  EXPECT_EQ(users.status, 409);
  EXPECT_EQ(Str(FirstError(users), "error_code"), "job_in_progress");
  const HttpResult companies =
      client_->Post("/v1/companies/bulk_identify", R"({"companies":[{"company_id":"c"}]})");
  EXPECT_EQ(companies.status, 409);
  EXPECT_EQ(Str(FirstError(companies), "error_code"), "job_in_progress");
  // An import is a separate family.
  EXPECT_EQ(client_->Upload("/v1/imports", "a,b\n1,2\n", "x.csv").status, 200);

  clock_.Advance(absl::Seconds(3));  // The first job completes.
  EXPECT_EQ(
      client_->Post("/v1/companies/bulk_identify", R"({"companies":[{"company_id":"c"}]})").status,
      202);
}

TEST_F(EmulatorTest, FailedJobFreesTheBulkSlot) {
  const HttpResult first = client_->Post("/v1/users/bulk_identify", Users(1));
  ASSERT_TRUE(emulator_->FailJob(Str(first.Json(), "job_id")).ok());
  EXPECT_EQ(client_->Post("/v1/users/bulk_identify", Users(1)).status, 202);
}

TEST_F(EmulatorTest, ImportAnswers200WithStringCountsAndOneAtATime) {
  const std::string csv =
      "event_type,user_id,inserted_at\ntrack,u1,2024-07-28 08:55:35\n"
      "track,u2,2024-07-28 08:55:36\n";
  const HttpResult r = client_->Upload("/v1/imports", csv, "events.csv", "text/csv");
  ASSERT_EQ(r.status, 200) << r.body;
  const Value job = r.Json();
  EXPECT_THAT(Str(job, "job_id"), StartsWith("import:jobs:NX-"));
  EXPECT_EQ(Str(job, "total_rows"), "2");
  EXPECT_EQ(Str(job, "file_size"), absl::StrCat(csv.size()));
  EXPECT_EQ(Str(job, "filename"), "events.csv");
  EXPECT_EQ(Str(job, "status"), "queued");

  const HttpResult second = client_->Upload(
      "/v1/imports", "{\"event_type\":\"track\",\"user_id\":\"u\"}\n", "events.ndjson");
  EXPECT_EQ(second.status, 409);
  EXPECT_EQ(Str(FirstError(second), "error_code"), "job_in_progress");

  clock_.Advance(absl::Seconds(3));
  const HttpResult ndjson = client_->Upload(
      "/v1/imports", "{\"event_type\":\"track\",\"user_id\":\"u\"}\n", "events.ndjson");
  EXPECT_EQ(ndjson.status, 200);
  EXPECT_EQ(Str(ndjson.Json(), "total_rows"), "1");

  EXPECT_EQ(client_->Post("/v1/imports", "{}").status, 400);  // Not multipart.
  clock_.Advance(absl::Seconds(3));
  EXPECT_EQ(client_->Upload("/v1/imports", "{not json}\n", "bad.ndjson").status, 400);
}

TEST_F(EmulatorTest, GetJobTakesPercentEncodedIdWithColons) {
  const HttpResult created = client_->Post("/v1/users/bulk_identify", Users(3));
  const std::string id = Str(created.Json(), "job_id");
  std::string encoded = id;
  absl::StrReplaceAll({{":", "%3A"}}, &encoded);
  const HttpResult r = client_->Get(absl::StrCat("/v1/background_jobs/", encoded));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Str(r.Json(), "job_id"), id);
  EXPECT_EQ(FindField(r.Json(), "total_rows")->number_value(), 3);
  // Colons left raw are the same segment.
  EXPECT_EQ(client_->Get(absl::StrCat("/v1/background_jobs/", id)).status, 200);

  const HttpResult unknown = client_->Get("/v1/background_jobs/bulk%3Ajobs%3ANX-0%2Fx");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(Str(FirstError(unknown), "error_code"), "job_not_found");
  EXPECT_EQ(Str(FirstError(unknown), "details"), "bulk:jobs:NX-0/x");
  // An unescaped slash makes another path.
  EXPECT_EQ(client_->Get(absl::StrCat("/v1/background_jobs/", id, "/x")).status, 404);
}

TEST_F(EmulatorTest, ListJobsAnswersNewestFirstWithoutCompletedRows) {
  EXPECT_EQ(client_->Get("/v1/background_jobs").body, "[]");
  const std::string first =
      Str(client_->Post("/v1/users/bulk_identify", Users(1)).Json(), "job_id");
  clock_.Advance(absl::Seconds(5));
  const std::string second =
      Str(client_->Upload("/v1/imports", "a\n1\n", "a.csv").Json(), "job_id");
  const HttpResult r = client_->Get("/v1/background_jobs");
  ASSERT_EQ(r.status, 200);
  const Value list = r.Json();
  ASSERT_EQ(list.list_value().values_size(), 2);
  EXPECT_EQ(Str(list.list_value().values(0), "job_id"), second);
  EXPECT_EQ(Str(list.list_value().values(1), "job_id"), first);
  EXPECT_EQ(Str(list.list_value().values(1), "status"), "completed");
  EXPECT_EQ(FindField(list.list_value().values(0), "completed_rows"), nullptr);
  EXPECT_EQ(FindField(list.list_value().values(0), "total_rows")->kind_case(), Value::kNumberValue);
}

TEST_F(EmulatorTest, SlidingWindowRefusesOverTheLimitWithoutRetryAfter) {
  EmulatorOptions options;
  options.limits.identify_limit = 3;
  options.limits.window = absl::Seconds(10);
  Start(options);
  const std::string body = R"({"user_id":"u"})";
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(client_->Post("/v1/identify", body).status, 202);
    clock_.Advance(absl::Seconds(1));
  }
  // t=3: three requests within the last 10 s.
  HttpResult r = client_->Post("/v1/identify", body);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.Header("retry-after"), "");
  EXPECT_EQ(Str(FirstError(r), "error_code"), "rate_limit_exceeded");
  // A true sliding window: just before t=10 the first request is still inside.
  clock_.Advance(absl::Milliseconds(6999));
  EXPECT_EQ(client_->Post("/v1/identify", body).status, 429);
  clock_.Advance(absl::Milliseconds(1));  // t=10: the first leaves, one slot frees.
  EXPECT_EQ(client_->Post("/v1/identify", body).status, 202);
  EXPECT_EQ(client_->Post("/v1/identify", body).status, 429);
  EXPECT_EQ(emulator_->Stats().rate_limited, 3);
}

TEST_F(EmulatorTest, RetryAfterIsSentWhenEnabled) {
  EmulatorOptions options;
  options.limits.track_limit = 2;
  options.limits.window = absl::Seconds(10);
  options.limits.retry_after = true;
  Start(options);
  const std::string body = R"({"user_id":"u","event_name":"e"})";
  EXPECT_EQ(client_->Post("/v1/track", body).status, 202);
  clock_.Advance(absl::Milliseconds(1500));
  EXPECT_EQ(client_->Post("/v1/track", body).status, 202);
  clock_.Advance(absl::Seconds(1));
  const HttpResult r = client_->Post("/v1/track", body);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.Header("retry-after"), "8");  // 7.5 s until the first leaves, rounded up.
}

TEST_F(EmulatorTest, CompanyIdentifySharesTheIdentifyBudgetAndTrackHasItsOwn) {
  EmulatorOptions options;
  options.limits.identify_limit = 2;
  options.limits.track_limit = 1;
  Start(options);
  EXPECT_EQ(client_->Post("/v1/identify", R"({"user_id":"u"})").status, 202);
  EXPECT_EQ(client_->Post("/v1/companies/identify", R"({"company_id":"c"})").status, 202);
  EXPECT_EQ(client_->Post("/v1/companies/identify", R"({"company_id":"c"})").status, 429);
  EXPECT_EQ(client_->Post("/v1/identify", R"({"user_id":"u"})").status, 429);
  EXPECT_EQ(client_->Post("/v1/track", R"({"user_id":"u","event_name":"e"})").status, 202);
  EXPECT_EQ(client_->Post("/v1/track", R"({"user_id":"u","event_name":"e"})").status, 429);
  // Bulk and job reads are not rate limited.
  EXPECT_EQ(client_->Post("/v1/users/bulk_identify", Users(1)).status, 202);
  EXPECT_EQ(client_->Get("/v1/background_jobs").status, 200);
}

TEST_F(EmulatorTest, DeletesAllowOneRequestPerInterval) {
  EXPECT_EQ(client_->Send("DELETE", "/v1/users", R"({"users":["u"]})").status, 202);
  clock_.Advance(absl::Milliseconds(1999));
  EXPECT_EQ(client_->Send("DELETE", "/v1/companies", R"({"companies":["c"]})").status, 429);
  clock_.Advance(absl::Milliseconds(1));
  EXPECT_EQ(client_->Send("DELETE", "/v1/companies", R"({"companies":["c"]})").status, 202);
}

TEST_F(EmulatorTest, LimitsChangeAtRunTimeAndCanBeTurnedOff) {
  RateLimits limits = emulator_->GetLimits();
  limits.identify_limit = 1;
  emulator_->SetLimits(limits);
  EXPECT_EQ(client_->Post("/v1/identify", R"({"user_id":"u"})").status, 202);
  EXPECT_EQ(client_->Post("/v1/identify", R"({"user_id":"u"})").status, 429);
  limits.enabled = false;
  emulator_->SetLimits(limits);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(client_->Post("/v1/identify", R"({"user_id":"u"})").status, 202);
    EXPECT_EQ(client_->Send("DELETE", "/v1/users", R"({"users":["u"]})").status, 202);
  }
}

TEST_F(EmulatorTest, ScriptedStatusAppliesToTheNextMatchingRequestsOnly) {
  ScriptedFault fault;
  fault.status = 503;
  fault.retry_after_seconds = 2;
  fault.path_prefix = "/v1/track";
  fault.count = 2;
  ASSERT_TRUE(emulator_->AddScriptedFault(fault).ok());
  const std::string track = R"({"user_id":"u","event_name":"e"})";
  EXPECT_EQ(client_->Post("/v1/identify", R"({"user_id":"u"})").status, 202);  // Not matched.
  for (int i = 0; i < 2; ++i) {
    const HttpResult r = client_->Post("/v1/track", track);
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.Header("retry-after"), "2");
    EXPECT_EQ(Str(FirstError(r), "error"), "service_unavailable");
    EXPECT_FALSE(r.Header("x-request-id").empty());
  }
  EXPECT_EQ(client_->Post("/v1/track", track).status, 202);  // Script spent.
  EXPECT_TRUE(emulator_->GetFaults().script.empty());
  EXPECT_EQ(emulator_->Stats().injected_errors, 2);

  // A scripted 429 without Retry-After, on any path.
  ScriptedFault throttle;
  throttle.status = 429;
  ASSERT_TRUE(emulator_->AddScriptedFault(throttle).ok());
  const HttpResult r = client_->Get("/v1/background_jobs");
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.Header("retry-after"), "");
  EXPECT_EQ(client_->Get("/v1/background_jobs").status, 200);
}

TEST_F(EmulatorTest, ScriptedDropClosesTheConnectionWithoutAnswer) {
  ScriptedFault drop;
  drop.action = FaultAction::kDrop;
  ASSERT_TRUE(emulator_->AddScriptedFault(drop).ok());
  Request identify;
  identify.method = "POST";
  identify.path = "/v1/identify";
  identify.body = R"({"user_id":"u"})";
  identify.fresh_connection = true;
  const HttpResult r = client_->Do(identify);
  EXPECT_EQ(r.code, CURLE_GOT_NOTHING);
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(client_->Post("/v1/identify", R"({"user_id":"u"})").status, 202);
  EXPECT_EQ(emulator_->Stats().dropped, 1);
  const std::vector<RecordedRequest> requests = emulator_->Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].outcome, Outcome::kDropped);
  EXPECT_EQ(requests[0].response_status, 0);
}

TEST_F(EmulatorTest, ScriptedHangNeverAnswersUntilTheClientGivesUp) {
  ScriptedFault hang;
  hang.action = FaultAction::kHang;
  hang.path_prefix = "/v1/background_jobs";
  ASSERT_TRUE(emulator_->AddScriptedFault(hang).ok());
  Request r;
  r.path = "/v1/background_jobs";
  r.timeout_ms = 300;
  const HttpResult hung = client_->Do(r);
  EXPECT_EQ(hung.code, CURLE_OPERATION_TIMEDOUT);
  EXPECT_GE(hung.elapsed, absl::Milliseconds(290));
  EXPECT_EQ(client_->Get("/v1/background_jobs").status, 200);  // A new connection is served.
  EXPECT_EQ(emulator_->Stats().hung, 1);
}

TEST_F(EmulatorTest, HangIsBoundedByMaxHang) {
  Faults faults;
  faults.hang_ratio = 1;
  faults.max_hang = absl::Milliseconds(100);
  ASSERT_TRUE(emulator_->SetFaults(faults).ok());
  const HttpResult r = client_->GetOnFreshConnection("/v1/validate");
  EXPECT_EQ(r.code, CURLE_GOT_NOTHING);  // Closed unanswered after max_hang.
  EXPECT_GE(r.elapsed, absl::Milliseconds(95));
  EXPECT_LT(r.elapsed, absl::Seconds(3));
}

TEST_F(EmulatorTest, RatioFaultsApplyToEveryRequestAtRatioOne) {
  Faults faults;
  faults.error_ratio = 1;
  faults.error_status = 502;
  ASSERT_TRUE(emulator_->SetFaults(faults).ok());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(client_->Get("/v1/validate").status, 502);
  faults.error_ratio = 0;
  faults.drop_ratio = 1;
  ASSERT_TRUE(emulator_->SetFaults(faults).ok());
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(client_->GetOnFreshConnection("/v1/validate").code, CURLE_GOT_NOTHING);
  }
  emulator_->ClearFaults();
  EXPECT_EQ(client_->Get("/v1/validate").status, 200);
  const EmulatorStats stats = emulator_->Stats();
  EXPECT_EQ(stats.injected_errors, 3);
  EXPECT_EQ(stats.dropped, 3);

  faults.drop_ratio = 1.5;
  EXPECT_EQ(emulator_->SetFaults(faults).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(EmulatorTest, LatencyDelaysEveryAnswer) {
  Faults faults;
  faults.latency = absl::Milliseconds(150);
  ASSERT_TRUE(emulator_->SetFaults(faults).ok());
  const HttpResult r = client_->Get("/v1/validate");
  EXPECT_EQ(r.status, 200);
  EXPECT_GE(r.elapsed, absl::Milliseconds(145));
}

TEST_F(EmulatorTest, FaultsNeverApplyToAdminPaths) {
  Faults faults;
  faults.drop_ratio = 1;
  ScriptedFault all;
  all.count = 5;
  faults.script.push_back(all);
  ASSERT_TRUE(emulator_->SetFaults(faults).ok());
  EXPECT_EQ(client_->Get("/_emulator/stats").status, 200);
  EXPECT_EQ(client_->Get("/_emulator/requests").status, 200);
  EXPECT_EQ(emulator_->GetFaults().script.at(0).count, 5);
}

TEST_F(EmulatorTest, RecordKeepsRawPathDecodedPathHeadersAndExactBody) {
  const std::string body = "{\"user_id\":\"\xc3\xa9t\xc3\xa9\",  \"metadata\":{}}\n";
  Request r;
  r.method = "POST";
  r.path = "/v1/identify?x=1&y=a%20b";
  r.body = body;
  r.headers = {"X-API-Version: 2020-09-22", "Accept: application/json"};
  EXPECT_EQ(client_->Do(r).status, 202);
  client_->Get("/v1/background_jobs/bulk%3Ajobs%3ANX-1%2Fz");
  client_->Get("/_emulator/stats");  // Admin requests are not recorded.

  const std::vector<RecordedRequest> requests = emulator_->Requests();
  ASSERT_EQ(requests.size(), 2u);
  const RecordedRequest& identify = requests[0];
  EXPECT_EQ(identify.method, "POST");
  EXPECT_EQ(identify.raw_path, "/v1/identify");
  EXPECT_EQ(identify.query, "x=1&y=a%20b");
  EXPECT_EQ(identify.body, body);
  EXPECT_EQ(identify.Header("authorization"), "Token emulator-key");
  EXPECT_EQ(identify.Header("x-api-version"), "2020-09-22");
  EXPECT_EQ(identify.Header("content-type"), "application/json");
  EXPECT_THAT(identify.headers, Contains(Pair("accept", "application/json")));
  EXPECT_EQ(identify.response_status, 202);
  EXPECT_EQ(identify.outcome, Outcome::kAnswered);
  EXPECT_EQ(identify.received_at, clock_.Now());
  EXPECT_EQ(requests[1].raw_path, "/v1/background_jobs/bulk%3Ajobs%3ANX-1%2Fz");
  EXPECT_EQ(requests[1].path, "/v1/background_jobs/bulk:jobs:NX-1/z");
  EXPECT_EQ(requests[1].response_status, 404);
  EXPECT_LT(requests[0].seq, requests[1].seq);

  emulator_->ClearRequests();
  EXPECT_TRUE(emulator_->Requests().empty());
}

TEST_F(EmulatorTest, RecordIsABoundedRing) {
  EmulatorOptions options;
  options.request_log_capacity = 3;
  Start(options);
  for (int i = 0; i < 5; ++i)
    client_->Post("/v1/identify", absl::StrCat(R"({"user_id":"u)", i, R"("})"));
  const std::vector<RecordedRequest> requests = emulator_->Requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].body, R"({"user_id":"u2"})");
  EXPECT_EQ(requests[2].body, R"({"user_id":"u4"})");
  EXPECT_EQ(requests[2].seq, 5u);
  EXPECT_EQ(requests[2].response_status, 202);
  EXPECT_EQ(emulator_->Stats().requests, 5);
}

TEST_F(EmulatorTest, StatsCountByEndpointAndStatus) {
  client_->Post("/v1/identify", R"({"user_id":"u"})");
  client_->Post("/v1/identify", R"({"user_id":""})");
  client_->Post("/v1/track", R"({"user_id":"u","event_name":"e"})");
  client_->Get("/v1/nope");
  const EmulatorStats stats = emulator_->Stats();
  EXPECT_EQ(stats.requests, 4);
  EXPECT_EQ(stats.by_endpoint.at("identify"), 2);
  EXPECT_EQ(stats.by_endpoint.at("track"), 1);
  EXPECT_EQ(stats.by_endpoint.at("unknown"), 1);
  EXPECT_EQ(stats.by_status.at(202), 2);
  EXPECT_EQ(stats.by_status.at(400), 1);
  EXPECT_EQ(stats.by_status.at(404), 1);
  emulator_->ResetStats();
  EXPECT_EQ(emulator_->Stats().requests, 0);
}

TEST_F(EmulatorTest, AdminRequestsEndpointListsAndClearsTheRecord) {
  Request r;
  r.method = "POST";
  r.path = "/v1/track?q=1";
  r.body = R"({"user_id":"u","event_name":"e"})";
  client_->Do(r);
  HttpResult list = client_->Get("/_emulator/requests");
  ASSERT_EQ(list.status, 200);
  Value records = list.Json();
  ASSERT_EQ(records.list_value().values_size(), 1);
  const Value& rec = records.list_value().values(0);
  EXPECT_EQ(Str(rec, "method"), "POST");
  EXPECT_EQ(Str(rec, "raw_path"), "/v1/track");
  EXPECT_EQ(Str(rec, "query"), "q=1");
  EXPECT_EQ(Str(rec, "body"), r.body);
  EXPECT_EQ(Str(*FindField(rec, "headers"), "authorization"), "Token emulator-key");
  EXPECT_EQ(FindField(rec, "response_status")->number_value(), 202);
  EXPECT_EQ(Str(rec, "outcome"), "answered");
  EXPECT_EQ(Str(rec, "received_at"), "2025-05-19T07:29:12.000000Z");

  client_->Post("/v1/identify", "\xff\xfe");  // Not UTF-8: given as base64.
  records = client_->Get("/_emulator/requests?limit=1").Json();
  ASSERT_EQ(records.list_value().values_size(), 1);
  EXPECT_EQ(Str(records.list_value().values(0), "body_base64"), "//4=");

  EXPECT_EQ(client_->Send("DELETE", "/_emulator/requests", "").status, 200);
  EXPECT_EQ(client_->Get("/_emulator/requests").body, "[]");
}

TEST_F(EmulatorTest, AdminFaultsEndpointReadsAndChangesFaults) {
  HttpResult r = client_->Send(
      "PUT", "/_emulator/faults",
      R"({"latency_ms":5,"script":[{"action":"status","status":500,"path_prefix":"/v1/identify",
          "count":1},{"action":"drop"}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  const Faults faults = emulator_->GetFaults();
  EXPECT_EQ(faults.latency, absl::Milliseconds(5));
  ASSERT_EQ(faults.script.size(), 2u);
  EXPECT_EQ(faults.script[0].status, 500);
  EXPECT_EQ(faults.script[1].action, FaultAction::kDrop);

  EXPECT_EQ(client_->Post("/v1/identify", R"({"user_id":"u"})").status, 500);
  EXPECT_EQ(client_->GetOnFreshConnection("/v1/validate").code, CURLE_GOT_NOTHING);
  EXPECT_EQ(client_->Get("/v1/validate").status, 200);

  r = client_->Send("POST", "/_emulator/faults/script",
                    R"({"action":"status","status":429,"retry_after":7})");
  ASSERT_EQ(r.status, 200) << r.body;
  const HttpResult throttled = client_->Get("/v1/validate");
  EXPECT_EQ(throttled.status, 429);
  EXPECT_EQ(throttled.Header("retry-after"), "7");

  const Value got = client_->Get("/_emulator/faults").Json();
  EXPECT_EQ(FindField(got, "latency_ms")->number_value(), 5);
  EXPECT_EQ(client_->Send("PUT", "/_emulator/faults", R"({"error_ratio":2})").status, 400);
  EXPECT_EQ(client_->Send("PUT", "/_emulator/faults", R"({"script":[{"action":"boom"}]})").status,
            400);
  EXPECT_EQ(client_->Send("DELETE", "/_emulator/faults", "").status, 200);
  EXPECT_EQ(emulator_->GetFaults().latency, absl::ZeroDuration());
}

TEST_F(EmulatorTest, AdminLimitsAndStatsEndpoints) {
  HttpResult r = client_->Send("PUT", "/_emulator/limits",
                               R"({"identify_limit":1,"retry_after":true,"window_ms":5000})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(emulator_->GetLimits().identify_limit, 1);
  EXPECT_EQ(emulator_->GetLimits().window, absl::Seconds(5));
  EXPECT_EQ(emulator_->GetLimits().track_limit, 600);  // Untouched.
  EXPECT_EQ(client_->Post("/v1/identify", R"({"user_id":"u"})").status, 202);
  const HttpResult limited = client_->Post("/v1/identify", R"({"user_id":"u"})");
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(limited.Header("retry-after"), "5");
  EXPECT_EQ(client_->Send("PUT", "/_emulator/limits", R"({"identify_limit":"x"})").status, 400);
  EXPECT_EQ(client_->Send("PUT", "/_emulator/limits", R"({"enabled":false})").status, 200);
  EXPECT_EQ(client_->Post("/v1/identify", R"({"user_id":"u"})").status, 202);
  EXPECT_EQ(FindField(client_->Get("/_emulator/limits").Json(), "enabled")->bool_value(), false);

  const Value stats = client_->Get("/_emulator/stats").Json();
  EXPECT_EQ(FindField(stats, "requests")->number_value(), 3);
  EXPECT_EQ(FindField(stats, "rate_limited")->number_value(), 1);
  EXPECT_EQ(FindField(*FindField(stats, "by_endpoint"), "identify")->number_value(), 3);
  EXPECT_EQ(FindField(*FindField(stats, "by_status"), "429")->number_value(), 1);
}

TEST_F(EmulatorTest, AdminJobsEndpointsFailForceAndPace) {
  const std::string id = Str(client_->Post("/v1/users/bulk_identify", Users(2)).Json(), "job_id");
  std::string encoded = id;
  absl::StrReplaceAll({{":", "%3A"}}, &encoded);
  HttpResult r = client_->Post(absl::StrCat("/_emulator/jobs/", encoded, "/fail"), "");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Str(client_->Get(absl::StrCat("/v1/background_jobs/", encoded)).Json(), "status"),
            "failed");
  r = client_->Post(absl::StrCat("/_emulator/jobs/", encoded, "/status"),
                    R"({"status":"processing"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(emulator_->GetJob(id)->status, "processing");
  EXPECT_EQ(client_->Post("/_emulator/jobs/nope/fail", "").status, 404);
  EXPECT_EQ(
      client_->Post(absl::StrCat("/_emulator/jobs/", encoded, "/status"), R"({"status":"weird"})")
          .status,
      400);

  r = client_->Send("PUT", "/_emulator/jobs", R"({"step_ms":250})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(emulator_->GetJobStep(), absl::Milliseconds(250));
  const Value jobs = client_->Get("/_emulator/jobs").Json();
  EXPECT_EQ(FindField(jobs, "jobs")->list_value().values_size(), 1);
  EXPECT_EQ(client_->Send("DELETE", "/_emulator/jobs", "").status, 200);
  EXPECT_TRUE(emulator_->Jobs().empty());
}

// A bulk job's rows are applied when it completes, so a single identify accepted while the job
// runs is overwritten by the job's older row: the reordering a client must avoid, observable.
TEST_F(EmulatorTest, ProfilesApplySingleIdentifiesAtOnceAndBulkRowsWhenTheJobCompletes) {
  EmulatorOptions options;
  options.job_step = absl::Seconds(10);
  Start(options);
  ASSERT_EQ(client_->Post("/v1/identify", R"({"user_id":"u1","metadata":{"plan":"v1"}})").status,
            202);
  const HttpResult job = client_->Post(
      "/v1/users/bulk_identify",
      R"({"users":[{"user_id":"u1","metadata":{"plan":"v2","seats":3}},{"user_id":"u2"}]})");
  ASSERT_EQ(job.status, 202);
  const std::string job_id = Str(job.Json(), "job_id");
  clock_.Advance(absl::Seconds(5));
  ASSERT_EQ(client_->Post("/v1/identify", R"({"user_id":"u1","metadata":{"plan":"v3"}})").status,
            202);
  std::optional<Profile> u1 = emulator_->GetProfile(EntityKind::kUser, "u1");
  ASSERT_TRUE(u1.has_value());
  EXPECT_EQ(u1->metadata.fields().at("plan").string_value(), "v3");
  EXPECT_EQ(u1->history.size(), 2u);
  EXPECT_FALSE(emulator_->GetProfile(EntityKind::kUser, "u2").has_value());  // Not yet.

  clock_.Advance(absl::Seconds(25));  // The job completed 30 s after it started.
  u1 = emulator_->GetProfile(EntityKind::kUser, "u1");
  ASSERT_EQ(u1->history.size(), 3u);
  EXPECT_EQ(u1->history[2].source, job_id);
  EXPECT_EQ(u1->history[2].at, emulator_->GetJob(job_id)->end_time.value());
  EXPECT_EQ(u1->metadata.fields().at("plan").string_value(), "v2");  // The old row won.
  EXPECT_EQ(u1->metadata.fields().at("seats").number_value(), 3);
  EXPECT_TRUE(emulator_->GetProfile(EntityKind::kUser, "u2").has_value());

  // Over the admin API; a failed job's rows are never applied.
  const Value profile = client_->Get("/_emulator/users/u1").Json();
  EXPECT_EQ(Str(*FindField(profile, "metadata"), "plan"), "v2");
  EXPECT_EQ(FindField(profile, "history")->list_value().values_size(), 3);
  EXPECT_EQ(client_->Get("/_emulator/users/nobody").status, 404);
  const std::string failed = Str(
      client_->Post("/v1/companies/bulk_identify", R"({"companies":[{"company_id":"c1"}]})").Json(),
      "job_id");
  ASSERT_TRUE(emulator_->FailJob(failed).ok());
  clock_.Advance(absl::Minutes(1));
  EXPECT_EQ(client_->Get("/_emulator/companies/c1").status, 404);
  ASSERT_EQ(client_->Post("/v1/companies/identify", R"({"company_id":"c1"})").status, 202);
  EXPECT_EQ(client_->Get("/_emulator/companies/c1").status, 200);
}

TEST_F(EmulatorTest, AdminResetHealthAndUnknown) {
  client_->Post("/v1/identify", R"({"user_id":"u"})");
  ASSERT_TRUE(emulator_->AddScriptedFault(ScriptedFault()).ok());
  EXPECT_EQ(client_->Get("/_emulator/health").status, 200);
  EXPECT_EQ(client_->Post("/_emulator/reset", "").status, 200);
  EXPECT_TRUE(emulator_->Requests().empty());
  EXPECT_EQ(emulator_->Stats().requests, 0);
  EXPECT_TRUE(emulator_->GetFaults().script.empty());
  EXPECT_EQ(client_->Get("/_emulator/nope").status, 404);
  EXPECT_EQ(client_->Send("PUT", "/_emulator/stats", "{}").status, 405);
}

TEST_F(EmulatorTest, StopsQuicklyWithOpenConnectionsAndHungRequests) {
  Faults faults;
  faults.hang_ratio = 1;
  faults.max_hang = absl::Seconds(60);
  ASSERT_TRUE(emulator_->SetFaults(faults).ok());
  HttpResult hung;
  std::thread waiter([&] {
    Client other(emulator_->base_url());
    Request r;
    r.path = "/v1/validate";
    r.timeout_ms = 20000;
    hung = other.Do(r);
  });
  // The idle keep-alive connection of client_ stays open throughout.
  EXPECT_EQ(client_->Get("/_emulator/health").status, 200);
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (emulator_->Stats().hung == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(emulator_->Stats().hung, 1);  // No ASSERT: the waiter thread must be joined.
  const absl::Time start = absl::Now();
  emulator_.reset();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(1000));
  waiter.join();
  EXPECT_EQ(hung.code, CURLE_GOT_NOTHING);
  EXPECT_LT(hung.elapsed, absl::Seconds(5));
}

TEST(EmulatorStartTest, RefusesBadOptionsAndBusyPorts) {
  EmulatorOptions bad;
  bad.threads = 0;
  EXPECT_EQ(Emulator::Start(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad = EmulatorOptions();
  bad.faults.hang_ratio = -1;
  EXPECT_EQ(Emulator::Start(bad).status().code(), absl::StatusCode::kInvalidArgument);

  absl::StatusOr<std::unique_ptr<Emulator>> first = Emulator::Start(EmulatorOptions());
  ASSERT_TRUE(first.ok());
  EmulatorOptions same;
  same.listen = absl::StrCat("127.0.0.1:", (*first)->port());
  EXPECT_EQ(Emulator::Start(same).status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace userpilot::gateway::testing
