#include "service/http/curl_http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/http/body_source.h"
#include "tests/mocks/loopback_http_server.h"

namespace userpilot::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::LoopbackHttpServer;
using ::testing::Not;
using ::testing::Pair;
using testing::ReceivedRequest;
using testing::ScriptedReply;

constexpr absl::Duration kWaitLimit = absl::Seconds(10);

// Completions, keyed by the caller's choice, with the thread each ran on. Synchronised with
// std::mutex, which ThreadSanitizer understands (see curl_http_client.cc).
class Completions {
 public:
  struct Entry {
    HttpResult result;
    std::thread::id thread;
  };

  HttpClient::Callback Expect(int key) {
    return [this, key](HttpResult result) {
      std::lock_guard<std::mutex> lock(mu_);
      EXPECT_EQ(entries_.count(key), 0u) << "callback " << key << " ran twice";
      entries_[key] = Entry{std::move(result), std::this_thread::get_id()};
      cv_.notify_all();
    };
  }

  // Waits for `n` completions in all; fails the test (and returns what there is) after 10 s.
  std::map<int, Entry> WaitFor(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    const bool done = cv_.wait_for(lock, absl::ToChronoMilliseconds(kWaitLimit),
                                   [&] { return entries_.size() >= n; });
    EXPECT_TRUE(done) << "only " << entries_.size() << " of " << n << " callbacks ran";
    return entries_;
  }

  HttpResult WaitForOne(int key) {
    std::unique_lock<std::mutex> lock(mu_);
    const bool done = cv_.wait_for(lock, absl::ToChronoMilliseconds(kWaitLimit),
                                   [&] { return entries_.count(key) > 0; });
    EXPECT_TRUE(done) << "callback " << key << " did not run";
    return done ? entries_[key].result : HttpResult{};
  }

  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return entries_.size();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, Entry> entries_;
};

HttpRequest Request(std::string method, std::string url,
                    absl::Duration timeout = absl::Seconds(5)) {
  HttpRequest request;
  request.method = std::move(method);
  request.url = std::move(url);
  request.deadline = absl::Now() + timeout;
  return request;
}

std::unique_ptr<CurlHttpClient> MakeClient(CurlHttpClientOptions options = {}) {
  auto client = CurlHttpClient::Create(std::move(options));
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? std::move(*client) : nullptr;
}

ScriptedReply Echo(const ReceivedRequest& request) {
  ScriptedReply reply;
  reply.body = absl::StrCat("echo:", request.body);
  return reply;
}

ScriptedReply Hold(const ReceivedRequest&) {
  ScriptedReply reply;
  reply.kind = ScriptedReply::Kind::kHoldThenRespond;
  reply.body = "late";
  return reply;
}

// Polls `condition` until it holds or 10 s pass. For state with no completion to wait on.
template <typename Condition>
bool Eventually(Condition condition) {
  const absl::Time limit = absl::Now() + kWaitLimit;
  while (!condition()) {
    if (absl::Now() > limit) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// A port on 127.0.0.1 that refuses connections: bound (so nobody else takes it) but not
// listening.
class RefusingPort {
 public:
  RefusingPort() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    socklen_t length = sizeof(address);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
  }
  ~RefusingPort() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// A listener whose accept queue is full, so new connections hang in SYN-SENT: on Linux the
// listener drops SYNs while its queue is full. This is how an unreachable host looks, on
// loopback.
class BlackholePort {
 public:
  BlackholePort() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    EXPECT_EQ(listen(listen_fd_, 0), 0);
    socklen_t length = sizeof(address);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    filler_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_EQ(connect(filler_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  }
  ~BlackholePort() {
    close(filler_fd_);
    close(listen_fd_);
  }
  int port() const { return port_; }

 private:
  int listen_fd_ = -1;
  int filler_fd_ = -1;
  int port_ = 0;
};

// Headers as the server saw them, minus the ones libcurl adds itself.
HttpHeaders WithoutTransportHeaders(const HttpHeaders& headers) {
  HttpHeaders out;
  for (const auto& header : headers) {
    if (absl::EqualsIgnoreCase(header.first, "Host") ||
        absl::EqualsIgnoreCase(header.first, "User-Agent") ||
        absl::EqualsIgnoreCase(header.first, "Content-Length")) {
      continue;
    }
    out.push_back(header);
  }
  return out;
}

TEST(CurlHttpClientTest, RoundTripsMethodsBodiesAndHeadersExactly) {
  LoopbackHttpServer server([](const ReceivedRequest& request) {
    ScriptedReply reply;
    reply.status = request.method == "POST" ? 201 : 200;
    reply.headers = {{"X-Echo-Method", request.method},
                     {"Content-Type", "text/plain"},
                     {"X-MiXeD-CaSe", "  padded value  "},
                     {"Set-Cookie", "a=1"},
                     {"Set-Cookie", "b=2"}};
    reply.body = absl::StrCat("echo:", request.body);
    return reply;
  });
  auto client = MakeClient();
  const std::string binary_body("{\"k\":\"v\"}\0\x01\xff end", 16);
  const HttpHeaders sent_headers = {{"Authorization", "Bearer test-key-123"},
                                    {"Content-Type", "application/json"},
                                    {"X-Trace", "a, b;c"},
                                    {"X-Empty", ""}};
  struct Call {
    std::string method;
    std::string body;
  };
  const std::vector<Call> calls = {
      {"GET", ""},  {"POST", binary_body}, {"DELETE", "{\"users\":[1]}"},
      {"PUT", "x"}, {"POST", ""},          {"DELETE", ""}};
  Completions completions;
  for (size_t i = 0; i < calls.size(); ++i) {
    HttpRequest request = Request(calls[i].method, server.Url("/v1/things?id=7&q=a%20b"));
    request.headers = sent_headers;
    request.body = calls[i].body;
    client->Send(std::move(request), completions.Expect(static_cast<int>(i)));
    // One at a time, so the server's record lines up with `calls`.
    completions.WaitForOne(static_cast<int>(i));
  }

  const std::vector<ReceivedRequest> received = server.requests();
  ASSERT_EQ(received.size(), calls.size());
  for (size_t i = 0; i < calls.size(); ++i) {
    SCOPED_TRACE(absl::StrCat(calls[i].method, " with ", calls[i].body.size(), " body bytes"));
    const ReceivedRequest& seen = received[i];
    EXPECT_EQ(seen.method, calls[i].method);
    EXPECT_EQ(seen.target, "/v1/things?id=7&q=a%20b");
    EXPECT_EQ(seen.body, calls[i].body);
    // Exactly the given headers, in order: no Accept, Expect or form Content-Type added.
    EXPECT_EQ(WithoutTransportHeaders(seen.headers), sent_headers);
    bool has_length = false;
    for (const auto& [name, value] : seen.headers) {
      if (name == "User-Agent") {
        EXPECT_EQ(value, "userpilot-gateway/0.1");
      }
      if (name == "Content-Length") {
        has_length = true;
        EXPECT_EQ(value, absl::StrCat(calls[i].body.size()));
      }
    }
    EXPECT_EQ(has_length, !calls[i].body.empty() || calls[i].method == "POST");
  }

  const auto results = completions.WaitFor(calls.size());
  for (size_t i = 0; i < calls.size(); ++i) {
    const HttpResult& result = results.at(static_cast<int>(i)).result;
    ASSERT_TRUE(result.transport_status.ok()) << result.transport_status;
    EXPECT_EQ(result.response.status_code, calls[i].method == "POST" ? 201 : 200);
    EXPECT_EQ(result.response.body, absl::StrCat("echo:", calls[i].body));
    EXPECT_THAT(
        result.response.headers,
        ElementsAre(Pair("x-echo-method", calls[i].method), Pair("content-type", "text/plain"),
                    Pair("x-mixed-case", "padded value"), Pair("set-cookie", "a=1"),
                    Pair("set-cookie", "b=2"),
                    Pair("content-length", absl::StrCat(5 + calls[i].body.size()))));
    EXPECT_EQ(result.response.Header("X-MIXED-CASE"), "padded value");
    EXPECT_GT(result.elapsed, absl::ZeroDuration());
  }
}

TEST(CurlHttpClientTest, CallbacksRunOnCompletionThreadsNeverInsideSend) {
  LoopbackHttpServer server(Echo);
  auto client = MakeClient();
  Completions completions;
  HttpRequest expired = Request("GET", server.Url("/"));
  expired.deadline = absl::Now() - absl::Seconds(1);
  client->Send(Request("GET", server.Url("/")), completions.Expect(0));
  client->Send(std::move(expired), completions.Expect(1));
  client->Send(HttpRequest{}, completions.Expect(2));  // Invalid and no deadline: decided at once.
  const auto results = completions.WaitFor(3);
  // Send() runs wholly on the calling thread, so a callback run inside it would run here.
  std::set<std::thread::id> threads;
  for (const auto& [key, entry] : results) {
    EXPECT_NE(entry.thread, std::this_thread::get_id()) << key;
    threads.insert(entry.thread);
  }
  EXPECT_LE(threads.size(), CurlHttpClientOptions().completion_threads);
}

TEST(CurlHttpClientTest, SequentialRequestsReuseOneConnection) {
  LoopbackHttpServer server(Echo);
  auto client = MakeClient();
  Completions completions;
  for (int i = 0; i < 20; ++i) {
    HttpRequest request = Request(i % 2 ? "POST" : "GET", server.Url("/seq"));
    if (i % 2) request.body = absl::StrCat("n=", i);
    client->Send(std::move(request), completions.Expect(i));
    EXPECT_TRUE(completions.WaitForOne(i).transport_status.ok());
  }
  EXPECT_EQ(server.connections_accepted(), 1);
}

TEST(CurlHttpClientTest, CallbackCanSendAgain) {
  LoopbackHttpServer server(Echo);
  auto client = MakeClient();
  Completions completions;
  constexpr int kChain = 20;
  std::mutex mu;
  int depth = 0;
  int max_depth = 0;
  std::function<void(int)> send_next = [&](int i) {
    HttpRequest request = Request("POST", server.Url("/chain"));
    request.body = absl::StrCat(i);
    client->Send(std::move(request), [&, i, done = completions.Expect(i)](HttpResult r) mutable {
      {
        std::lock_guard<std::mutex> lock(mu);
        max_depth = std::max(max_depth, ++depth);
      }
      if (i + 1 < kChain) send_next(i + 1);  // Re-enters Send() from the event thread.
      std::move(done)(std::move(r));
      std::lock_guard<std::mutex> lock(mu);
      --depth;
    });
  };
  send_next(0);
  const auto results = completions.WaitFor(kChain);
  for (int i = 0; i < kChain; ++i) {
    ASSERT_TRUE(results.at(i).result.transport_status.ok())
        << results.at(i).result.transport_status;
    EXPECT_EQ(results.at(i).result.response.body, absl::StrCat("echo:", i));
  }
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(max_depth, 1) << "a nested Send() ran its callback inline";
  EXPECT_EQ(server.connections_accepted(), 1);
}

TEST(CurlHttpClientTest, ManyConcurrentRequestsFromManyThreadsAllComplete) {
  LoopbackHttpServer server(Echo);
  CurlHttpClientOptions options;
  options.max_in_flight = 16;  // So most of the 200 wait in the client's queue.
  auto client = MakeClient(options);
  Completions completions;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const int key = t * kPerThread + i;
        HttpRequest request = Request("POST", server.Url("/many"));
        request.body = absl::StrCat("request-", key);
        client->Send(std::move(request), completions.Expect(key));
      }
    });
  }
  for (std::thread& sender : senders) sender.join();
  const auto results = completions.WaitFor(kThreads * kPerThread);
  ASSERT_EQ(results.size(), static_cast<size_t>(kThreads * kPerThread));
  for (const auto& [key, entry] : results) {
    ASSERT_TRUE(entry.result.transport_status.ok()) << entry.result.transport_status;
    EXPECT_EQ(entry.result.response.body, absl::StrCat("echo:request-", key));
  }
  EXPECT_LE(server.connections_accepted(), 16);
  const CurlHttpClientStats stats = client->Stats();
  EXPECT_EQ(stats.queued, 0u);
  EXPECT_EQ(stats.in_flight, 0u);
  EXPECT_EQ(stats.rejected_queue_full, 0u);
}

TEST(CurlHttpClientTest, DeadlineExceededAgainstAStallingServer) {
  LoopbackHttpServer server(Hold);
  auto client = MakeClient();
  Completions completions;
  client->Send(Request("GET", server.Url("/stall"), absl::Milliseconds(200)),
               completions.Expect(0));
  const HttpResult result = completions.WaitForOne(0);
  EXPECT_EQ(result.transport_status.code(), absl::StatusCode::kDeadlineExceeded)
      << result.transport_status;
  EXPECT_TRUE(result.request_may_have_been_sent);
  EXPECT_GE(result.elapsed, absl::Milliseconds(190));
  EXPECT_LT(result.elapsed, absl::Seconds(2));
}

// On a reused connection libcurl reports no connect time; a stall there must still read as the
// deadline, not as a connect timeout.
TEST(CurlHttpClientTest, DeadlineOnAReusedConnectionIsDeadlineExceeded) {
  LoopbackHttpServer server([](const ReceivedRequest& request) {
    return request.target == "/stall" ? Hold(request) : Echo(request);
  });
  CurlHttpClientOptions options;
  options.connect_timeout = absl::Milliseconds(100);  // Shorter than the deadline below.
  auto client = MakeClient(options);
  Completions completions;
  client->Send(Request("GET", server.Url("/warm")), completions.Expect(0));
  ASSERT_TRUE(completions.WaitForOne(0).transport_status.ok());
  client->Send(Request("GET", server.Url("/stall"), absl::Milliseconds(300)),
               completions.Expect(1));
  const HttpResult result = completions.WaitForOne(1);
  EXPECT_EQ(result.transport_status.code(), absl::StatusCode::kDeadlineExceeded)
      << result.transport_status;
  EXPECT_TRUE(result.request_may_have_been_sent);
  EXPECT_EQ(server.connections_accepted(), 1);
}

// Characterises the known limitation in curl_http_client.h, so that a libcurl upgrade that
// changes it is noticed: a request whose reused connection closes without a response is sent
// again by libcurl on a new connection.
TEST(CurlHttpClientTest, LibcurlResendsOnceWhenAReusedConnectionDiesWithoutAResponse) {
  std::atomic<int> drops{0};
  LoopbackHttpServer server([&drops](const ReceivedRequest& request) {
    ScriptedReply reply = Echo(request);
    if (request.target == "/drop" && drops++ == 0) {
      reply.kind = ScriptedReply::Kind::kCloseWithoutReply;
    }
    return reply;
  });
  auto client = MakeClient();
  Completions completions;
  client->Send(Request("POST", server.Url("/warm")), completions.Expect(0));
  ASSERT_TRUE(completions.WaitForOne(0).transport_status.ok());
  HttpRequest request = Request("POST", server.Url("/drop"));
  request.body = "once?";
  client->Send(std::move(request), completions.Expect(1));
  const HttpResult result = completions.WaitForOne(1);
  EXPECT_TRUE(result.transport_status.ok()) << result.transport_status;
  const std::vector<ReceivedRequest> seen = server.requests();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[1].target, "/drop");
  EXPECT_EQ(seen[1].connection, 1);
  EXPECT_EQ(seen[2].target, "/drop");
  EXPECT_EQ(seen[2].connection, 2);
}

// A body source that hands out at most `piece` bytes a read and can be told to fail.
class PieceBodySource final : public HttpBodySource {
 public:
  PieceBodySource(std::string data, size_t piece, int64_t fail_at = -1)
      : data_(std::move(data)), piece_(piece), fail_at_(fail_at) {}
  int64_t size() const override { return static_cast<int64_t>(data_.size()); }
  absl::StatusOr<size_t> ReadAt(int64_t offset, char* buffer, size_t length) const override {
    reads_.fetch_add(1);
    if (fail_at_ >= 0 && offset >= fail_at_) return absl::InternalError("disk on fire");
    const size_t n = std::min({length, piece_, data_.size() - static_cast<size_t>(offset)});
    std::copy_n(data_.data() + offset, n, buffer);
    return n;
  }
  int reads() const { return reads_.load(); }

 private:
  const std::string data_;
  const size_t piece_;
  const int64_t fail_at_;
  mutable std::atomic<int> reads_{0};
};

std::string PatternBytes(size_t n) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
  return out;
}

TEST(CurlHttpClientTest, StreamsABodySourceExactlyWithItsContentLength) {
  LoopbackHttpServer server(Echo);
  auto client = MakeClient();
  Completions completions;
  const std::string data = PatternBytes(3 * 1024 * 1024 + 17);  // Many read callbacks.
  auto source = std::make_shared<PieceBodySource>(data, 50'000);
  HttpRequest request = Request("POST", server.Url("/upload"));
  request.headers = {{"Content-Type", "application/octet-stream"}};
  request.body_source = source;
  client->Send(std::move(request), completions.Expect(0));
  const HttpResult result = completions.WaitForOne(0);
  ASSERT_TRUE(result.transport_status.ok()) << result.transport_status;
  const std::vector<ReceivedRequest> seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_TRUE(seen[0].body == data) << "body differs (" << seen[0].body.size() << " bytes)";
  EXPECT_EQ(WithoutTransportHeaders(seen[0].headers),
            (HttpHeaders{{"Content-Type", "application/octet-stream"}}));
  bool has_length = false;
  for (const auto& [name, value] : seen[0].headers) {
    EXPECT_NE(name, "Transfer-Encoding");
    EXPECT_NE(name, "Expect");
    if (name == "Content-Length") {
      has_length = true;
      EXPECT_EQ(value, absl::StrCat(data.size()));
    }
  }
  EXPECT_TRUE(has_length);
  EXPECT_GT(source->reads(), 10);
}

TEST(CurlHttpClientTest, StreamsAMultipartFileFromDisk) {
  LoopbackHttpServer server(Echo);
  auto client = MakeClient();
  Completions completions;
  char path[] = "/tmp/upgw-body-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::unlink(path);
  const std::string data = PatternBytes(200'000);
  ASSERT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
  auto file = FileBodySource::Adopt(fd);
  ASSERT_TRUE(file.ok()) << file.status();
  MultipartBody body =
      MakeMultipartFileBody("file", "a.bin", "application/octet-stream", *file, "BOUNDARY");
  HttpRequest request = Request("POST", server.Url("/upload"));
  request.headers = {{"Content-Type", body.content_type}};
  request.body_source = body.source;
  client->Send(std::move(request), completions.Expect(0));
  ASSERT_TRUE(completions.WaitForOne(0).transport_status.ok());
  const std::vector<ReceivedRequest> seen = server.requests();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_TRUE(seen[0].body ==
              absl::StrCat("--BOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; "
                           "filename=\"a.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                           data, "\r\n--BOUNDARY--\r\n"));
}

// libcurl's resend on a fresh connection (see the test above) rewinds a streamed body and
// sends it whole again.
TEST(CurlHttpClientTest, ResendRewindsABodySource) {
  std::atomic<int> drops{0};
  LoopbackHttpServer server([&drops](const ReceivedRequest& request) {
    ScriptedReply reply = Echo(request);
    if (request.target == "/drop" && drops++ == 0) {
      reply.kind = ScriptedReply::Kind::kCloseWithoutReply;
    }
    return reply;
  });
  auto client = MakeClient();
  Completions completions;
  client->Send(Request("POST", server.Url("/warm")), completions.Expect(0));
  ASSERT_TRUE(completions.WaitForOne(0).transport_status.ok());
  const std::string data = PatternBytes(100'000);
  HttpRequest request = Request("POST", server.Url("/drop"));
  request.body_source = std::make_shared<PieceBodySource>(data, 7'000);
  client->Send(std::move(request), completions.Expect(1));
  const HttpResult result = completions.WaitForOne(1);
  EXPECT_TRUE(result.transport_status.ok()) << result.transport_status;
  const std::vector<ReceivedRequest> seen = server.requests();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_TRUE(seen[1].body == data);
  EXPECT_TRUE(seen[2].body == data);
  EXPECT_EQ(seen[2].connection, 2);
}

TEST(CurlHttpClientTest, BodySourceReadFailureIsInternalAndNamesIt) {
  LoopbackHttpServer server(Echo);
  auto client = MakeClient();
  Completions completions;
  HttpRequest request = Request("POST", server.Url("/upload"));
  request.body_source = std::make_shared<PieceBodySource>(PatternBytes(500'000), 64'000, 100'000);
  client->Send(std::move(request), completions.Expect(0));
  const HttpResult result = completions.WaitForOne(0);
  EXPECT_EQ(result.transport_status.code(), absl::StatusCode::kInternal) << result.transport_status;
  EXPECT_THAT(result.transport_status.message(), HasSubstr("reading the request body failed"));
  EXPECT_THAT(result.transport_status.message(), HasSubstr("disk on fire"));
  EXPECT_THAT(result.transport_status.message(), Not(HasSubstr("/upload")));
}

TEST(CurlHttpClientTest, BodyAndBodySourceTogetherAreInvalidArgument) {
  LoopbackHttpServer server(Echo);
  auto client = MakeClient();
  Completions completions;
  HttpRequest request = Request("POST", server.Url("/upload"));
  request.body = "x";
  request.body_source = std::make_shared<StringBodySource>("y");
  client->Send(std::move(request), completions.Expect(0));
  const HttpResult result = completions.WaitForOne(0);
  EXPECT_EQ(result.transport_status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(result.request_may_have_been_sent);
  EXPECT_EQ(server.connections_accepted(), 0);
}

TEST(CurlHttpClientTest, AlreadyExpiredDeadlineIsNeverSent) {
  LoopbackHttpServer server(Echo);
  auto client = MakeClient();
  Completions completions;
  HttpRequest past = Request("POST", server.Url("/late"));
  past.deadline = absl::Now() - absl::Seconds(1);
  HttpRequest unset = Request("POST", server.Url("/late"));
  unset.deadline = HttpRequest{}.deadline;  // The default: no deadline given.
  client->Send(std::move(past), completions.Expect(0));
  client->Send(std::move(unset), completions.Expect(1));
  for (const auto& [key, entry] : completions.WaitFor(2)) {
    EXPECT_EQ(entry.result.transport_status.code(), absl::StatusCode::kDeadlineExceeded);
    EXPECT_FALSE(entry.result.request_may_have_been_sent);
  }
  EXPECT_EQ(server.connections_accepted(), 0);
}

TEST(CurlHttpClientTest, ConnectionRefusedIsUnavailableAndNotSent) {
  RefusingPort refusing;
  auto client = MakeClient();
  Completions completions;
  client->Send(Request("POST", absl::StrCat("http://127.0.0.1:", refusing.port(), "/x")),
               completions.Expect(0));
  const HttpResult result = completions.WaitForOne(0);
  EXPECT_EQ(result.transport_status.code(), absl::StatusCode::kUnavailable)
      << result.transport_status;
  EXPECT_FALSE(result.request_may_have_been_sent);
  EXPECT_TRUE(result.attempted);  // Refused by the upstream's host: a fact about the upstream.
  EXPECT_THAT(result.transport_status.message(), HasSubstr("could not connect"));
}

TEST(CurlHttpClientTest, ConnectTimeoutIsUnavailableAndNotSent) {
  BlackholePort blackhole;
  CurlHttpClientOptions options;
  options.connect_timeout = absl::Milliseconds(100);
  auto client = MakeClient(options);
  Completions completions;
  client->Send(Request("POST", absl::StrCat("http://127.0.0.1:", blackhole.port(), "/")),
               completions.Expect(0));
  const HttpResult result = completions.WaitForOne(0);
  EXPECT_EQ(result.transport_status.code(), absl::StatusCode::kUnavailable)
      << result.transport_status;
  EXPECT_THAT(result.transport_status.message(), HasSubstr("connecting timed out"));
  EXPECT_FALSE(result.request_may_have_been_sent);
  EXPECT_LT(result.elapsed, absl::Seconds(2));
}

TEST(CurlHttpClientTest, DeadlineWhileConnectingIsDeadlineExceededAndNotSent) {
  BlackholePort blackhole;
  auto client = MakeClient();  // connect_timeout 5 s: the deadline comes first.
  Completions completions;
  client->Send(Request("POST", absl::StrCat("http://127.0.0.1:", blackhole.port(), "/"),
                       absl::Milliseconds(150)),
               completions.Expect(0));
  const HttpResult result = completions.WaitForOne(0);
  EXPECT_EQ(result.transport_status.code(), absl::StatusCode::kDeadlineExceeded)
      << result.transport_status;
  EXPECT_FALSE(result.request_may_have_been_sent);
}

TEST(CurlHttpClientTest, ServerClosingTheConnectionIsUnavailableAndMaybeSent) {
  LoopbackHttpServer server([](const ReceivedRequest& request) {
    ScriptedReply reply;
    reply.kind = request.target == "/mid" ? ScriptedReply::Kind::kCloseMidBody
                                          : ScriptedReply::Kind::kCloseWithoutReply;
    reply.body = std::string(1000, 'x');
    return reply;
  });
  auto client = MakeClient();
  Completions completions;
  client->Send(Request("POST", server.Url("/mid")), completions.Expect(0));
  client->Send(Request("POST", server.Url("/nothing")), completions.Expect(1));
  const auto results = completions.WaitFor(2);
  for (const auto& [key, entry] : results) {
    EXPECT_EQ(entry.result.transport_status.code(), absl::StatusCode::kUnavailable)
        << entry.result.transport_status;
    EXPECT_TRUE(entry.result.request_may_have_been_sent);
  }
  EXPECT_THAT(results.at(0).result.transport_status.message(), HasSubstr("middle of the response"));
  EXPECT_THAT(results.at(1).result.transport_status.message(), HasSubstr("without answering"));
}

TEST(CurlHttpClientTest, ResponseOverTheSizeCapIsUnavailable) {
  LoopbackHttpServer server([](const ReceivedRequest& request) {
    ScriptedReply reply;
    reply.body = std::string(request.target == "/small" ? 512 : 4096, 'b');
    reply.close_delimited = request.target == "/streamed";
    return reply;
  });
  CurlHttpClientOptions options;
  options.max_response_bytes = 1024;
  auto client = MakeClient(options);
  Completions completions;
  client->Send(Request("GET", server.Url("/announced")), completions.Expect(0));
  client->Send(Request("GET", server.Url("/streamed")), completions.Expect(1));
  client->Send(Request("GET", server.Url("/small")), completions.Expect(2));
  const auto results = completions.WaitFor(3);
  for (int key : {0, 1}) {
    const HttpResult& result = results.at(key).result;
    EXPECT_EQ(result.transport_status.code(), absl::StatusCode::kUnavailable)
        << result.transport_status;
    EXPECT_THAT(result.transport_status.message(), HasSubstr("larger than the limit of 1024"));
  }
  ASSERT_TRUE(results.at(2).result.transport_status.ok()) << results.at(2).result.transport_status;
  EXPECT_EQ(results.at(2).result.response.body.size(), 512u);
}

TEST(CurlHttpClientTest, FullQueueIsResourceExhaustedNotSentAndDeliveredAsynchronously) {
  LoopbackHttpServer server(Hold);
  CurlHttpClientOptions options;
  options.max_in_flight = 1;
  options.max_queued = 1;
  auto client = MakeClient(options);
  Completions completions;
  client->Send(Request("GET", server.Url("/a")), completions.Expect(0));
  ASSERT_TRUE(server.WaitForRequests(1, kWaitLimit));                     // A is in flight.
  client->Send(Request("GET", server.Url("/b")), completions.Expect(1));  // B waits.
  client->Send(Request("GET", server.Url("/c")), completions.Expect(2));  // C is refused.
  const HttpResult rejected = completions.WaitForOne(2);
  // Delivered from the event thread, not from inside Send() on this one.
  EXPECT_NE(completions.WaitFor(1).at(2).thread, std::this_thread::get_id());
  EXPECT_EQ(rejected.transport_status.code(), absl::StatusCode::kResourceExhausted)
      << rejected.transport_status;
  EXPECT_FALSE(rejected.request_may_have_been_sent);
  EXPECT_FALSE(rejected.attempted);
  EXPECT_EQ(completions.size(), 1u);  // A and B are unaffected.
  EXPECT_EQ(client->Stats().rejected_queue_full, 1u);

  server.Release();
  const auto results = completions.WaitFor(3);
  EXPECT_TRUE(results.at(0).result.transport_status.ok()) << results.at(0).result.transport_status;
  EXPECT_TRUE(results.at(1).result.transport_status.ok()) << results.at(1).result.transport_status;
  EXPECT_EQ(server.requests().size(), 2u);
}

// A short callback with a small answer runs on the event thread ("upgw-http"); a callback not
// marked short, or one whose answer is larger than inline_completion_max_bytes, never does.
TEST(CurlHttpClientTest, ShortCallbacksWithSmallAnswersRunOnTheEventThread) {
  LoopbackHttpServer server(Echo);
  CurlHttpClientOptions options;
  options.inline_completion_max_bytes = 32;
  auto client = MakeClient(options);
  std::mutex mu;
  std::condition_variable cv;
  std::map<int, std::string> thread_names;
  auto record = [&](int key) {
    return [&, key](HttpResult result) {
      EXPECT_TRUE(result.transport_status.ok()) << result.transport_status;
      char name[16] = {};
      pthread_getname_np(pthread_self(), name, sizeof(name));
      std::lock_guard<std::mutex> lock(mu);
      thread_names[key] = name;
      cv.notify_all();
    };
  };
  HttpRequest small_short = Request("POST", server.Url("/a"));
  small_short.body = "x";  // Echoed as "echo:x": 6 bytes.
  small_short.short_callback = true;
  HttpRequest small_long = Request("POST", server.Url("/b"));
  small_long.body = "x";
  HttpRequest large_short = Request("POST", server.Url("/c"));
  large_short.body = std::string(100, 'y');  // 105 bytes back, over the 32-byte cap.
  large_short.short_callback = true;
  client->Send(std::move(small_short), record(0));
  client->Send(std::move(small_long), record(1));
  client->Send(std::move(large_short), record(2));
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, absl::ToChronoMilliseconds(kWaitLimit),
                          [&] { return thread_names.size() == 3; }));
  EXPECT_EQ(thread_names[0], "upgw-http");
  EXPECT_EQ(thread_names[1], "upgw-http-done");
  EXPECT_EQ(thread_names[2], "upgw-http-done");
  lock.unlock();
  EXPECT_EQ(client->Stats().completed_inline, 1u);
}

// A short callback that sends the next request from the event thread (a retry does) is served.
TEST(CurlHttpClientTest, ShortCallbackMaySendFromTheEventThread) {
  LoopbackHttpServer server(Echo);
  auto client = MakeClient();
  Completions completions;
  HttpRequest first = Request("GET", server.Url("/first"));
  first.short_callback = true;
  client->Send(std::move(first), [&](HttpResult result) {
    EXPECT_TRUE(result.transport_status.ok()) << result.transport_status;
    HttpRequest second = Request("GET", server.Url("/second"));
    second.short_callback = true;
    client->Send(std::move(second), completions.Expect(0));
  });
  const HttpResult second = completions.WaitForOne(0);
  EXPECT_TRUE(second.transport_status.ok()) << second.transport_status;
  EXPECT_EQ(server.requests().size(), 2u);
}

TEST(CurlHttpClientTest, StatsReportQueuedAndInFlight) {
  LoopbackHttpServer server(Hold);
  CurlHttpClientOptions options;
  options.max_in_flight = 1;
  auto client = MakeClient(options);
  Completions completions;
  for (int i = 0; i < 3; ++i) client->Send(Request("GET", server.Url("/s")), completions.Expect(i));
  EXPECT_TRUE(Eventually([&] {
    const CurlHttpClientStats stats = client->Stats();
    return stats.in_flight == 1 && stats.queued == 2;
  }));
  server.Release();
  completions.WaitFor(3);
  const CurlHttpClientStats stats = client->Stats();
  EXPECT_EQ(stats.in_flight, 0u);
  EXPECT_EQ(stats.queued, 0u);
}

TEST(CurlHttpClientTest, QueuedRequestWhoseDeadlinePassesIsNotSent) {
  LoopbackHttpServer server(Hold);
  CurlHttpClientOptions options;
  options.max_in_flight = 1;
  auto client = MakeClient(options);
  Completions completions;
  client->Send(Request("GET", server.Url("/first")), completions.Expect(0));
  ASSERT_TRUE(server.WaitForRequests(1, kWaitLimit));
  client->Send(Request("GET", server.Url("/second"), absl::Milliseconds(200)),
               completions.Expect(1));
  const HttpResult expired = completions.WaitForOne(1);
  EXPECT_EQ(expired.transport_status.code(), absl::StatusCode::kDeadlineExceeded)
      << expired.transport_status;
  EXPECT_FALSE(expired.request_may_have_been_sent);
  EXPECT_LT(expired.elapsed, absl::Seconds(2));
  server.Release();
  EXPECT_TRUE(completions.WaitForOne(0).transport_status.ok());
  EXPECT_EQ(server.requests().size(), 1u);
}

// Answers "/slow" after 1 s, holds "/hold" until Release(), answers anything else at once.
ScriptedReply SlowHoldOrQuick(const ReceivedRequest& request) {
  if (request.target == "/slow") std::this_thread::sleep_for(std::chrono::seconds(1));
  if (request.target == "/hold") return Hold(request);
  return Echo(request);
}

// Fills `client`'s LatencyEstimate with answers that each took at least 1 s.
void TeachThatAnswersTakeASecond(CurlHttpClient& client, LoopbackHttpServer& server, size_t slots) {
  Completions completions;
  for (size_t i = 0; i < slots; ++i) {
    client.Send(Request("GET", server.Url("/slow"), absl::Seconds(10)),
                completions.Expect(static_cast<int>(i)));
  }
  for (const auto& [key, entry] : completions.WaitFor(slots)) {
    EXPECT_TRUE(entry.result.transport_status.ok()) << key << entry.result.transport_status;
  }
  EXPECT_GE(client.Stats().typical_latency, absl::Seconds(1));
}

TEST(CurlHttpClientTest, QueuedRequestThatCannotBeAnsweredInTimeIsRefusedUnsent) {
  LoopbackHttpServer server(SlowHoldOrQuick);
  CurlHttpClientOptions options;
  options.max_in_flight = 16;  // LatencyEstimate::kMinSamples answers at once.
  auto client = MakeClient(options);
  TeachThatAnswersTakeASecond(*client, server, options.max_in_flight);

  Completions completions;
  for (int i = 0; i < 16; ++i) {
    client->Send(Request("GET", server.Url("/hold")), completions.Expect(i));
  }
  ASSERT_TRUE(server.WaitForRequests(32, kWaitLimit));
  // Every slot is busy. With 900 ms left, less than the typical second an answer takes, this
  // one cannot be answered in time: refused from the queue, never sent.
  client->Send(Request("GET", server.Url("/late"), absl::Milliseconds(900)),
               completions.Expect(100));
  // With 10 s left, this one waits for a slot and is sent.
  client->Send(Request("GET", server.Url("/patient"), absl::Seconds(10)), completions.Expect(101));
  const HttpResult late = completions.WaitForOne(100);
  EXPECT_EQ(late.transport_status.code(), absl::StatusCode::kDeadlineExceeded)
      << late.transport_status;
  EXPECT_FALSE(late.request_may_have_been_sent);
  EXPECT_THAT(late.transport_status.message(), HasSubstr("typical answer time"));
  EXPECT_THAT(late.transport_status.message(), HasSubstr("not sent"));
  EXPECT_FALSE(late.attempted);
  EXPECT_EQ(client->Stats().refused_too_late, 1u);
  EXPECT_EQ(client->Stats().queued, 1u);  // "/patient" still waits.

  server.Release();
  const HttpResult patient = completions.WaitForOne(101);
  EXPECT_TRUE(patient.transport_status.ok()) << patient.transport_status;
  completions.WaitFor(18);
  for (const ReceivedRequest& request : server.requests()) EXPECT_NE(request.target, "/late");
  EXPECT_EQ(client->Stats().refused_too_late, 1u);
}

TEST(CurlHttpClientTest, RequestFindingAFreeSlotIsSentWhateverTheEstimate) {
  LoopbackHttpServer server(SlowHoldOrQuick);
  CurlHttpClientOptions options;
  options.max_in_flight = 16;
  auto client = MakeClient(options);
  TeachThatAnswersTakeASecond(*client, server, options.max_in_flight);
  // 900 ms is less than the typical answer time, but nothing competes for the slots: it is
  // sent (and the estimate learns that answers got faster).
  Completions completions;
  client->Send(Request("GET", server.Url("/quick"), absl::Milliseconds(900)),
               completions.Expect(0));
  const HttpResult quick = completions.WaitForOne(0);
  EXPECT_TRUE(quick.transport_status.ok()) << quick.transport_status;
  EXPECT_EQ(client->Stats().refused_too_late, 0u);
}

TEST(CurlHttpClientTest, GarbageStatusLineIsAnUnavailableReplyNotHttp) {
  for (const std::string status_line : {"garbage", "HTTP/1.1 2OO OK", "HTTP/7.1 200 OK"}) {
    LoopbackHttpServer server([&](const ReceivedRequest& request) {
      ScriptedReply reply = Echo(request);
      reply.status_line = status_line;
      return reply;
    });
    auto client = MakeClient();
    Completions completions;
    client->Send(Request("POST", server.Url("/v1/identify")), completions.Expect(0));
    const HttpResult result = completions.WaitForOne(0);
    EXPECT_EQ(result.transport_status.code(), absl::StatusCode::kUnavailable)
        << status_line << ": " << result.transport_status;
    EXPECT_TRUE(result.reply_not_http) << status_line;
    EXPECT_TRUE(result.request_may_have_been_sent) << status_line;
    EXPECT_TRUE(result.attempted) << status_line;
    EXPECT_THAT(result.transport_status.message(), HasSubstr("not valid HTTP")) << status_line;
    EXPECT_THAT(result.transport_status.message(), Not(HasSubstr("URL"))) << status_line;
  }
}

TEST(CurlHttpClientTest, UnsupportedSchemeIsStillABadUrl) {
  auto client = MakeClient();
  Completions completions;
  client->Send(Request("GET", "ftp://127.0.0.1:1/x"), completions.Expect(0));
  const HttpResult result = completions.WaitForOne(0);
  EXPECT_EQ(result.transport_status.code(), absl::StatusCode::kInvalidArgument)
      << result.transport_status;
  EXPECT_FALSE(result.reply_not_http);
  EXPECT_FALSE(result.request_may_have_been_sent);
}

TEST(CurlHttpClientTest, TransfersWaitingForAConnectionStillHonourTheirDeadline) {
  LoopbackHttpServer server(Hold);
  CurlHttpClientOptions options;
  options.max_in_flight = 4;
  options.max_connections = 1;  // The other three wait inside libcurl for the connection.
  auto client = MakeClient(options);
  Completions completions;
  client->Send(Request("GET", server.Url("/holder")), completions.Expect(0));
  ASSERT_TRUE(server.WaitForRequests(1, kWaitLimit));
  for (int i = 1; i <= 3; ++i) {
    client->Send(Request("GET", server.Url("/parked"), absl::Milliseconds(200)),
                 completions.Expect(i));
  }
  for (int i = 1; i <= 3; ++i) {
    const HttpResult result = completions.WaitForOne(i);
    EXPECT_EQ(result.transport_status.code(), absl::StatusCode::kDeadlineExceeded)
        << result.transport_status;
    EXPECT_FALSE(result.request_may_have_been_sent);
    EXPECT_LT(result.elapsed, absl::Seconds(2));
  }
  server.Release();
  EXPECT_TRUE(completions.WaitForOne(0).transport_status.ok());
  EXPECT_EQ(server.connections_accepted(), 1);
}

TEST(CurlHttpClientTest, ShutdownCancelsQueuedAndInFlightRequests) {
  LoopbackHttpServer server(Hold);
  CurlHttpClientOptions options;
  options.max_in_flight = 2;
  auto client = MakeClient(options);
  Completions completions;
  for (int i = 0; i < 5; ++i)
    client->Send(Request("POST", server.Url("/s")), completions.Expect(i));
  ASSERT_TRUE(server.WaitForRequests(2, kWaitLimit));
  client->Shutdown();
  const auto results = completions.WaitFor(5);  // All ran before Shutdown() returned.
  int maybe_sent = 0;
  for (const auto& [key, entry] : results) {
    EXPECT_EQ(entry.result.transport_status.code(), absl::StatusCode::kCancelled)
        << entry.result.transport_status;
    maybe_sent += entry.result.request_may_have_been_sent;
  }
  EXPECT_EQ(maybe_sent, 2);  // The two in flight; the three queued certainly not.
  EXPECT_EQ(client->Stats().in_flight, 0u);
  EXPECT_EQ(client->Stats().queued, 0u);

  // After Shutdown() there is no event thread: the documented exception runs `done` inline.
  client->Send(Request("GET", server.Url("/after")), completions.Expect(5));
  EXPECT_EQ(completions.size(), 6u);
  const HttpResult after = completions.WaitForOne(5);
  EXPECT_EQ(after.transport_status.code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(after.request_may_have_been_sent);
  client->Shutdown();  // Idempotent.
}

TEST(CurlHttpClientTest, DestructionCancelsInFlightRequests) {
  LoopbackHttpServer server(Hold);
  Completions completions;
  {
    auto client = MakeClient();
    client->Send(Request("GET", server.Url("/s")), completions.Expect(0));
    ASSERT_TRUE(server.WaitForRequests(1, kWaitLimit));
  }
  ASSERT_EQ(completions.size(), 1u);
  EXPECT_EQ(completions.WaitForOne(0).transport_status.code(), absl::StatusCode::kCancelled);
}

TEST(CurlHttpClientTest, ABusyCallbackHoldsUpNeitherTransfersNorOtherCallbacks) {
  LoopbackHttpServer server(Echo);
  auto client = MakeClient();
  Completions completions;
  // The first callback sends a second request and waits for its answer: with callbacks run on
  // the thread that drives the network (or on one thread only) that answer could never come.
  std::mutex mu;
  std::condition_variable cv;
  bool second_done = false;
  client->Send(Request("GET", server.Url("/first")),
               [&, done = completions.Expect(0)](HttpResult result) mutable {
                 auto inner = completions.Expect(1);
                 client->Send(Request("GET", server.Url("/second")),
                              [&, inner = std::move(inner)](HttpResult second) mutable {
                                std::move(inner)(std::move(second));
                                std::lock_guard<std::mutex> lock(mu);
                                second_done = true;
                                cv.notify_all();
                              });
                 std::unique_lock<std::mutex> lock(mu);
                 EXPECT_TRUE(cv.wait_for(lock, absl::ToChronoMilliseconds(kWaitLimit), [&] {
                   return second_done;
                 })) << "the second answer waited for the first callback";
                 lock.unlock();
                 std::move(done)(std::move(result));
               });
  const auto results = completions.WaitFor(2);
  EXPECT_TRUE(results.at(0).result.transport_status.ok());
  EXPECT_TRUE(results.at(1).result.transport_status.ok());
  EXPECT_NE(results.at(0).thread, results.at(1).thread);
}

TEST(CurlHttpClientTest, ShutdownAndSendFromACallbackDoNotDeadlock) {
  LoopbackHttpServer server(Echo);
  auto client = MakeClient();
  Completions completions;
  client->Send(Request("GET", server.Url("/first")),
               [&, done = completions.Expect(0)](HttpResult result) mutable {
                 client->Shutdown();  // Cannot join from here: only starts the shutdown.
                 client->Send(Request("GET", server.Url("/second")), completions.Expect(1));
                 std::move(done)(std::move(result));
               });
  const auto results = completions.WaitFor(2);
  EXPECT_TRUE(results.at(0).result.transport_status.ok());
  EXPECT_EQ(results.at(1).result.transport_status.code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(results.at(1).result.request_may_have_been_sent);
  client.reset();  // Joins.
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(CurlHttpClientTest, TlsHandshakeFailureIsUnavailableAndNotSent) {
  LoopbackHttpServer server(Echo);  // Plain HTTP: answers a ClientHello with "400" and closes.
  auto client = MakeClient();
  Completions completions;
  client->Send(Request("POST", absl::StrCat("https://127.0.0.1:", server.port(), "/")),
               completions.Expect(0));
  const HttpResult result = completions.WaitForOne(0);
  EXPECT_EQ(result.transport_status.code(), absl::StatusCode::kUnavailable)
      << result.transport_status;
  EXPECT_THAT(result.transport_status.message(), HasSubstr("TLS handshake failed"));
  EXPECT_FALSE(result.request_may_have_been_sent);
  EXPECT_TRUE(server.requests().empty());
}

TEST(CurlHttpClientTest, MalformedRequestsAreInvalidArgumentAndNotSent) {
  LoopbackHttpServer server(Echo);
  auto client = MakeClient();
  Completions completions;
  HttpRequest injected = Request("GET", server.Url("/"));
  injected.headers = {{"X-Ok", "fine"}, {"X-Bad", "v\r\nX-Injected: 1"}};
  HttpRequest bad_name = Request("GET", server.Url("/"));
  bad_name.headers = {{"Bad Name", "v"}};
  HttpRequest bad_method = Request("GE T", server.Url("/"));
  HttpRequest spaced_url = Request("GET", server.Url("/a b"));
  HttpRequest ftp = Request("GET", "ftp://127.0.0.1/file");
  client->Send(std::move(injected), completions.Expect(0));
  client->Send(std::move(bad_name), completions.Expect(1));
  client->Send(std::move(bad_method), completions.Expect(2));
  client->Send(std::move(spaced_url), completions.Expect(3));
  client->Send(std::move(ftp), completions.Expect(4));
  for (const auto& [key, entry] : completions.WaitFor(5)) {
    EXPECT_EQ(entry.result.transport_status.code(), absl::StatusCode::kInvalidArgument)
        << key << ": " << entry.result.transport_status;
    EXPECT_FALSE(entry.result.request_may_have_been_sent);
    EXPECT_THAT(std::string(entry.result.transport_status.message()), Not(HasSubstr("Injected")));
  }
  EXPECT_EQ(server.connections_accepted(), 0);
}

// The Authorization header carries the Userpilot API key: no failure may echo it.
TEST(CurlHttpClientTest, ErrorMessagesNeverContainTheApiKeyOrPath) {
  constexpr absl::string_view kKey = "upk_live_5f3c9a7e1b2d4068";
  LoopbackHttpServer server([](const ReceivedRequest& request) {
    ScriptedReply reply;
    if (absl::StartsWith(request.target, "/stall")) {
      reply.kind = ScriptedReply::Kind::kHoldThenRespond;
    } else if (absl::StartsWith(request.target, "/mid")) {
      reply.kind = ScriptedReply::Kind::kCloseMidBody;
    } else if (absl::StartsWith(request.target, "/none")) {
      reply.kind = ScriptedReply::Kind::kCloseWithoutReply;
    }
    reply.body = std::string(4096, 'z');
    return reply;
  });
  RefusingPort refusing;
  CurlHttpClientOptions options;
  options.max_response_bytes = 1024;
  options.max_in_flight = 8;
  options.max_queued = 1;
  auto client = MakeClient(options);
  const std::string query = absl::StrCat("?user=", kKey);
  const std::vector<std::string> urls = {
      absl::StrCat("http://127.0.0.1:", refusing.port(), "/refused", query),
      server.Url(absl::StrCat("/stall", query)),
      server.Url(absl::StrCat("/mid", query)),
      server.Url(absl::StrCat("/none", query)),
      server.Url(absl::StrCat("/big", query)),
      absl::StrCat("https://127.0.0.1:", server.port(), "/tls", query),
      absl::StrCat("ftp://127.0.0.1/ftp", query),
  };
  Completions completions;
  int key = 0;
  auto with_key = [&](std::string url, absl::Duration timeout) {
    HttpRequest request = Request("POST", std::move(url), timeout);
    request.headers = {{"Authorization", absl::StrCat("Bearer ", kKey)},
                       {"X-Api-Key", std::string(kKey)},
                       {"Content-Type", "application/json"}};
    request.body = absl::StrCat("{\"key\":\"", kKey, "\"}");
    return request;
  };
  for (const std::string& url : urls) {
    // Only the stall needs a short deadline; the others get room for a slow (sanitizer) build,
    // where the first https connection's CA parsing holds the event thread for a while.
    const bool stall = absl::StrContains(url, "/stall");
    client->Send(with_key(url, stall ? absl::Milliseconds(300) : absl::Seconds(5)),
                 completions.Expect(key++));
  }
  HttpRequest injected = with_key(server.Url("/x"), absl::Seconds(5));
  injected.headers.emplace_back("X-Bad", absl::StrCat(kKey, "\r\n"));
  client->Send(std::move(injected), completions.Expect(key++));
  client->Send(with_key(server.Url("/x"), -absl::Seconds(1)), completions.Expect(key++));
  completions.WaitFor(static_cast<size_t>(key));
  // Fill every slot and the queue; one more is refused, and shutdown cancels the rest.
  const size_t seen_before = server.requests().size();
  for (int i = 0; i < 8; ++i) {
    client->Send(with_key(server.Url("/stall"), absl::Seconds(5)), completions.Expect(key++));
  }
  ASSERT_TRUE(server.WaitForRequests(seen_before + 8, kWaitLimit));
  client->Send(with_key(server.Url("/stall"), absl::Seconds(5)), completions.Expect(key++));
  client->Send(with_key(server.Url("/stall"), absl::Seconds(5)), completions.Expect(key++));
  client->Shutdown();
  std::set<absl::StatusCode> codes;
  for (const auto& [k, entry] : completions.WaitFor(static_cast<size_t>(key))) {
    const absl::Status& status = entry.result.transport_status;
    ASSERT_FALSE(status.ok()) << k;
    codes.insert(status.code());
    EXPECT_THAT(std::string(status.message()), Not(HasSubstr(kKey))) << k << ": " << status;
    EXPECT_THAT(std::string(status.message()), Not(HasSubstr("Bearer"))) << k << ": " << status;
    EXPECT_THAT(std::string(status.message()), Not(HasSubstr("user="))) << k << ": " << status;
  }
  EXPECT_EQ(codes, (std::set<absl::StatusCode>{
                       absl::StatusCode::kUnavailable, absl::StatusCode::kDeadlineExceeded,
                       absl::StatusCode::kInvalidArgument, absl::StatusCode::kResourceExhausted,
                       absl::StatusCode::kCancelled}));
}

TEST(CurlHttpClientTest, CreateRejectsBadOptions) {
  auto rejects = [](CurlHttpClientOptions options, absl::string_view what) {
    auto client = CurlHttpClient::Create(std::move(options));
    EXPECT_EQ(client.status().code(), absl::StatusCode::kInvalidArgument) << what;
    EXPECT_THAT(std::string(client.status().message()), HasSubstr(what));
  };
  CurlHttpClientOptions options;
  options.max_in_flight = 0;
  rejects(options, "max_in_flight");
  options = {};
  options.max_queued = 0;
  rejects(options, "max_queued");
  options = {};
  options.connect_timeout = absl::ZeroDuration();
  rejects(options, "connect_timeout");
  options = {};
  options.ca_file = "/nonexistent/ca.pem";
  rejects(options, "ca_file");
  options = {};
  options.user_agent = "bad\r\nX: y";
  rejects(options, "user_agent");
  options = {};
  options.max_idle_connection_age = absl::Milliseconds(10);
  rejects(options, "max_idle_connection_age");
}

}  // namespace
}  // namespace userpilot::gateway
