#include "service/upstream/http_userpilot_stub.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "service/http/body_source.h"
#include "service/upstream/error_mapping.h"
#include "service/upstream/key_checker.h"
#include "tests/mocks/fake_http_client.h"
#include "tests/util/wire_details.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kKey[] = "KEY-secret-123";
const absl::Time kNow = absl::FromUnixSeconds(1700000000);

template <typename T>
T FromJson(const std::string& json) {
  T message;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &message).ok()) << json;
  return message;
}

// Captures the one result of a stub call. (std::mutex rather than absl::Notification, which
// TSan cannot see into with Debian's uninstrumented libabsl.)
template <typename T>
class Capture {
 public:
  StubCallback<T> Callback() {
    return [this](Result<T> value) {
      std::lock_guard<std::mutex> lock(mu_);
      EXPECT_FALSE(value_.has_value()) << "callback ran twice";
      value_ = std::move(value);
      cv_.notify_all();
    };
  }
  bool ready() {
    std::lock_guard<std::mutex> lock(mu_);
    return value_.has_value();
  }
  // Waits for the result; it never changes afterwards.
  const Result<T>& Get() {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::seconds(10), [&] { return value_.has_value(); })) {
      ADD_FAILURE() << "no result within 10 s";
      value_ = absl::DeadlineExceededError("test timed out");
    }
    return *value_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Result<T>> value_;
};

HttpHeaders BaseHeaders() {
  return {{"Authorization", std::string("Token ") + kKey},
          {"X-API-Version", "2020-09-22"},
          {"Accept", "application/json"}};
}

HttpHeaders JsonHeaders() {
  HttpHeaders headers = BaseHeaders();
  headers.emplace_back("Content-Type", "application/json");
  return headers;
}

using wire::Reason;

class HttpUserpilotStubTest : public ::testing::Test {
 protected:
  CallOptions Within(absl::Duration remaining) {
    CallOptions options;
    options.deadline = kNow + remaining;
    options.caller = "test";
    return options;
  }

  HttpRequest OnlyRequest() {
    EXPECT_TRUE(http_.WaitForRequests(1));
    const std::vector<HttpRequest> requests = http_.requests();
    EXPECT_EQ(requests.size(), 1u);
    return requests.empty() ? HttpRequest() : requests.front();
  }

  FakeHttpClient http_;
  HttpUserpilotStub stub_{
      http_, UpstreamOptions{"https://analytex.userpilot.io/", kKey, absl::Seconds(10)},
      [] { return kNow; }};
};

// ----- Exact requests per endpoint -----

struct EndpointCase {
  std::string name;
  std::function<void(UserpilotStub&, const CallOptions&)> call;
  std::string method;
  std::string url;
  std::string body;  // "" means none, and no Content-Type.
};

std::vector<EndpointCase> EndpointCases() {
  auto ignore = [](auto) {};
  return {
      {"IdentifyUser",
       [=](UserpilotStub& s, const CallOptions& o) {
         s.IdentifyUser(o,
                        FromJson<v1::IdentifyUserRequest>(
                            R"({"user_id":"u1","metadata":{"plan":"pro","seats":3},)"
                            R"("company":{"company_id":"c1","metadata":{"name":"Acme"}}})"),
                        ignore);
       },
       "POST", "https://analytex.userpilot.io/v1/identify",
       R"({"user_id":"u1","metadata":{"plan":"pro","seats":3},)"
       R"("company":{"company_id":"c1","name":"Acme"}})"},
      {"IdentifyCompany",
       [=](UserpilotStub& s, const CallOptions& o) {
         s.IdentifyCompany(o,
                           FromJson<v1::IdentifyCompanyRequest>(
                               R"({"company_id":"c1","metadata":{"tier":"gold"}})"),
                           ignore);
       },
       "POST", "https://analytex.userpilot.io/v1/companies/identify",
       R"({"company_id":"c1","metadata":{"tier":"gold"}})"},
      {"BulkIdentifyUsers",
       [=](UserpilotStub& s, const CallOptions& o) {
         s.BulkIdentifyUsers(
             o,
             FromJson<v1::BulkIdentifyUsersRequest>(
                 R"({"users":[{"user_id":"u1","company_id":"c1"},{"user_id":"u2"}]})"),
             ignore);
       },
       "POST", "https://analytex.userpilot.io/v1/users/bulk_identify",
       R"({"users":[{"user_id":"u1","company_id":"c1"},{"user_id":"u2"}]})"},
      {"BulkIdentifyCompanies",
       [=](UserpilotStub& s, const CallOptions& o) {
         s.BulkIdentifyCompanies(
             o,
             FromJson<v1::BulkIdentifyCompaniesRequest>(R"({"companies":[{"company_id":"c1"}]})"),
             ignore);
       },
       "POST", "https://analytex.userpilot.io/v1/companies/bulk_identify",
       R"({"companies":[{"company_id":"c1"}]})"},
      {"TrackEvent",
       [=](UserpilotStub& s, const CallOptions& o) {
         s.TrackEvent(o,
                      FromJson<v1::TrackEventRequest>(
                          R"({"user_id":"u1","event_name":"signed_up","metadata":{"plan":null}})"),
                      ignore);
       },
       "POST", "https://analytex.userpilot.io/v1/track",
       R"({"user_id":"u1","event_name":"signed_up","metadata":{"plan":null}})"},
      {"ListJobs",
       [=](UserpilotStub& s, const CallOptions& o) {
         s.ListJobs(o, v1::ListJobsRequest(), ignore);
       },
       "GET", "https://analytex.userpilot.io/v1/background_jobs", ""},
      {"GetJob",
       [=](UserpilotStub& s, const CallOptions& o) {
         s.GetJob(o, FromJson<v1::GetJobRequest>(R"({"job_id":"job-1"})"), ignore);
       },
       "GET", "https://analytex.userpilot.io/v1/background_jobs/job-1", ""},
      {"DeleteUsers",
       [=](UserpilotStub& s, const CallOptions& o) {
         s.DeleteUsers(o, FromJson<v1::DeleteUsersRequest>(R"({"user_ids":["u1","u2"]})"), ignore);
       },
       "DELETE", "https://analytex.userpilot.io/v1/users", R"({"users":["u1","u2"]})"},
      {"DeleteCompanies",
       [=](UserpilotStub& s, const CallOptions& o) {
         s.DeleteCompanies(o, FromJson<v1::DeleteCompaniesRequest>(R"({"company_ids":["c1"]})"),
                           ignore);
       },
       "DELETE", "https://analytex.userpilot.io/v1/companies", R"({"companies":["c1"]})"},
  };
}

class EndpointTest : public HttpUserpilotStubTest,
                     public ::testing::WithParamInterface<EndpointCase> {};

TEST_P(EndpointTest, SendsExactRequest) {
  const EndpointCase& c = GetParam();
  http_.EnqueueResponse(202, "{}");
  c.call(stub_, CallOptions());  // No caller deadline: the per-attempt cap applies.
  const HttpRequest request = OnlyRequest();
  EXPECT_EQ(request.method, c.method);
  EXPECT_EQ(request.url, c.url);
  EXPECT_EQ(request.body, c.body);
  EXPECT_EQ(request.headers, c.body.empty() ? BaseHeaders() : JsonHeaders());
  EXPECT_EQ(request.deadline, kNow + absl::Seconds(10));
  EXPECT_TRUE(http_.WaitForIdle());
}

INSTANTIATE_TEST_SUITE_P(Endpoints, EndpointTest, ::testing::ValuesIn(EndpointCases()),
                         [](const auto& info) { return info.param.name; });

// ----- Job ids in the path -----

TEST(EncodePathSegmentTest, Table) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"bulk:jobs:NX-ac54070e:c6f91301-54c1-4df7-a077-b34715c38875",
       "bulk%3Ajobs%3ANX-ac54070e%3Ac6f91301-54c1-4df7-a077-b34715c38875"},
      {"../x", "%2E%2E%2Fx"},
      {".", "%2E"},
      {"..", "%2E%2E"},
      {"AZaz09-_~", "AZaz09-_~"},
      {"a b/c?d#e%f&g=h+i", "a%20b%2Fc%3Fd%23e%25f%26g%3Dh%2Bi"},
      {"é", "%C3%A9"},
      {std::string("\0\x7f\xff", 3), "%00%7F%FF"},
      {"", ""},
  };
  for (const auto& [segment, encoded] : cases) {
    EXPECT_EQ(EncodePathSegment(segment), encoded) << segment;
  }
}

TEST_F(HttpUserpilotStubTest, GetJobEncodesTheIdAsOnePathSegment) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"bulk:jobs:NX-ac54070e:c6f91301-54c1-4df7-a077-b34715c38875",
       "https://analytex.userpilot.io/v1/background_jobs/"
       "bulk%3Ajobs%3ANX-ac54070e%3Ac6f91301-54c1-4df7-a077-b34715c38875"},
      {"../x", "https://analytex.userpilot.io/v1/background_jobs/%2E%2E%2Fx"},
      {"a/../../users?x=1",
       "https://analytex.userpilot.io/v1/background_jobs/"
       "a%2F%2E%2E%2F%2E%2E%2Fusers%3Fx%3D1"},
  };
  for (const auto& [id, url] : cases) {
    http_.EnqueueResponse(200, R"({"job_id":"x"})");
    v1::GetJobRequest request;
    request.set_job_id(id);
    Capture<v1::Job> result;
    stub_.GetJob(CallOptions(), request, result.Callback());
    ASSERT_TRUE(result.Get().ok());
  }
  const std::vector<HttpRequest> requests = http_.requests();
  ASSERT_EQ(requests.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) EXPECT_EQ(requests[i].url, cases[i].second);
}

TEST_F(HttpUserpilotStubTest, BaseUrlMayCarryAPathPrefixAndTrailingSlashes) {
  HttpUserpilotStub stub(http_, UpstreamOptions{"http://127.0.0.1:8080/userpilot//", kKey},
                         [] { return kNow; });
  http_.EnqueueResponse(202);
  Capture<v1::TrackEventResponse> result;
  stub.TrackEvent(CallOptions(),
                  FromJson<v1::TrackEventRequest>(R"({"user_id":"u","event_name":"e"})"),
                  result.Callback());
  ASSERT_TRUE(result.Get().ok());
  EXPECT_EQ(OnlyRequest().url, "http://127.0.0.1:8080/userpilot/v1/track");
}

// ----- Trace context -----

TEST_F(HttpUserpilotStubTest, EachAttemptSendsTheTraceIdWithASpanOfItsOwn) {
  CallOptions options = Within(absl::Seconds(5));
  options.trace.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
  options.trace.span_id = "b7ad6b7169203331";
  options.trace.parent_span_id = "00f067aa0ba902b7";
  options.trace.flags = 0x01;
  options.trace.tracestate = "congo=t61rcWkgMzE";
  const auto request = FromJson<v1::TrackEventRequest>(R"({"user_id":"u","event_name":"e"})");
  for (int i = 0; i < 2; ++i) {
    http_.EnqueueResponse(202);
    Capture<v1::TrackEventResponse> result;
    stub_.TrackEvent(options, request, result.Callback());
    ASSERT_TRUE(result.Get().ok());
  }
  const std::vector<HttpRequest> requests = http_.requests();
  ASSERT_EQ(requests.size(), 2u);
  std::vector<std::string> spans;
  for (const HttpRequest& sent : requests) {
    HttpHeaders expected = JsonHeaders();
    ASSERT_EQ(sent.headers.size(), expected.size() + 2);
    // The usual headers first, unchanged; then the trace.
    EXPECT_EQ(HttpHeaders(sent.headers.begin(), sent.headers.begin() + 3),
              HttpHeaders(expected.begin(), expected.begin() + 3));
    const auto traceparent =
        std::find_if(sent.headers.begin(), sent.headers.end(),
                     [](const auto& header) { return header.first == "traceparent"; });
    ASSERT_NE(traceparent, sent.headers.end());
    const auto parsed = ParseTraceparent(traceparent->second);
    ASSERT_TRUE(parsed.has_value()) << traceparent->second;
    EXPECT_EQ(parsed->trace_id, options.trace.trace_id);
    EXPECT_EQ(parsed->flags, 0x01);
    EXPECT_NE(parsed->parent_id, options.trace.span_id);
    EXPECT_NE(parsed->parent_id, options.trace.parent_span_id);
    spans.push_back(parsed->parent_id);
    EXPECT_NE(
        std::find(sent.headers.begin(), sent.headers.end(),
                  std::make_pair(std::string("tracestate"), std::string("congo=t61rcWkgMzE"))),
        sent.headers.end());
  }
  EXPECT_NE(spans[0], spans[1]);  // One span per attempt.
}

TEST_F(HttpUserpilotStubTest, NoTraceNoTraceHeaders) {
  http_.EnqueueResponse(200, "[]");
  Capture<v1::ListJobsResponse> result;
  stub_.ListJobs(Within(absl::Seconds(5)), v1::ListJobsRequest(), result.Callback());
  ASSERT_TRUE(result.Get().ok());
  EXPECT_EQ(OnlyRequest().headers, BaseHeaders());
}

// ----- Deadlines -----

TEST_F(HttpUserpilotStubTest, DeadlineIsTheEarlierOfCallerAndPerAttemptCap) {
  const std::vector<std::pair<CallOptions, absl::Time>> cases = {
      {CallOptions(), kNow + absl::Seconds(10)},              // no caller deadline
      {Within(absl::Seconds(60)), kNow + absl::Seconds(10)},  // caller is patient: capped
      {Within(absl::Seconds(3)), kNow + absl::Seconds(3)},    // caller is in a hurry
      {Within(absl::Seconds(10)), kNow + absl::Seconds(10)},
      {Within(-absl::Seconds(1)), kNow - absl::Seconds(1)},  // already late: the client fails it
  };
  for (const auto& [options, deadline] : cases) {
    http_.EnqueueResponse(202);
    Capture<v1::TrackEventResponse> result;
    stub_.TrackEvent(options, v1::TrackEventRequest(), result.Callback());
    result.Get();
    EXPECT_EQ(http_.requests().back().deadline, deadline);
  }
}

TEST_F(HttpUserpilotStubTest, PerAttemptTimeoutIsUnavailableWhileTheCallerStillHasTime) {
  http_.Enqueue(FakeHttpClient::TransportFailure(absl::DeadlineExceededError("timed out"), true));
  Capture<v1::TrackEventResponse> result;
  stub_.TrackEvent(Within(absl::Seconds(60)), v1::TrackEventRequest(), result.Callback());
  const CallStatus status = result.Get().error();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_EQ(Reason(status), "UPSTREAM_UNAVAILABLE");
  EXPECT_THAT(std::string(status.message()), HasSubstr("per-attempt timeout of 10s"));
  EXPECT_EQ(status.facts().upstream.transport, TransportFailure::kAttemptTimeout);
  EXPECT_NE(status.facts().upstream.reach, Reach::kNever);
}

TEST_F(HttpUserpilotStubTest, CallersOwnDeadlineIsDeadlineExceeded) {
  http_.Enqueue(FakeHttpClient::TransportFailure(absl::DeadlineExceededError("timed out"), true));
  Capture<v1::TrackEventResponse> result;
  stub_.TrackEvent(Within(absl::Seconds(3)), v1::TrackEventRequest(), result.Callback());
  EXPECT_EQ(result.Get().status().code(), absl::StatusCode::kDeadlineExceeded);
}

// ----- Successful answers -----

TEST_F(HttpUserpilotStubTest, AcknowledgementsCarryTheUpstreamRequestId) {
  const HttpHeaders headers = {{"X-Request-Id", "GEDdGIKmRewi6ZIAEYcB"}};
  for (int i = 0; i < 5; ++i) http_.EnqueueResponse(202, "", headers);
  Capture<v1::IdentifyUserResponse> identify;
  Capture<v1::IdentifyCompanyResponse> company;
  Capture<v1::TrackEventResponse> track;
  Capture<v1::DeleteUsersResponse> delete_users;
  Capture<v1::DeleteCompaniesResponse> delete_companies;
  stub_.IdentifyUser(CallOptions(), v1::IdentifyUserRequest(), identify.Callback());
  stub_.IdentifyCompany(CallOptions(), v1::IdentifyCompanyRequest(), company.Callback());
  stub_.TrackEvent(CallOptions(), v1::TrackEventRequest(), track.Callback());
  stub_.DeleteUsers(CallOptions(), v1::DeleteUsersRequest(), delete_users.Callback());
  stub_.DeleteCompanies(CallOptions(), v1::DeleteCompaniesRequest(), delete_companies.Callback());
  EXPECT_EQ(identify.Get()->upstream_request_id(), "GEDdGIKmRewi6ZIAEYcB");
  EXPECT_EQ(company.Get()->upstream_request_id(), "GEDdGIKmRewi6ZIAEYcB");
  EXPECT_EQ(track.Get()->upstream_request_id(), "GEDdGIKmRewi6ZIAEYcB");
  EXPECT_EQ(delete_users.Get()->upstream_request_id(), "GEDdGIKmRewi6ZIAEYcB");
  EXPECT_EQ(delete_companies.Get()->upstream_request_id(), "GEDdGIKmRewi6ZIAEYcB");
}

TEST_F(HttpUserpilotStubTest, EveryAnswerCarriesTheFactsOfItsAttempt) {
  const CallOptions options = Within(absl::Seconds(3));
  http_.EnqueueResponse(503, "", {{"x-request-id", "first"}});
  http_.EnqueueResponse(202, "", {{"x-request-id", "second"}});
  Capture<v1::IdentifyUserResponse> first;
  stub_.IdentifyUser(options, v1::IdentifyUserRequest(), first.Callback());
  EXPECT_EQ(first.Get().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(first.Get().facts().http_attempts, 1);
  EXPECT_EQ(first.Get().facts().upstream.http_status, 503);
  EXPECT_EQ(first.Get().facts().upstream.request_id, "first");
  EXPECT_EQ(first.Get().facts().upstream.endpoint, "POST /v1/identify");
  Capture<v1::IdentifyUserResponse> second;
  stub_.IdentifyUser(options, v1::IdentifyUserRequest(), second.Callback());
  ASSERT_TRUE(second.Get().ok());
  EXPECT_EQ(second.Get().facts().http_attempts, 1);
  EXPECT_EQ(second.Get().facts().upstream.http_status, 202);
  EXPECT_EQ(second.Get().facts().upstream.request_id, "second");
  EXPECT_EQ(second.Get().facts().reason, ErrorReason::kNone);
}

TEST_F(HttpUserpilotStubTest, AnyTwoHundredIsSuccessAndRequestIdMayBeAbsent) {
  for (const long code : {200L, 202L, 204L}) {  // NOLINT(runtime/int)
    http_.EnqueueResponse(code, "not json, ignored");
    Capture<v1::IdentifyCompanyResponse> result;
    stub_.IdentifyCompany(CallOptions(), v1::IdentifyCompanyRequest(), result.Callback());
    ASSERT_TRUE(result.Get().ok()) << code;
    EXPECT_EQ(result.Get()->upstream_request_id(), "");
  }
}

TEST_F(HttpUserpilotStubTest, BulkAnswersAreParsedAsJobs) {
  http_.EnqueueResponse(
      202,
      R"({"job_id":"bulk:jobs:NX-1","status":"queued","submitted_at":"2025-05-19T07:29:12Z"})");
  http_.EnqueueResponse(
      202, R"({"job_id":"bulk:jobs:NX-2","status":"validating","file_size":379,"total_rows":2})");
  Capture<v1::Job> users;
  Capture<v1::Job> companies;
  stub_.BulkIdentifyUsers(CallOptions(), v1::BulkIdentifyUsersRequest(), users.Callback());
  ASSERT_TRUE(users.Get().ok()) << users.Get().status();
  stub_.BulkIdentifyCompanies(CallOptions(), v1::BulkIdentifyCompaniesRequest(),
                              companies.Callback());
  ASSERT_TRUE(companies.Get().ok()) << companies.Get().status();
  EXPECT_EQ(users.Get()->job_id(), "bulk:jobs:NX-1");
  EXPECT_EQ(users.Get()->status(), v1::JOB_STATUS_QUEUED);
  EXPECT_EQ(users.Get()->submitted_at(), "2025-05-19T07:29:12Z");
  EXPECT_EQ(companies.Get()->status(), v1::JOB_STATUS_VALIDATING);
  EXPECT_EQ(companies.Get()->file_size(), 379);
  EXPECT_EQ(companies.Get()->total_rows(), 2);
}

TEST_F(HttpUserpilotStubTest, GetJobAndListJobsParseLeniently) {
  http_.EnqueueResponse(200, R"({"job_id":"j","status":"completed","completed_rows":"10"})");
  http_.EnqueueResponse(200, R"([{"job_id":"a","status":"failed"},{"job_id":"b"}])");
  Capture<v1::Job> job;
  Capture<v1::ListJobsResponse> list;
  stub_.GetJob(CallOptions(), FromJson<v1::GetJobRequest>(R"({"job_id":"j"})"), job.Callback());
  ASSERT_TRUE(job.Get().ok());
  stub_.ListJobs(CallOptions(), v1::ListJobsRequest(), list.Callback());
  ASSERT_TRUE(list.Get().ok());
  EXPECT_EQ(job.Get()->status(), v1::JOB_STATUS_COMPLETED);
  EXPECT_EQ(job.Get()->completed_rows(), 10);
  ASSERT_EQ(list.Get()->jobs_size(), 2);
  EXPECT_EQ(list.Get()->jobs(0).status(), v1::JOB_STATUS_FAILED);
  EXPECT_EQ(list.Get()->jobs(1).job_id(), "b");
}

// ----- Errors, end to end -----

TEST_F(HttpUserpilotStubTest, RateLimitCarriesRetryInfoFromRetryAfterDate) {
  http_.EnqueueResponse(
      429, "",
      {{"Retry-After", absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", kNow + absl::Seconds(30),
                                        absl::UTCTimeZone())},
       {"x-request-id", "r-429"}});
  Capture<v1::TrackEventResponse> result;
  stub_.TrackEvent(CallOptions(), v1::TrackEventRequest(), result.Callback());
  const CallStatus status = result.Get().error();
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Reason(status), "UPSTREAM_RATE_LIMITED");
  EXPECT_EQ(wire::RetryDelay(status), absl::Seconds(30));
  const auto info = wire::Info(status);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->metadata().at("upstream_request_id"), "r-429");
  EXPECT_EQ(info->metadata().at("endpoint"), "POST /v1/track");
  EXPECT_EQ(info->metadata().at("http_status"), "429");
}

TEST_F(HttpUserpilotStubTest, RejectedKeyIsInternalAndNeverShowsTheKey) {
  http_.EnqueueResponse(
      401, std::string(R"({"errors":[{"message":"Invalid API key )") + kKey + R"("}]})");
  Capture<v1::IdentifyUserResponse> result;
  stub_.IdentifyUser(CallOptions(), v1::IdentifyUserRequest(), result.Callback());
  const CallStatus status = result.Get().error();
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(Reason(status), "UPSTREAM_CREDENTIALS_REJECTED");
  EXPECT_THAT(status.ToString(), Not(HasSubstr(kKey)));
}

TEST_F(HttpUserpilotStubTest, KeyEchoedInAnyErrorIsRedacted) {
  http_.EnqueueResponse(400, std::string(R"({"errors":[{"message":"bad header Token )") + kKey +
                                 R"(","error_code":")" + kKey + R"("}]})");
  Capture<v1::TrackEventResponse> result;
  stub_.TrackEvent(CallOptions(), v1::TrackEventRequest(), result.Callback());
  const CallStatus status = result.Get().error();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("bad header Token [redacted]"));
  EXPECT_THAT(status.ToString(), Not(HasSubstr(kKey)));
  const auto info = wire::Info(status);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->metadata().at("upstream_error_code"), "[redacted]");
}

// The key's other forms, as Userpilot might echo them.
std::vector<std::string> KeyForms() {
  const std::string key = kKey;
  // (Other alignments and escapes: logging/redactor_test.cc.)
  return {key, absl::Base64Escape(key), absl::WebSafeBase64Escape(key)};
}

TEST_F(HttpUserpilotStubTest, EveryFormOfTheKeyIsScrubbedFromErrorsBeforeTheyAreCut) {
  for (const std::string& form : KeyForms()) {
    // The echo straddles the 300-byte cut of quoted text: scrubbing after the cut would leave
    // part of it behind.
    http_.EnqueueResponse(
        400, absl::StrCat(R"({"errors":[{"message":")", std::string(290, 'm'), form, R"("}]})"),
        {{"x-request-id", absl::StrCat("r-", form)}});
    Capture<v1::TrackEventResponse> result;
    stub_.TrackEvent(CallOptions(), v1::TrackEventRequest(), result.Callback());
    const CallStatus status = result.Get().error();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    const std::string everything =
        absl::StrCat(status.message(), " ", status.facts().upstream.message, " ",
                     status.facts().upstream.request_id);
    for (size_t i = 0; i + 8 <= form.size(); ++i) {
      EXPECT_THAT(everything, Not(HasSubstr(form.substr(i, 8)))) << form;
    }
    EXPECT_EQ(status.facts().upstream.request_id, "r-[redacted]") << form;
  }
}

TEST_F(HttpUserpilotStubTest, SuccessfulJobAnswersAreScrubbedToo) {
  for (const std::string& form : KeyForms()) {
    http_.EnqueueResponse(200, absl::StrCat(R"({"job_id":"j","status":"queued","filename":")", form,
                                            R"(","links":{"k":")", form, R"("}})"));
    Capture<v1::Job> job;
    stub_.GetJob(CallOptions(), FromJson<v1::GetJobRequest>(R"({"job_id":"j"})"), job.Callback());
    ASSERT_TRUE(job.Get().ok()) << job.Get().status();
    EXPECT_EQ(job.Get()->filename(), "[redacted]") << form;
    EXPECT_EQ(job.Get()->links(), R"({"k":"[redacted]"})") << form;
  }
  http_.EnqueueResponse(200, absl::StrCat(R"([{"job_id":")", kKey, R"("}])"));
  Capture<v1::ListJobsResponse> list;
  stub_.ListJobs(CallOptions(), v1::ListJobsRequest(), list.Callback());
  ASSERT_TRUE(list.Get().ok());
  EXPECT_EQ(list.Get()->jobs(0).job_id(), "[redacted]");
}

TEST_F(HttpUserpilotStubTest, ABodyThatIsNotJsonIsNeverQuoted) {
  for (long code : {200L, 400L, 503L}) {  // NOLINT(runtime/int)
    http_.EnqueueResponse(code, absl::StrCat("<html>SNIPPET ", kKey, "</html>"));
    Capture<v1::Job> job;
    stub_.GetJob(CallOptions(), FromJson<v1::GetJobRequest>(R"({"job_id":"j"})"), job.Callback());
    ASSERT_FALSE(job.Get().ok());
    EXPECT_THAT(job.Get().status().ToString(), Not(HasSubstr("SNIPPET"))) << code;
    EXPECT_THAT(job.Get().error().facts().upstream.message, Not(HasSubstr("SNIPPET"))) << code;
  }
}

TEST_F(HttpUserpilotStubTest, AnEmptyObjectIsNotAJob) {
  http_.EnqueueResponse(200, "{}");
  Capture<v1::Job> job;
  stub_.GetJob(CallOptions(), FromJson<v1::GetJobRequest>(R"({"job_id":"j"})"), job.Callback());
  EXPECT_EQ(job.Get().status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(Reason(job.Get().error()), "UPSTREAM_BAD_RESPONSE");
  EXPECT_THAT(std::string(job.Get().status().message()),
              HasSubstr("neither a job_id nor a status"));
  // A read has changed nothing upstream: no warning that it took effect.
  EXPECT_THAT(std::string(job.Get().status().message()), Not(HasSubstr("taken effect")));
}

TEST_F(HttpUserpilotStubTest, StatusClassesEndToEnd) {
  struct Case {
    long http_status;  // NOLINT(runtime/int)
    std::string body;
    absl::StatusCode code;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {404, R"({"errors":[{"message":"job not found"}]})", absl::StatusCode::kNotFound,
       "UPSTREAM_NOT_FOUND"},
      {409, R"({"errors":[{"message":"a bulk job is running"}]})",
       absl::StatusCode::kFailedPrecondition, "JOB_IN_PROGRESS"},
      {500, "", absl::StatusCode::kUnavailable, "UPSTREAM_UNAVAILABLE"},
      {503, "<html>down</html>", absl::StatusCode::kUnavailable, "UPSTREAM_UNAVAILABLE"},
      {403, "", absl::StatusCode::kInternal, "UPSTREAM_CREDENTIALS_REJECTED"},
      // 2xx, but the job object every bulk answer must carry is missing.
      {202, "<html>ok</html>", absl::StatusCode::kInternal, "UPSTREAM_BAD_RESPONSE"},
      {202, "", absl::StatusCode::kInternal, "UPSTREAM_BAD_RESPONSE"},
  };
  for (const Case& c : cases) {
    http_.EnqueueResponse(c.http_status, c.body);
    Capture<v1::Job> result;
    stub_.BulkIdentifyUsers(CallOptions(), v1::BulkIdentifyUsersRequest(), result.Callback());
    const CallStatus status = result.Get().error();
    EXPECT_EQ(status.code(), c.code) << c.http_status << " " << status;
    EXPECT_EQ(Reason(status), c.reason) << c.http_status;
  }
}

TEST_F(HttpUserpilotStubTest, UnreadableJobListIsBadResponse) {
  http_.EnqueueResponse(200, R"({"job_id":"not a list"})");
  Capture<v1::ListJobsResponse> result;
  stub_.ListJobs(CallOptions(), v1::ListJobsRequest(), result.Callback());
  EXPECT_EQ(result.Get().status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(Reason(result.Get().error()), "UPSTREAM_BAD_RESPONSE");
}

TEST_F(HttpUserpilotStubTest, UnsentRequestIsMarkedSafeToRetry) {
  http_.Enqueue(FakeHttpClient::TransportFailure(absl::UnavailableError("connection refused"),
                                                 /*request_may_have_been_sent=*/false));
  Capture<v1::TrackEventResponse> result;
  stub_.TrackEvent(CallOptions(), v1::TrackEventRequest(), result.Callback());
  EXPECT_EQ(result.Get().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(result.Get().facts().upstream.reach, Reach::kNever);
  EXPECT_EQ(wire::Metadata(result.Get().error())["request_may_have_been_sent"], "false");
}

// ----- The key check (not an RPC: KeyCheckEndpoint) -----

// The one answer of a CheckKey call.
CallStatus CheckKey(HttpUserpilotStub& stub, const CallOptions& options) {
  auto answer = std::make_shared<std::promise<CallStatus>>();
  std::future<CallStatus> future = answer->get_future();
  stub.CheckKey(options, [answer](CallStatus status) { answer->set_value(std::move(status)); });
  if (future.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "no key check answer within 10 s";
    return absl::DeadlineExceededError("test timed out");
  }
  return future.get();
}

TEST_F(HttpUserpilotStubTest, KeyCheckIsGetValidateWithTheHeadersOfEveryCall) {
  http_.EnqueueResponse(200, "not JSON: the body is not read", {{"x-request-id", "req-9"}});
  const CallStatus answer = CheckKey(stub_, Within(absl::Seconds(30)));
  EXPECT_TRUE(answer.ok()) << answer;
  EXPECT_EQ(KeyVerdictOf(answer), KeyVerdict::kAccepted);
  EXPECT_EQ(answer.facts().upstream.http_status, 200);
  EXPECT_EQ(answer.facts().upstream.request_id, "req-9");
  EXPECT_EQ(answer.facts().http_attempts, 1);
  const HttpRequest request = OnlyRequest();
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.url, "https://analytex.userpilot.io/v1/validate");
  EXPECT_EQ(request.headers, BaseHeaders());  // no body, so no Content-Type
  EXPECT_EQ(request.body, "");
  EXPECT_EQ(request.deadline, kNow + absl::Seconds(10));  // the per-attempt cap
}

TEST_F(HttpUserpilotStubTest, KeyCheckRejectionIsCredentialsRejectedWithoutTheKey) {
  for (const long status : {401, 403}) {  // NOLINT(runtime/int)
    http_.EnqueueResponse(
        status, std::string(R"({"errors":[{"message":"Invalid API key )") + kKey + R"("}]})");
    const CallStatus answer = CheckKey(stub_, Within(absl::Seconds(30)));
    EXPECT_EQ(Reason(answer), "UPSTREAM_CREDENTIALS_REJECTED") << status;
    EXPECT_EQ(KeyVerdictOf(answer), KeyVerdict::kRejected) << status;
    EXPECT_EQ(answer.facts().upstream.http_status, status);
    EXPECT_THAT(answer.ToString(), Not(HasSubstr(kKey)));
  }
}

TEST_F(HttpUserpilotStubTest, KeyCheckOtherAnswersAreNoVerdict) {
  http_.EnqueueResponse(503);
  http_.EnqueueResponse(429, "", {{"Retry-After", "30"}});
  http_.EnqueueResponse(404);
  http_.Enqueue(FakeHttpClient::TransportFailure(absl::DeadlineExceededError("timed out"), true));
  for (const int expected : {503, 429, 404, 0}) {
    const CallStatus answer = CheckKey(stub_, Within(absl::Seconds(30)));
    EXPECT_FALSE(answer.ok()) << expected;
    EXPECT_EQ(answer.facts().upstream.http_status, expected);
    EXPECT_EQ(KeyVerdictOf(answer), KeyVerdict::kInconclusive) << answer;
    if (expected == 0) {  // the per-attempt cap ran out, not the check's own deadline
      EXPECT_EQ(answer.code(), absl::StatusCode::kUnavailable) << answer;
      EXPECT_EQ(answer.facts().upstream.transport, TransportFailure::kAttemptTimeout);
    }
  }
}

// ----- Threading and lifetimes -----

TEST_F(HttpUserpilotStubTest, CallbackNeverRunsInsideTheCall) {
  Capture<v1::TrackEventResponse> result;
  stub_.TrackEvent(CallOptions(), v1::TrackEventRequest(), result.Callback());
  EXPECT_FALSE(result.ready());
  EXPECT_EQ(http_.pending(), 1u);
  ASSERT_TRUE(http_.CompleteNext(FakeHttpClient::Response(202, "", {{"x-request-id", "r"}})));
  ASSERT_TRUE(result.ready());
  EXPECT_EQ(result.Get()->upstream_request_id(), "r");
}

TEST_F(HttpUserpilotStubTest, CallbackOutlivesTheStub) {
  auto stub = std::make_unique<HttpUserpilotStub>(
      http_, UpstreamOptions{"https://u.test", kKey, absl::Seconds(10)}, [] { return kNow; });
  Capture<v1::TrackEventResponse> result;
  stub->TrackEvent(CallOptions(), v1::TrackEventRequest(), result.Callback());
  stub.reset();
  ASSERT_TRUE(http_.CompleteNext(FakeHttpClient::Response(401, R"({"message":"x"})")));
  EXPECT_EQ(Reason(result.Get().error()), "UPSTREAM_CREDENTIALS_REJECTED");
}

TEST_F(HttpUserpilotStubTest, ConcurrentCallsEachCompleteOnce) {
  http_.SetHandler([](const HttpRequest& request) {
    return FakeHttpClient::Response(202, "", {{"x-request-id", request.body}});
  });
  constexpr int kThreads = 4;
  constexpr int kCallsPerThread = 50;
  std::atomic<int> completed{0};
  std::atomic<int> mismatched{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCallsPerThread; ++i) {
        v1::TrackEventRequest request;
        request.set_user_id("u" + std::to_string(t * 1000 + i));
        request.set_event_name("e");
        const std::string body = R"({"user_id":")" + request.user_id() + R"(","event_name":"e"})";
        stub_.TrackEvent(CallOptions(), request,
                         [&, body](Result<v1::TrackEventResponse> response) {
                           if (!response.ok() || response->upstream_request_id() != body) {
                             ++mismatched;
                           }
                           ++completed;
                         });
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_TRUE(http_.WaitForRequests(kThreads * kCallsPerThread));
  ASSERT_TRUE(http_.WaitForIdle());
  EXPECT_EQ(completed.load(), kThreads * kCallsPerThread);
  EXPECT_EQ(mismatched.load(), 0);
}

// ----- ImportFile: multipart uploads streamed from a body source -----

// The file part of a multipart body, and the boundary its Content-Type names.
struct UploadedPart {
  std::string disposition;
  std::string content_type;
  std::string data;
};

UploadedPart ParseSinglePart(const HttpRequest& request) {
  std::string content_type;
  for (const auto& [name, value] : request.headers) {
    if (name == "Content-Type") content_type = value;
  }
  const std::string prefix = "multipart/form-data; boundary=";
  EXPECT_EQ(content_type.rfind(prefix, 0), 0u) << content_type;
  const std::string boundary = content_type.substr(prefix.size());
  EXPECT_NE(request.body_source, nullptr);
  if (request.body_source == nullptr) return {};
  const std::string body = *ReadWholeBody(*request.body_source);
  const std::string head = "--" + boundary + "\r\n";
  const std::string tail = "\r\n--" + boundary + "--\r\n";
  EXPECT_EQ(body.rfind(head, 0), 0u);
  EXPECT_EQ(body.substr(body.size() - tail.size()), tail);
  const size_t headers_end = body.find("\r\n\r\n");
  UploadedPart part;
  const std::string headers = body.substr(head.size(), headers_end - head.size());
  const size_t line = headers.find("\r\n");
  part.disposition = headers.substr(0, line);
  part.content_type = headers.substr(line + 2);
  part.data = body.substr(headers_end + 4, body.size() - tail.size() - headers_end - 4);
  return part;
}

TEST_F(HttpUserpilotStubTest, ImportFileUploadsMultipartToEachTarget) {
  struct Case {
    v1::ImportTarget target;
    v1::ImportFormat format;
    std::string url;
    std::string part_type;
    int status;
  };
  const std::vector<Case> cases = {
      {v1::IMPORT_TARGET_HISTORICAL_IMPORT, v1::IMPORT_FORMAT_CSV,
       "https://analytex.userpilot.io/v1/imports", "Content-Type: text/csv", 200},
      {v1::IMPORT_TARGET_HISTORICAL_IMPORT, v1::IMPORT_FORMAT_NDJSON,
       "https://analytex.userpilot.io/v1/imports", "Content-Type: application/x-ndjson", 200},
      {v1::IMPORT_TARGET_USERS_BULK, v1::IMPORT_FORMAT_NDJSON,
       "https://analytex.userpilot.io/v1/users/bulk_identify", "Content-Type: application/x-ndjson",
       202},
      {v1::IMPORT_TARGET_COMPANIES_BULK, v1::IMPORT_FORMAT_NDJSON,
       "https://analytex.userpilot.io/v1/companies/bulk_identify",
       "Content-Type: application/x-ndjson", 202},
  };
  const std::string data("{\"user_id\":\"u1\"}\n\0\xff binary-safe\n", 33);
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].url);
    http_.EnqueueResponse(cases[i].status,
                          R"({"job_id":"import:jobs:1","status":"queued","file_size":"33",)"
                          R"("total_rows":"2"})");
    ImportFileRequest request;
    request.target = cases[i].target;
    request.format = cases[i].format;
    request.filename = "data \"1\".txt";
    request.file = std::make_shared<StringBodySource>(data);
    Capture<v1::Job> result;
    stub_.ImportFile(Within(absl::Minutes(10)), request, result.Callback());
    ASSERT_TRUE(result.Get().ok()) << result.Get().status();
    EXPECT_EQ(result.Get()->job_id(), "import:jobs:1");
    EXPECT_EQ(result.Get()->file_size(), 33);
    ASSERT_TRUE(http_.WaitForRequests(i + 1));
    const HttpRequest sent = http_.requests()[i];
    EXPECT_EQ(sent.method, "POST");
    EXPECT_EQ(sent.url, cases[i].url);
    EXPECT_TRUE(sent.body.empty());
    // Standard headers, then the multipart Content-Type.
    ASSERT_EQ(sent.headers.size(), 4u);
    EXPECT_EQ(HttpHeaders(sent.headers.begin(), sent.headers.begin() + 3), BaseHeaders());
    const UploadedPart part = ParseSinglePart(sent);
    EXPECT_EQ(part.disposition,
              "Content-Disposition: form-data; name=\"file\"; filename=\"data %221%22.txt\"");
    EXPECT_EQ(part.content_type, cases[i].part_type);
    EXPECT_TRUE(part.data == data);
    // Uploads get their own per-attempt cap (5 min by default), still within the caller's.
    EXPECT_EQ(sent.deadline, kNow + absl::Minutes(5));
  }
}

TEST_F(HttpUserpilotStubTest, ImportFileConflictIsJobInProgress) {
  http_.EnqueueResponse(409, R"({"errors":[{"error":"conflict","error_code":"job_in_progress",)"
                             R"("message":"Only one import job can run at a time"}]})");
  ImportFileRequest request;
  request.target = v1::IMPORT_TARGET_HISTORICAL_IMPORT;
  request.format = v1::IMPORT_FORMAT_CSV;
  request.filename = "a.csv";
  request.file = std::make_shared<StringBodySource>("a\n1\n");
  Capture<v1::Job> result;
  stub_.ImportFile(Within(absl::Seconds(30)), request, result.Callback());
  EXPECT_EQ(result.Get().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Reason(result.Get().error()), "JOB_IN_PROGRESS");
}

TEST_F(HttpUserpilotStubTest, ImportFileWithoutTargetOrFileIsInvalidAndNeverSent) {
  ImportFileRequest request;  // Nothing set.
  Capture<v1::Job> result;
  stub_.ImportFile(Within(absl::Seconds(30)), request, result.Callback());
  // The stub hands the client a request no client sends (a real one refuses it at once as
  // malformed), only so the answer arrives on the client's thread.
  ASSERT_TRUE(http_.WaitForRequests(1));
  EXPECT_TRUE(http_.requests()[0].url.empty());
  EXPECT_FALSE(result.ready());
  ASSERT_TRUE(http_.CompleteNext(FakeHttpClient::TransportFailure(
      absl::InvalidArgumentError("malformed"), /*request_may_have_been_sent=*/false)));
  EXPECT_EQ(result.Get().status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace userpilot::gateway
