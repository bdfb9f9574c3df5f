#include "service/http/curl_errors.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace userpilot::gateway::http_internal {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Case {
  std::string name;
  CURLcode code;
  bool nothing_written;
  bool connected;
  bool connect_timeout_binding;
  absl::StatusCode want_code;
  bool want_may_have_been_sent;
  bool deadline_passed = false;
};

class MapCurlFailureTest : public ::testing::TestWithParam<Case> {};

TEST_P(MapCurlFailureTest, MapsCodeAndWhetherSent) {
  const Case& c = GetParam();
  CurlFailure failure;
  failure.code = c.code;
  failure.nothing_written = c.nothing_written;
  failure.connected = c.connected;
  failure.connect_timeout_binding = c.connect_timeout_binding;
  failure.deadline_passed = c.deadline_passed;
  failure.max_response_bytes = 1024;
  failure.method = "POST";
  failure.origin = "https://api.example:443";
  failure.detail = "detail from curl";
  const TransportFailure got = MapCurlFailure(failure);
  EXPECT_EQ(got.status.code(), c.want_code) << got.status;
  EXPECT_EQ(got.request_may_have_been_sent, c.want_may_have_been_sent) << got.status;
  EXPECT_THAT(got.status.message(), HasSubstr("POST https://api.example:443: "));
}

constexpr auto kUnavailable = absl::StatusCode::kUnavailable;
constexpr auto kDeadline = absl::StatusCode::kDeadlineExceeded;

INSTANTIATE_TEST_SUITE_P(
    Table, MapCurlFailureTest,
    ::testing::Values(
        // name, code, nothing_written, connected, connect_timeout_binding -> code, sent
        Case{"ResolveHost", CURLE_COULDNT_RESOLVE_HOST, true, false, true, kUnavailable, false},
        Case{"ResolveProxy", CURLE_COULDNT_RESOLVE_PROXY, true, false, true, kUnavailable, false},
        Case{"Refused", CURLE_COULDNT_CONNECT, true, false, true, kUnavailable, false},
        // libcurl retried on a fresh connection after writing to a dead reused one.
        Case{"RefusedAfterWrite", CURLE_COULDNT_CONNECT, false, false, true, kUnavailable, true},
        Case{"TlsHandshake", CURLE_SSL_CONNECT_ERROR, true, false, true, kUnavailable, false},
        Case{"BadCertificate", CURLE_PEER_FAILED_VERIFICATION, true, false, true, kUnavailable,
             false},
        Case{"ConnectTimeout", CURLE_OPERATION_TIMEDOUT, true, false, true, kUnavailable, false},
        Case{"DeadlineWhileConnecting", CURLE_OPERATION_TIMEDOUT, true, false, false, kDeadline,
             false},
        // Both timeouts due at about the same time: the caller's deadline is gone, say so.
        Case{"ConnectTimeoutAtTheDeadline", CURLE_OPERATION_TIMEDOUT, true, false, true, kDeadline,
             false, /*deadline_passed=*/true},
        Case{"DeadlineAfterSending", CURLE_OPERATION_TIMEDOUT, false, true, true, kDeadline, true},
        Case{"DeadlineConnectedNothingWritten", CURLE_OPERATION_TIMEDOUT, true, true, true,
             kDeadline, true},
        Case{"GotNothing", CURLE_GOT_NOTHING, false, true, true, kUnavailable, true},
        Case{"PartialBody", CURLE_PARTIAL_FILE, false, true, true, kUnavailable, true},
        Case{"SendError", CURLE_SEND_ERROR, true, true, true, kUnavailable, true},
        Case{"RecvError", CURLE_RECV_ERROR, false, true, true, kUnavailable, true},
        Case{"WeirdReply", CURLE_WEIRD_SERVER_REPLY, false, true, true, kUnavailable, true},
        Case{"TooLargeByLength", CURLE_FILESIZE_EXCEEDED, false, true, true, kUnavailable, true},
        Case{"MalformedUrl", CURLE_URL_MALFORMAT, true, false, true,
             absl::StatusCode::kInvalidArgument, false},
        Case{"UnsupportedScheme", CURLE_UNSUPPORTED_PROTOCOL, true, false, true,
             absl::StatusCode::kInvalidArgument, false},
        // libcurl's code for a status line it cannot parse: a bad reply, not a bad URL.
        Case{"GarbageStatusLine", CURLE_UNSUPPORTED_PROTOCOL, false, true, true, kUnavailable,
             true},
        Case{"BadContentEncoding", CURLE_BAD_CONTENT_ENCODING, false, true, true, kUnavailable,
             true},
        Case{"OurWriteError", CURLE_WRITE_ERROR, false, true, true, absl::StatusCode::kInternal,
             true},
        Case{"BadArgument", CURLE_BAD_FUNCTION_ARGUMENT, true, false, true,
             absl::StatusCode::kInternal, true},
        Case{"Unknown", CURLE_FTP_WEIRD_PASS_REPLY, false, true, true, kUnavailable, true}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST(MapCurlFailureTest, OnlyRepliesThatAreNotHttpSaySo) {
  CurlFailure failure;
  failure.method = "POST";
  failure.origin = "http://h";
  failure.detail = "Unsupported HTTP version in response";
  failure.code = CURLE_UNSUPPORTED_PROTOCOL;
  failure.connected = true;
  TransportFailure got = MapCurlFailure(failure);
  EXPECT_TRUE(got.reply_not_http);
  EXPECT_THAT(got.status.message(), HasSubstr("the server's reply is not valid HTTP"));
  EXPECT_THAT(got.status.message(), Not(HasSubstr("URL")));
  failure.code = CURLE_WEIRD_SERVER_REPLY;
  EXPECT_TRUE(MapCurlFailure(failure).reply_not_http);
  // The same code before any connection: the URL's scheme was refused.
  failure.code = CURLE_UNSUPPORTED_PROTOCOL;
  failure.connected = false;
  failure.nothing_written = true;
  failure.detail = "Protocol \"ftp\" not supported or disabled in libcurl";
  got = MapCurlFailure(failure);
  EXPECT_FALSE(got.reply_not_http);
  EXPECT_THAT(got.status.message(), HasSubstr("unusable URL"));
  for (const CURLcode code :
       {CURLE_GOT_NOTHING, CURLE_RECV_ERROR, CURLE_OPERATION_TIMEDOUT, CURLE_COULDNT_CONNECT}) {
    failure.code = code;
    failure.connected = true;
    failure.nothing_written = false;
    EXPECT_FALSE(MapCurlFailure(failure).reply_not_http) << code;
  }
}

TEST(MapCurlFailureTest, SizeCapNamesTheLimit) {
  CurlFailure failure;
  failure.code = CURLE_WRITE_ERROR;
  failure.response_too_large = true;
  failure.max_response_bytes = 8388608;
  failure.method = "GET";
  failure.origin = "http://h";
  const TransportFailure got = MapCurlFailure(failure);
  EXPECT_EQ(got.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(got.status.message(), HasSubstr("larger than the limit of 8388608 bytes"));
  EXPECT_TRUE(got.request_may_have_been_sent);
}

TEST(MapCurlFailureTest, UsesCurlsDescriptionWhenTheErrorBufferIsEmpty) {
  CurlFailure failure;
  failure.code = CURLE_COULDNT_CONNECT;
  failure.method = "GET";
  failure.origin = "http://h";
  EXPECT_THAT(MapCurlFailure(failure).status.message(),
              HasSubstr(curl_easy_strerror(CURLE_COULDNT_CONNECT)));
}

TEST(OriginOfTest, KeepsSchemeHostAndPortOnly) {
  EXPECT_EQ(OriginOf("https://analytex.userpilot.io/v1/identify?x=1"),
            "https://analytex.userpilot.io");
  EXPECT_EQ(OriginOf("HTTP://127.0.0.1:8080"), "http://127.0.0.1:8080");
  EXPECT_EQ(OriginOf("https://user:secret@host:443/p#frag"), "https://host:443");
  EXPECT_EQ(OriginOf("https://host?q=secret"), "https://host");
  EXPECT_EQ(OriginOf("no scheme"), "<invalid url>");
}

TEST(RedactHeaderValuesTest, RemovesValuesAndTheirLongTokens) {
  const HttpHeaders headers = {{"Authorization", "Bearer upk_live_0123456789"},
                               {"Accept", "application/json"},
                               {"X-Short", "abc"}};
  const std::string redacted = RedactHeaderValues(
      "echo Bearer upk_live_0123456789 and upk_live_0123456789 abc application/json", headers);
  EXPECT_THAT(redacted, Not(HasSubstr("upk_live_0123456789")));
  EXPECT_THAT(redacted, Not(HasSubstr("application/json")));
  EXPECT_THAT(redacted, HasSubstr("abc"));  // Too short to be a secret; left alone.
  EXPECT_EQ(RedactHeaderValues("nothing to hide", headers), "nothing to hide");
}

}  // namespace
}  // namespace userpilot::gateway::http_internal
