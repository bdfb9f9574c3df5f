// Tests of the emulator's hostile answers (headers, status lines, bodies, deep nests, echoes of
// the key, per-rule latency) and of its window accounting, driven over loopback with libcurl.
#include <curl/curl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tests/emulator/answer_shapes.h"
#include "tests/emulator/emulator.h"
#include "tests/emulator/emulator_test_util.h"
#include "tests/emulator/json.h"

namespace userpilot::gateway::testing {
namespace {

using ::google::protobuf::Value;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

int64_t Count(const std::string& text, char c) { return std::count(text.begin(), text.end(), c); }

// Creates a bulk job and returns its id.
std::string CreateJob(Client& client) {
  const HttpResult r = client.Post("/v1/users/bulk_identify", Users(2));
  EXPECT_EQ(r.status, 202) << r.body;
  return Str(r.Json(), "job_id");
}

TEST_F(EmulatorTest, ScriptedHeadersArriveVerbatim) {
  HttpResult r = client_->Send(
      "POST", "/_emulator/faults/script",
      R"({"action":"status","status":429,"retry_after":"Wed, 21 Oct 2015 07:28:00 GMT",
          "headers":{"X-RateLimit-Reset":"99999999999","X-Extra":"1"}})");
  ASSERT_EQ(r.status, 200) << r.body;
  r = client_->Post("/v1/identify", R"({"user_id":"u"})");
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.Header("retry-after"), "Wed, 21 Oct 2015 07:28:00 GMT");
  EXPECT_EQ(r.Header("x-ratelimit-reset"), "99999999999");
  EXPECT_EQ(r.Header("x-extra"), "1");
  EXPECT_EQ(Str(FirstError(r), "error_code"), "rate_limit_exceeded");
  EXPECT_EQ(emulator_->Stats().injected_errors, 1);
  EXPECT_EQ(emulator_->Stats().rate_limited, 0);  // Injected, not the limiter's.
}

TEST_F(EmulatorTest, ScriptedBodyReplacesTheAnswerWithAnyText) {
  const std::string job_id = CreateJob(*client_);
  ScriptedFault empty;
  empty.status = 200;
  empty.body = "{}";
  empty.path_prefix = "/v1/background_jobs/";
  ASSERT_TRUE(emulator_->AddScriptedFault(empty).ok());
  ScriptedFault html;
  html.status = 202;
  html.body = "<html>busy {{echo}}</html>";
  html.content_type = "text/html";
  html.echo_key = {KeyForm::kBase64};
  html.path_prefix = "/v1/track";
  ASSERT_TRUE(emulator_->AddScriptedFault(html).ok());

  HttpResult r = client_->Get(absl::StrCat("/v1/background_jobs/", job_id));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{}");
  EXPECT_EQ(r.Header("content-type"), "application/json; charset=utf-8");
  r = client_->Post("/v1/track", R"({"user_id":"u","event_name":"e"})");
  EXPECT_EQ(r.status, 202);
  EXPECT_EQ(r.body, absl::StrCat("<html>busy ", absl::Base64Escape(kKey), "</html>"));
  EXPECT_EQ(r.Header("content-type"), "text/html");
  // Both rules are spent: the next job read is the real job.
  EXPECT_EQ(Str(client_->Get(absl::StrCat("/v1/background_jobs/", job_id)).Json(), "job_id"),
            job_id);
}

TEST_F(EmulatorTest, ScriptedStatusLineIsWrittenAsGiven) {
  ScriptedFault garbage;
  garbage.status = 200;
  garbage.status_line = "HTTP/1.1 2OO Okay";
  ASSERT_TRUE(emulator_->AddScriptedFault(garbage).ok());
  ScriptedFault nonsense;
  nonsense.status = 200;
  nonsense.status_line = "garbage";
  ASSERT_TRUE(emulator_->AddScriptedFault(nonsense).ok());
  Request get;
  get.path = "/v1/validate";
  get.fresh_connection = true;  // A broken answer must not poison the next request.
  const HttpResult weird = client_->Do(get);
  EXPECT_NE(weird.code, CURLE_OK);
  EXPECT_EQ(weird.status, 0);
  const HttpResult headless = client_->Do(get);
  EXPECT_NE(headless.code, CURLE_OK);
  EXPECT_EQ(client_->Get("/v1/validate").status, 200);
  const std::vector<RecordedRequest> requests = emulator_->Requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].outcome, Outcome::kInjectedError);
}

TEST_F(EmulatorTest, ScriptedNestsMakeDeepJobAndErrorBodies) {
  const std::string job_id = CreateJob(*client_);
  ASSERT_EQ(client_
                ->Send("POST", "/_emulator/faults/script",
                       R"({"action":"status","status":200,"nest_depth":12000,
                              "path_prefix":"/v1/background_jobs/"})")
                .status,
            200);
  HttpResult r = client_->Get(absl::StrCat("/v1/background_jobs/", job_id));
  EXPECT_EQ(r.status, 200);
  EXPECT_THAT(r.body, StartsWith(absl::StrCat(R"({"job_id":")", job_id,
                                              R"(","status":"processing","nested":[[[)")));
  EXPECT_EQ(Count(r.body, '['), 12000);
  EXPECT_EQ(r.body.size(), DeepJobBody(job_id, NestedArrays(12000, 0)).size());

  ASSERT_EQ(client_
                ->Send("POST", "/_emulator/faults/script",
                       R"({"action":"status","status":400,"nest_depth":1000,
                              "nest_bytes":200000,"path_prefix":"/v1/identify"})")
                .status,
            200);
  r = client_->Post("/v1/identify", R"({"user_id":"u"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, StartsWith(R"({"errors":[{"error":"bad_request")"));
  EXPECT_GE(r.body.size(), 200000u);
  EXPECT_EQ(Count(r.body, '['), Count(r.body, ']'));
}

TEST_F(EmulatorTest, InjectedErrorsEchoTheKeyInTheFormsAskedFor) {
  ASSERT_EQ(client_
                ->Send("POST", "/_emulator/faults/script",
                       R"({"action":"status","status":400,"echo_key":["base64url"]})")
                .status,
            200);
  const HttpResult r = client_->Post("/v1/identify", R"({"user_id":"u"})");
  EXPECT_EQ(r.status, 400);
  const Value error = FirstError(r);
  EXPECT_THAT(Str(error, "message"), HasSubstr(absl::WebSafeBase64Escape(kKey)));
  EXPECT_THAT(Str(error, "details"), HasSubstr(absl::WebSafeBase64Escape(kKey)));
  EXPECT_THAT(r.body, Not(HasSubstr(kKey)));
}

TEST_F(EmulatorTest, PassRulesLetTheApiAnswerAndEchoTheKeyInIt) {
  ScriptedFault echo;
  echo.action = FaultAction::kPass;
  echo.echo_key = AllKeyForms();
  echo.path_prefix = "/v1/users/bulk_identify";
  echo.headers = {{"X-Echo", "yes"}};
  ASSERT_TRUE(emulator_->AddScriptedFault(echo).ok());
  HttpResult r = client_->Post("/v1/users/bulk_identify", Users(3));
  ASSERT_EQ(r.status, 202) << r.body;  // The job is really created.
  EXPECT_EQ(r.Header("x-echo"), "yes");
  const Value job = r.Json();
  EXPECT_EQ(FindField(job, "total_rows")->number_value(), 3);
  for (KeyForm form : AllKeyForms()) {
    EXPECT_THAT(Str(job, "filename"), HasSubstr(EncodeKey(kKey, form))) << KeyFormName(form);
    EXPECT_THAT(Str(job, "links"), HasSubstr(EncodeKey(kKey, form))) << KeyFormName(form);
  }
  EXPECT_THAT(Str(job, "filename"), HasSubstr("users.json"));
  EXPECT_EQ(emulator_->Jobs().size(), 1u);
  EXPECT_EQ(emulator_->Requests().back().outcome, Outcome::kAnswered);

  // An error the API itself gives carries the echo in its message.
  echo.path_prefix = "/v1/track";
  echo.echo_key = {KeyForm::kPercent};
  echo.headers.clear();
  ASSERT_TRUE(emulator_->AddScriptedFault(echo).ok());
  r = client_->Post("/v1/track", R"({"user_id":""})");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(Str(FirstError(r), "message"), StartsWith("emulator-key "));
}

TEST_F(EmulatorTest, ScriptedLatencyDelaysOnlyItsOwnAnswer) {
  ScriptedFault slow;
  slow.action = FaultAction::kPass;
  slow.latency = absl::Milliseconds(150);
  ASSERT_TRUE(emulator_->AddScriptedFault(slow).ok());
  const HttpResult r = client_->Get("/v1/validate");
  EXPECT_EQ(r.status, 200);
  EXPECT_GE(r.elapsed, absl::Milliseconds(145));
  EXPECT_TRUE(emulator_->GetFaults().script.empty());
}

TEST_F(EmulatorTest, ActiveForRulesApplyToEveryRequestUntilTheirTimeIsUp) {
  // A burst far longer than the test: every request meets it, whatever the count says.
  ASSERT_EQ(client_
                ->Send("POST", "/_emulator/faults/script",
                       R"({"action":"status","status":429,"retry_after":1,
                              "path_prefix":"/v1/identify","active_ms":60000,"count":1})")
                .status,
            200);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(client_->Post("/v1/identify", R"({"user_id":"u"})").status, 429) << i;
  }
  EXPECT_EQ(client_->Post("/v1/track", R"({"user_id":"u","event_name":"e"})").status, 202);
  ASSERT_EQ(emulator_->GetFaults().script.size(), 1u);
  EXPECT_EQ(emulator_->GetFaults().script[0].active_for, absl::Seconds(60));
  emulator_->ClearFaults();

  // A burst that is over: the rule is dropped when the next request comes.
  ScriptedFault brief;
  brief.status = 503;
  brief.active_for = absl::Milliseconds(1);
  ASSERT_TRUE(emulator_->AddScriptedFault(brief).ok());
  EXPECT_EQ(client_->Get("/v1/validate").status, 503);  // Starts the burst.
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(client_->Get("/v1/validate").status, 200);
  EXPECT_TRUE(emulator_->GetFaults().script.empty());
}

TEST_F(EmulatorTest, AdminScriptRoundTripsEveryShapeAndRefusesBadOnes) {
  HttpResult r = client_->Send(
      "PUT", "/_emulator/faults",
      R"({"script":[{"action":"status","status":200,"body":"<p>","content_type":"text/html",
          "status_line":"HTTP/1.1 999 Odd","headers":{"B":"2","A":"1"},"echo_key":"all",
          "latency_ms":20,"count":2},
          {"action":"status","status":400,"nest_depth":10,"nest_bytes":100},
          {"action":"pass","echo_key":["raw","json"]}]})");
  ASSERT_EQ(r.status, 200) << r.body;
  const Faults faults = emulator_->GetFaults();
  ASSERT_EQ(faults.script.size(), 3u);
  const ScriptedFault& first = faults.script[0];
  EXPECT_EQ(first.body, "<p>");
  EXPECT_EQ(first.content_type, "text/html");
  EXPECT_EQ(first.status_line, "HTTP/1.1 999 Odd");
  EXPECT_EQ(first.headers, (Headers{{"A", "1"}, {"B", "2"}}));
  EXPECT_EQ(first.echo_key, AllKeyForms());
  EXPECT_EQ(first.latency, absl::Milliseconds(20));
  EXPECT_EQ(faults.script[1].nest_depth, 10);
  EXPECT_EQ(faults.script[1].nest_bytes, 100);
  EXPECT_EQ(faults.script[2].action, FaultAction::kPass);
  EXPECT_EQ(faults.script[2].echo_key, (std::vector<KeyForm>{KeyForm::kRaw, KeyForm::kJson}));

  // What GET answers can be PUT back unchanged.
  const std::string json = client_->Get("/_emulator/faults").body;
  ASSERT_EQ(client_->Send("DELETE", "/_emulator/faults", "").status, 200);
  ASSERT_EQ(client_->Send("PUT", "/_emulator/faults", json).status, 200);
  EXPECT_EQ(client_->Get("/_emulator/faults").body, json);

  for (const char* bad : {
           R"({"action":"status","status_line":"HTTP/1.1 200 OK\r\nX: y"})",
           R"({"action":"status","headers":{"X":"a\nb"}})",
           R"({"action":"status","headers":{"X":1}})",
           R"({"action":"status","echo_key":["hex"]})",
           R"({"action":"status","body":"{}","nest_depth":3})",
           R"({"action":"status","nest_depth":-1})",
           R"({"action":"status","nest_bytes":1e12})",
           R"({"action":"pass","latency_ms":-5})",
           R"({"action":"status","active_ms":-1})",
           R"({"action":"teleport"})",
       }) {
    EXPECT_EQ(client_->Send("POST", "/_emulator/faults/script", bad).status, 400) << bad;
  }
}

TEST_F(EmulatorTest, WindowsCountEachBudgetGroupAndItsRefusals) {
  RateLimits limits;
  limits.identify_limit = 2;
  limits.window = absl::Seconds(10);
  emulator_->SetLimits(limits);
  for (int i = 0; i < 3; ++i) client_->Post("/v1/identify", R"({"user_id":"u"})");  // 3rd: 429.
  clock_.Advance(absl::Seconds(1));
  client_->Post("/v1/companies/identify", R"({"company_id":"c"})");  // 429 too.
  client_->Post("/v1/track", R"({"user_id":"u","event_name":"e"})");
  client_->Get("/v1/background_jobs");
  client_->Post("/v1/users/bulk_identify", Users(1));  // No budget group.

  HttpResult r = client_->Get("/_emulator/windows?window_ms=500");
  ASSERT_EQ(r.status, 200) << r.body;
  Value json = r.Json();
  EXPECT_EQ(FindField(json, "window_ms")->number_value(), 500);
  EXPECT_EQ(FindField(json, "evicted")->number_value(), 0);
  const Value* groups = FindField(json, "groups");
  const Value* identify = FindField(*groups, "identify");
  EXPECT_EQ(FindField(*identify, "requests")->number_value(), 4);
  EXPECT_EQ(FindField(*identify, "max_in_window")->number_value(), 3);
  EXPECT_EQ(FindField(*identify, "max_accepted_in_window")->number_value(), 2);
  EXPECT_EQ(FindField(*identify, "rate_limited")->number_value(), 2);
  EXPECT_EQ(FindField(*FindField(*groups, "track"), "requests")->number_value(), 1);
  EXPECT_EQ(FindField(*FindField(*groups, "job_reads"), "requests")->number_value(), 1);
  EXPECT_EQ(FindField(*FindField(*groups, "delete"), "requests")->number_value(), 0);

  // Without window_ms: the limits' window (10 s) holds all four identify requests.
  json = client_->Get("/_emulator/windows").Json();
  EXPECT_EQ(FindField(json, "window_ms")->number_value(), 10000);
  EXPECT_EQ(FindField(*FindField(*FindField(json, "groups"), "identify"), "max_in_window")
                ->number_value(),
            4);
  EXPECT_EQ(client_->Get("/_emulator/windows?window_ms=0").status, 400);
  EXPECT_EQ(client_->Get("/_emulator/windows?window_ms=x").status, 400);
  EXPECT_EQ(client_->Send("DELETE", "/_emulator/windows", "").status, 405);
}

TEST_F(EmulatorTest, WindowsSayWhenTheRecordLostRequests) {
  EmulatorOptions options;
  options.request_log_capacity = 2;
  Start(options);
  for (int i = 0; i < 5; ++i) client_->Post("/v1/track", R"({"user_id":"u","event_name":"e"})");
  const BudgetWindows windows = emulator_->Windows(absl::Seconds(60));
  EXPECT_EQ(windows.evicted, 3);
  EXPECT_EQ(windows.groups[static_cast<int>(BudgetGroup::kTrack)].requests, 2);
  emulator_->ClearRequests();
  EXPECT_EQ(emulator_->Windows(absl::Seconds(60)).evicted, 0);
}

}  // namespace
}  // namespace userpilot::gateway::testing
