#include "service/upstream/error_mapping.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/util/wire_details.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::string_view kEndpoint = "POST /v1/identify";
const absl::Time kNow = absl::FromUnixSeconds(1445412480);  // Wed, 21 Oct 2015 07:28:00 GMT

HttpResult Response(long code, std::string body = "",  // NOLINT(runtime/int)
                    HttpHeaders headers = {}) {
  HttpResult result;
  result.response.status_code = code;
  result.response.body = std::move(body);
  result.response.headers = std::move(headers);
  return result;
}

HttpResult Transport(absl::Status status, bool may_have_been_sent) {
  HttpResult result;
  result.transport_status = std::move(status);
  result.request_may_have_been_sent = may_have_been_sent;
  return result;
}

std::map<std::string, std::string> InfoMetadata(const google::rpc::ErrorInfo& info) {
  return {info.metadata().begin(), info.metadata().end()};
}

using wire::RetryDelay;

// ----- The status table -----

struct MappingCase {
  std::string name;
  HttpResult result;
  absl::StatusCode code;
  std::string reason;                           // "" for OK
  std::map<std::string, std::string> metadata;  // Exactly the ErrorInfo metadata.
  std::optional<absl::Duration> retry_delay;    // RetryInfo, when one is expected.
};

std::vector<MappingCase> MappingCases() {
  using C = absl::StatusCode;
  const std::string ep(kEndpoint);
  auto http = [&](const char* status) {
    return std::map<std::string, std::string>{{"endpoint", ep}, {"http_status", status}};
  };
  // As http(), plus where the RetryInfo delay came from.
  auto delayed = [&](const char* status, const char* source) {
    return std::map<std::string, std::string>{
        {"endpoint", ep}, {"http_status", status}, {"retry_delay_source", source}};
  };
  return {
      {"TransportDeadline",
       Transport(absl::DeadlineExceededError("timed out"), true),
       C::kDeadlineExceeded,
       "UPSTREAM_UNAVAILABLE",
       {{"endpoint", ep}, {"request_may_have_been_sent", "true"}},
       std::nullopt},
      {"TransportRefused",
       Transport(absl::UnavailableError("connection refused"), false),
       C::kUnavailable,
       "UPSTREAM_UNAVAILABLE",
       {{"endpoint", ep}, {"request_may_have_been_sent", "false"}},
       std::nullopt},
      {"TransportCancelled",
       Transport(absl::CancelledError("client shut down"), true),
       C::kUnavailable,
       "UPSTREAM_UNAVAILABLE",
       {{"endpoint", ep}, {"request_may_have_been_sent", "true"}},
       std::nullopt},
      {"TransportQueueFull",
       Transport(absl::ResourceExhaustedError("queue full"), false),
       C::kResourceExhausted,
       "UPSTREAM_UNAVAILABLE",
       {{"endpoint", ep}, {"request_may_have_been_sent", "false"}},
       std::nullopt},
      {"TransportBadUrl",
       Transport(absl::InvalidArgumentError("unsupported scheme"), false),
       C::kInternal,
       "GATEWAY_INTERNAL_ERROR",
       {{"endpoint", ep}, {"request_may_have_been_sent", "false"}},
       std::nullopt},
      {"TransportCurlInternal",
       Transport(absl::InternalError("out of memory"), true),
       C::kInternal,
       "GATEWAY_INTERNAL_ERROR",
       {{"endpoint", ep}, {"request_may_have_been_sent", "true"}},
       std::nullopt},
      {"Http200", Response(200), C::kOk, "", {}, std::nullopt},
      {"Http201", Response(201), C::kOk, "", {}, std::nullopt},
      {"Http202", Response(202, "garbage is fine here"), C::kOk, "", {}, std::nullopt},
      {"Http204", Response(204), C::kOk, "", {}, std::nullopt},
      {"Http299", Response(299), C::kOk, "", {}, std::nullopt},
      {"Http400", Response(400), C::kInvalidArgument, "UPSTREAM_REJECTED_REQUEST", http("400"),
       std::nullopt},
      {"Http422", Response(422), C::kInvalidArgument, "UPSTREAM_REJECTED_REQUEST", http("422"),
       std::nullopt},
      {"Http413", Response(413), C::kInvalidArgument, "UPSTREAM_REJECTED_REQUEST", http("413"),
       std::nullopt},
      {"Http401", Response(401), C::kInternal, "UPSTREAM_CREDENTIALS_REJECTED", http("401"),
       std::nullopt},
      {"Http403", Response(403), C::kInternal, "UPSTREAM_CREDENTIALS_REJECTED", http("403"),
       std::nullopt},
      {"Http404", Response(404), C::kNotFound, "UPSTREAM_NOT_FOUND", http("404"), std::nullopt},
      {"Http410", Response(410), C::kNotFound, "UPSTREAM_NOT_FOUND", http("410"), std::nullopt},
      {"Http408", Response(408), C::kUnavailable, "UPSTREAM_UNAVAILABLE", http("408"),
       std::nullopt},
      {"Http409", Response(409), C::kFailedPrecondition, "JOB_IN_PROGRESS", http("409"),
       std::nullopt},
      {"Http429NoHint", Response(429), C::kResourceExhausted, "UPSTREAM_RATE_LIMITED",
       delayed("429", "default"), absl::Seconds(1)},
      {"Http429RetryAfterSeconds", Response(429, "", {{"retry-after", "7"}}), C::kResourceExhausted,
       "UPSTREAM_RATE_LIMITED", delayed("429", "retry-after"), absl::Seconds(7)},
      {"Http429RetryAfterDate",
       Response(429, "", {{"Retry-After", "Wed, 21 Oct 2015 07:28:30 GMT"}}), C::kResourceExhausted,
       "UPSTREAM_RATE_LIMITED", delayed("429", "retry-after"), absl::Seconds(30)},
      {"Http429RetryAfterGarbage", Response(429, "", {{"retry-after", "soon"}}),
       C::kResourceExhausted, "UPSTREAM_RATE_LIMITED", delayed("429", "default"), absl::Seconds(1)},
      {"Http429RateLimitResetDelta", Response(429, "", {{"x-ratelimit-reset", "5"}}),
       C::kResourceExhausted, "UPSTREAM_RATE_LIMITED", delayed("429", "x-ratelimit-reset"),
       absl::Seconds(5)},
      {"Http429RateLimitResetEpoch", Response(429, "", {{"x-ratelimit-reset", "1445412500"}}),
       C::kResourceExhausted, "UPSTREAM_RATE_LIMITED", delayed("429", "x-ratelimit-reset"),
       absl::Seconds(20)},
      {"Http429RetryAfterWinsOverReset",
       Response(429, "", {{"x-ratelimit-reset", "5"}, {"retry-after", "2"}}), C::kResourceExhausted,
       "UPSTREAM_RATE_LIMITED", delayed("429", "retry-after"), absl::Seconds(2)},
      {"Http500", Response(500), C::kUnavailable, "UPSTREAM_UNAVAILABLE", http("500"),
       std::nullopt},
      {"Http502Html", Response(502, "<html><body>Bad Gateway</body></html>"), C::kUnavailable,
       "UPSTREAM_UNAVAILABLE", http("502"), std::nullopt},
      {"Http503RetryAfter", Response(503, "", {{"retry-after", "3"}}), C::kUnavailable,
       "UPSTREAM_UNAVAILABLE", delayed("503", "retry-after"), absl::Seconds(3)},
      {"Http599", Response(599), C::kUnavailable, "UPSTREAM_UNAVAILABLE", http("599"),
       std::nullopt},
      {"Http405", Response(405), C::kInternal, "UPSTREAM_REJECTED_REQUEST", http("405"),
       std::nullopt},
      {"Http415", Response(415), C::kInternal, "UPSTREAM_REJECTED_REQUEST", http("415"),
       std::nullopt},
      {"Http418", Response(418), C::kInternal, "UPSTREAM_REJECTED_REQUEST", http("418"),
       std::nullopt},
      {"Http302", Response(302, "", {{"location", "https://elsewhere"}}), C::kInternal,
       "UPSTREAM_BAD_RESPONSE", http("302"), std::nullopt},
      {"Http101", Response(101), C::kInternal, "UPSTREAM_BAD_RESPONSE", http("101"), std::nullopt},
      {"Http600", Response(600), C::kInternal, "UPSTREAM_BAD_RESPONSE", http("600"), std::nullopt},
      {"RequestIdInMetadata",
       Response(500, "", {{"x-request-id", "GEDdGIKmRewi6ZIAEYcB"}}),
       C::kUnavailable,
       "UPSTREAM_UNAVAILABLE",
       {{"endpoint", ep}, {"http_status", "500"}, {"upstream_request_id", "GEDdGIKmRewi6ZIAEYcB"}},
       std::nullopt},
      {"UpstreamErrorCodeInMetadata",
       Response(400, R"({"errors":[{"message":"m"},{"error_code":"invalid_payload"}]})"),
       C::kInvalidArgument,
       "UPSTREAM_REJECTED_REQUEST",
       {{"endpoint", ep}, {"http_status", "400"}, {"upstream_error_code", "invalid_payload"}},
       std::nullopt},
  };
}

class MapHttpResultTest : public ::testing::TestWithParam<MappingCase> {};

TEST_P(MapHttpResultTest, Maps) {
  const MappingCase& c = GetParam();
  const CallStatus status = MapHttpResult(c.result, kEndpoint, kNow);
  EXPECT_EQ(status.code(), c.code) << status;
  const auto info = wire::Info(status);
  if (c.code == absl::StatusCode::kOk) {
    EXPECT_FALSE(info.has_value());
    return;
  }
  ASSERT_TRUE(info.has_value()) << status;
  EXPECT_EQ(info->reason(), c.reason);
  EXPECT_EQ(info->domain(), "userpilot-gateway");
  EXPECT_EQ(InfoMetadata(*info), c.metadata);
  EXPECT_EQ(RetryDelay(status), c.retry_delay) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(std::string(kEndpoint)));
}

INSTANTIATE_TEST_SUITE_P(Table, MapHttpResultTest, ::testing::ValuesIn(MappingCases()),
                         [](const auto& info) { return info.param.name; });

// ----- Messages -----

TEST(MapHttpResultMessageTest, QuotesUserpilotsErrorForRejectedRequests) {
  const CallStatus status = MapHttpResult(
      Response(400, R"({"errors":[{"error":"Bad Request","error_code":"invalid_payload",)"
                    R"("message":"user_id is required","details":"missing field user_id"}]})"),
      kEndpoint, kNow);
  EXPECT_EQ(status.message(),
            "Userpilot rejected the request (HTTP 400 on POST /v1/identify): user_id is required "
            "(missing field user_id)");
}

TEST(MapHttpResultMessageTest, QuotesConflictMessage) {
  const CallStatus status =
      MapHttpResult(Response(409, R"({"errors":[{"message":"Import job already in progress"}]})"),
                    "POST /v1/users/bulk_identify", kNow);
  EXPECT_THAT(std::string(status.message()), HasSubstr("Import job already in progress"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("already running a job"));
}

TEST(MapHttpResultMessageTest, NeverQuotesNonJsonBodies) {
  for (const long code : {400L, 404L, 409L, 429L, 500L, 502L}) {  // NOLINT(runtime/int)
    const CallStatus status =
        MapHttpResult(Response(code, "<html><title>oops SECRET</title></html>"), kEndpoint, kNow);
    EXPECT_THAT(std::string(status.message()), Not(HasSubstr("html"))) << code;
    EXPECT_THAT(std::string(status.message()), Not(HasSubstr("SECRET"))) << code;
  }
}

TEST(MapHttpResultMessageTest, EmptyAndJsonWithoutErrorsGiveTheBareSummary) {
  for (const std::string body : {"", "{}", R"({"errors":[]})", "null"}) {
    const CallStatus status = MapHttpResult(Response(400, body), kEndpoint, kNow);
    EXPECT_EQ(status.message(), "Userpilot rejected the request (HTTP 400 on POST /v1/identify)")
        << body;
  }
}

TEST(MapHttpResultMessageTest, CredentialErrorsQuoteNothingFromUserpilot) {
  // Userpilot's 401 text could echo the key; the caller could not act on it anyway.
  const std::string body =
      R"({"errors":[{"error":"Unauthorized","error_code":"token k-123 invalid",)"
      R"("message":"Invalid API key k-123","details":"k-123"}]})";
  for (const long code : {401L, 403L}) {  // NOLINT(runtime/int)
    const CallStatus status = MapHttpResult(Response(code, body), kEndpoint, kNow);
    EXPECT_THAT(std::string(status.message()), Not(HasSubstr("k-123")));
    EXPECT_THAT(std::string(status.message()), HasSubstr("gateway's own API key"));
    EXPECT_THAT(std::string(status.message()), HasSubstr("operator"));
    const auto info = wire::Info(status);
    ASSERT_TRUE(info.has_value());
    for (const auto& [key, value] : info->metadata()) {
      EXPECT_THAT(value, Not(HasSubstr("k-123"))) << key;
    }
  }
}

TEST(MapHttpResultMessageTest, LongUpstreamTextIsTruncatedOnACharacterBoundary) {
  std::string text;
  for (int i = 0; i < 400; ++i) text += "é";  // Two bytes each.
  const CallStatus status = MapHttpResult(
      Response(400, R"({"errors":[{"message":")" + text + R"("}]})"), kEndpoint, kNow);
  EXPECT_LT(status.message().size(), 450u);
  EXPECT_THAT(std::string(status.message()), HasSubstr("éé..."));
}

TEST(MapHttpResultMessageTest, RateLimitSaysWhenToRetry) {
  const CallStatus status =
      MapHttpResult(Response(429, "", {{"retry-after", "7"}}), kEndpoint, kNow);
  EXPECT_EQ(status.message(),
            "Userpilot's rate limit was reached (HTTP 429 on POST /v1/identify); retry in 7s");
}

TEST(MapHttpResultMessageTest, TransportFailuresKeepTheTransportText) {
  EXPECT_EQ(
      MapHttpResult(Transport(absl::UnavailableError("connection refused"), false), kEndpoint, kNow)
          .message(),
      "could not reach Userpilot for POST /v1/identify: connection refused");
  EXPECT_EQ(
      MapHttpResult(Transport(absl::DeadlineExceededError("timed out"), true), kEndpoint, kNow)
          .message(),
      "no answer from Userpilot in time for POST /v1/identify: timed out");
}

TEST(MapHttpResultMessageTest, RequestIdIsSanitised) {
  const CallStatus status = MapHttpResult(
      Response(500, "", {{"x-request-id", " abc\x01\xff" + std::string(200, 'x') + " "}}),
      kEndpoint, kNow);
  const auto info = wire::Info(status);
  ASSERT_TRUE(info.has_value());
  const std::string id = info->metadata().at("upstream_request_id");
  EXPECT_EQ(id.size(), 128u);
  EXPECT_EQ(id.substr(0, 4), "abcx");
}

// ----- Retry-After -----

TEST(ParseRetryAfterTest, Table) {
  const std::vector<std::pair<std::string, std::optional<absl::Duration>>> cases = {
      {"0", absl::ZeroDuration()},
      {"120", absl::Seconds(120)},
      {" 5 ", absl::Seconds(5)},
      {"Wed, 21 Oct 2015 07:28:30 GMT", absl::Seconds(30)},     // IMF-fixdate
      {"Wednesday, 21-Oct-15 07:29:00 GMT", absl::Minutes(1)},  // RFC 850
      {"Wed Oct 21 07:28:10 2015", absl::Seconds(10)},          // asctime
      {"Sun Nov  1 07:28:00 2015", absl::Hours(24 * 11)},       // asctime, padded day
      {"Wed, 21 Oct 2015 07:00:00 GMT", absl::ZeroDuration()},  // in the past
      {"", std::nullopt},
      {"-1", std::nullopt},
      {"1.5", std::nullopt},
      {"5s", std::nullopt},
      {"soon", std::nullopt},
      {"99999999999999999999999", std::nullopt},        // overflows int64
      {"Wed, 21 Oct 2015 07:28:30 UTC", std::nullopt},  // not GMT
      {"2015-10-21T07:28:30Z", std::nullopt},
  };
  for (const auto& [value, expected] : cases) {
    EXPECT_EQ(ParseRetryAfter(value, kNow), expected) << "'" << value << "'";
  }
}

// ----- Bad 2xx bodies -----

TEST(UpstreamBadResponseErrorTest, IsInternalWithReasonAndMetadata) {
  const CallStatus status = UpstreamBadResponseError(
      Response(202, "<html>", {{"x-request-id", "r1"}}), "POST /v1/users/bulk_identify",
      "expected a job object, got a string");
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(status.message()), HasSubstr("HTTP 202"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("expected a job object"));
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("<html>")));
  const auto info = wire::Info(status);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), "UPSTREAM_BAD_RESPONSE");
  EXPECT_EQ(InfoMetadata(*info),
            (std::map<std::string, std::string>{{"endpoint", "POST /v1/users/bulk_identify"},
                                                {"http_status", "202"},
                                                {"upstream_request_id", "r1"}}));
}

// ----- Helpers -----

TEST(RetryDelaySourceTest, TellsUserpilotsDelayFromTheGatewaysDefault) {
  // "Retry-After: 1" equals the default delay; only the recorded source tells them apart.
  const CallStatus given =
      MapHttpResult(Response(429, "", {{"retry-after", "1"}}), kEndpoint, kNow);
  const CallStatus defaulted = MapHttpResult(Response(429), kEndpoint, kNow);
  ASSERT_EQ(RetryDelay(given), RetryDelay(defaulted));
  EXPECT_TRUE(given.facts().retry_delay->FromUpstream());
  EXPECT_FALSE(defaulted.facts().retry_delay->FromUpstream());
  EXPECT_EQ(wire::Metadata(defaulted)["retry_delay_source"], "default");
  EXPECT_TRUE(MapHttpResult(Response(429, "", {{"x-ratelimit-reset", "1"}}), kEndpoint, kNow)
                  .facts()
                  .retry_delay->FromUpstream());
  EXPECT_TRUE(MapHttpResult(Response(503, "", {{"retry-after", "2"}}), kEndpoint, kNow)
                  .facts()
                  .retry_delay->FromUpstream());
  // No delay at all: nothing was asked for.
  EXPECT_FALSE(MapHttpResult(Response(503), kEndpoint, kNow).facts().retry_delay.has_value());
}

TEST(ReachTest, AReplyThatIsNotHttpIsASentUnavailableNotHttpFailure) {
  HttpResult result = Transport(absl::UnavailableError("weird server reply"), true);
  result.reply_not_http = true;
  const CallStatus status = MapHttpResult(result, kEndpoint, kNow);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(status.facts().reason, ErrorReason::kUpstreamUnavailable);
  EXPECT_EQ(status.facts().upstream.transport, TransportFailure::kNotHttp);
  EXPECT_EQ(status.facts().upstream.reach, Reach::kUnknown);
  EXPECT_THAT(std::string(status.message()), HasSubstr("reply was not HTTP"));
  // Without the flag the same status is an ordinary connection failure.
  EXPECT_EQ(MapHttpResult(Transport(absl::UnavailableError("reset"), true), kEndpoint, kNow)
                .facts()
                .upstream.transport,
            TransportFailure::kConnection);
}

TEST(ReachTest, CertainlyNotSentOnlyForTransportFailuresThatSaySo) {
  EXPECT_EQ(MapHttpResult(Transport(absl::UnavailableError("refused"), false), kEndpoint, kNow)
                .facts()
                .upstream.reach,
            Reach::kNever);
  EXPECT_EQ(MapHttpResult(Transport(absl::UnavailableError("reset"), true), kEndpoint, kNow)
                .facts()
                .upstream.reach,
            Reach::kUnknown);
  EXPECT_EQ(MapHttpResult(Transport(absl::DeadlineExceededError("late"), true), kEndpoint, kNow)
                .facts()
                .upstream.transport,
            TransportFailure::kDeadline);
  EXPECT_EQ(MapHttpResult(Response(503), kEndpoint, kNow).facts().upstream.reach, Reach::kAnswered);
  const CallStatus ok = MapHttpResult(Response(202, "", {{"x-request-id", "r1"}}), kEndpoint, kNow);
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.facts().upstream.http_status, 202);
  EXPECT_EQ(ok.facts().upstream.request_id, "r1");
  EXPECT_EQ(ok.facts().upstream.endpoint, kEndpoint);
}

TEST(RedactSecretTest, ScrubsMessageAndUpstreamTextAndKeepsTheRest) {
  const CallStatus mapped = MapHttpResult(
      Response(400, R"({"errors":[{"error_code":"KEY-1","message":"bad key KEY-1 given"}]})",
               {{"x-request-id", "id-KEY-1"}}),
      kEndpoint, kNow);
  ASSERT_THAT(std::string(mapped.message()), HasSubstr("KEY-1"));
  const CallStatus redacted = RedactSecret(mapped, Redactor("KEY-1"));
  EXPECT_EQ(redacted.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(redacted.message()), Not(HasSubstr("KEY-1")));
  EXPECT_THAT(std::string(redacted.message()), HasSubstr("bad key [redacted] given"));
  EXPECT_EQ(wire::Reason(redacted), "UPSTREAM_REJECTED_REQUEST");
  EXPECT_EQ(wire::Metadata(redacted)["upstream_error_code"], "[redacted]");
  EXPECT_EQ(wire::Metadata(redacted)["upstream_request_id"], "id-[redacted]");
  EXPECT_EQ(wire::Metadata(redacted)["endpoint"], "POST /v1/identify");
  EXPECT_EQ(redacted.facts().upstream.message, "bad key [redacted] given");
}

TEST(RedactSecretTest, LeavesUnrelatedStatusesAlone) {
  const CallStatus status = absl::UnavailableError("nothing secret");
  EXPECT_EQ(RedactSecret(status, Redactor("KEY-1")).status(), status.status());
  EXPECT_EQ(RedactSecret(status, Redactor("")).status(), status.status());
  EXPECT_TRUE(RedactSecret(absl::OkStatus(), Redactor("KEY-1")).ok());
}

}  // namespace
}  // namespace userpilot::gateway
