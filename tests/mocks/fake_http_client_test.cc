#include "tests/mocks/fake_http_client.h"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/mocks/mock_userpilot_stub.h"

namespace userpilot::gateway {
namespace {

using ::testing::_;

HttpRequest Get(std::string url) {
  HttpRequest request;
  request.method = "GET";
  request.url = std::move(url);
  request.deadline = absl::Now() + absl::Seconds(10);
  return request;
}

// Captures one completion and the thread it ran on. (std::mutex rather than absl::Notification,
// which TSan cannot see into with Debian's uninstrumented libabsl.)
class Completion {
 public:
  HttpClient::Callback Callback() {
    return [this](HttpResult r) {
      std::lock_guard<std::mutex> lock(mu_);
      result_ = std::move(r);
      thread_ = std::this_thread::get_id();
      cv_.notify_all();
    };
  }
  bool Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return result_.has_value(); });
  }
  bool done() {
    std::lock_guard<std::mutex> lock(mu_);
    return result_.has_value();
  }
  // Valid once done.
  const HttpResult& result() {
    std::lock_guard<std::mutex> lock(mu_);
    return *result_;
  }
  std::thread::id thread() {
    std::lock_guard<std::mutex> lock(mu_);
    return thread_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<HttpResult> result_;
  std::thread::id thread_;
};

TEST(FakeHttpClientTest, ScriptedAnswersArriveOnTheFakesThreadInOrder) {
  FakeHttpClient http;
  http.EnqueueResponse(200, "first", {{"X-Request-Id", "r1"}});
  http.Enqueue(FakeHttpClient::TransportFailure(absl::UnavailableError("refused"), false));
  Completion a;
  Completion b;
  http.Send(Get("https://u.test/a"), a.Callback());
  http.Send(Get("https://u.test/b"), b.Callback());
  ASSERT_TRUE(a.Wait());
  ASSERT_TRUE(b.Wait());
  EXPECT_NE(a.thread(), std::this_thread::get_id());
  EXPECT_EQ(a.result().response.status_code, 200);
  EXPECT_EQ(a.result().response.body, "first");
  // Header names are lower-cased, as a real client delivers them.
  EXPECT_EQ(a.result().response.headers, (HttpHeaders{{"x-request-id", "r1"}}));
  EXPECT_TRUE(absl::IsUnavailable(b.result().transport_status));
  EXPECT_FALSE(b.result().request_may_have_been_sent);
  ASSERT_EQ(http.requests().size(), 2u);
  EXPECT_EQ(http.requests()[0].url, "https://u.test/a");
  EXPECT_EQ(http.requests()[1].url, "https://u.test/b");
}

TEST(FakeHttpClientTest, UnscriptedRequestsWaitForCompleteNext) {
  FakeHttpClient http;
  EXPECT_FALSE(http.CompleteNext(FakeHttpClient::Response(200)));
  Completion a;
  http.Send(Get("https://u.test/a"), a.Callback());
  EXPECT_FALSE(a.done());  // Never inside Send().
  EXPECT_EQ(http.pending(), 1u);
  ASSERT_TRUE(http.CompleteNext(FakeHttpClient::Response(204)));
  ASSERT_TRUE(a.done());
  EXPECT_EQ(a.thread(), std::this_thread::get_id());
  EXPECT_EQ(a.result().response.status_code, 204);
  EXPECT_EQ(http.pending(), 0u);
}

TEST(FakeHttpClientTest, HandlerAnswersFromTheRequest) {
  FakeHttpClient http;
  http.SetHandler(
      [](const HttpRequest& request) { return FakeHttpClient::Response(200, request.url); });
  Completion a;
  http.Send(Get("https://u.test/echo"), a.Callback());
  ASSERT_TRUE(a.Wait());
  EXPECT_EQ(a.result().response.body, "https://u.test/echo");
  EXPECT_TRUE(http.WaitForIdle());
}

TEST(FakeHttpClientTest, CallbacksMaySendAgain) {
  FakeHttpClient http;
  http.EnqueueResponse(503);
  http.EnqueueResponse(200);
  Completion retried;
  http.Send(Get("https://u.test/a"),
            [&](HttpResult) { http.Send(Get("https://u.test/a"), retried.Callback()); });
  ASSERT_TRUE(retried.Wait());
  EXPECT_EQ(retried.result().response.status_code, 200);
  EXPECT_TRUE(http.WaitForRequests(2));
}

TEST(FakeHttpClientTest, DestructionCancelsWhatIsStillPending) {
  Completion a;
  {
    FakeHttpClient http;
    http.Send(Get("https://u.test/a"), a.Callback());
  }
  ASSERT_TRUE(a.done());
  EXPECT_TRUE(absl::IsCancelled(a.result().transport_status));
}

TEST(FakeHttpClientTest, WaitForRequestsTimesOut) {
  FakeHttpClient http;
  EXPECT_FALSE(http.WaitForRequests(1, absl::Milliseconds(10)));
}

TEST(MockUserpilotStubTest, AnswersThroughTheMoveOnlyCallback) {
  MockUserpilotStub stub;
  EXPECT_CALL(stub, GetJob(_, _, _))
      .WillOnce(
          [](const CallOptions&, const v1::GetJobRequest& request, StubCallback<v1::Job> done) {
            v1::Job job;
            job.set_job_id(request.job_id());
            std::move(done)(job);
          });
  v1::GetJobRequest request;
  request.set_job_id("j1");
  std::string got;
  stub.GetJob(CallOptions(), request, [&](Result<v1::Job> job) { got = job->job_id(); });
  EXPECT_EQ(got, "j1");
}

}  // namespace
}  // namespace userpilot::gateway
