// MetricsServer over real HTTP on loopback (one server for the suite: destroying one takes
// about 2 s).
#include "service/metrics/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/gauge.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// GET `path` from 127.0.0.1:`port` with HTTP/1.0; the whole answer, headers included (read
// until the server closes the connection, or 10 s pass).
std::string HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval timeout{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  std::string answer;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0) {
    const std::string request = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
    if (send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size())) {
      char buffer[4096];
      ssize_t n;
      while ((n = recv(fd, buffer, sizeof(buffer), 0)) > 0) answer.append(buffer, n);
    }
  }
  close(fd);
  return answer;
}

class MetricsServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    registry_ = new std::shared_ptr<MetricsRegistry>(std::make_shared<MetricsRegistry>());
    gauge_ = &prometheus::BuildGauge()
                  .Name("test_scrapes")
                  .Help("Scrapes seen.")
                  .Register((*registry_)->registry())
                  .Add({});
    hook_ =
        new MetricsRegistry::CollectHook((*registry_)->AddCollectHook([] { gauge_->Increment(); }));
    MetricsServerOptions options;
    options.listen = "127.0.0.1:0";
    auto server = MetricsServer::Start(*registry_, options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = server->release();
  }

  static void TearDownTestSuite() {
    delete server_;  // Stops scrapes before the hook and the registry go.
    delete hook_;
    delete registry_;
  }

  static std::shared_ptr<MetricsRegistry>* registry_;
  static prometheus::Gauge* gauge_;
  static MetricsRegistry::CollectHook* hook_;
  static MetricsServer* server_;
};

std::shared_ptr<MetricsRegistry>* MetricsServerTest::registry_ = nullptr;
prometheus::Gauge* MetricsServerTest::gauge_ = nullptr;
MetricsRegistry::CollectHook* MetricsServerTest::hook_ = nullptr;
MetricsServer* MetricsServerTest::server_ = nullptr;

TEST_F(MetricsServerTest, PortZeroIsReadBack) { EXPECT_GT(server_->port(), 0); }

TEST_F(MetricsServerTest, ServesTheTextFormatRunningHooksAtEachScrape) {
  const std::string first = HttpGet(server_->port(), "/metrics");
  EXPECT_THAT(first, StartsWith("HTTP/1.1 200 OK"));
  EXPECT_THAT(first, HasSubstr("# TYPE test_scrapes gauge"));
  const double before = gauge_->Value();
  const std::string second = HttpGet(server_->port(), "/metrics");
  EXPECT_EQ(gauge_->Value(), before + 1);
  EXPECT_THAT(second, HasSubstr("test_scrapes " + std::to_string(static_cast<int>(before + 1))));
}

// A TCP connection to 127.0.0.1:`port`, optionally having sent `bytes`; closed when it goes.
class RawConnection {
 public:
  RawConnection(int port, const std::string& bytes) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    if (connected_ && !bytes.empty()) send(fd_, bytes.data(), bytes.size(), 0);
  }
  ~RawConnection() { close(fd_); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;
  bool connected() const { return connected_; }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

TEST_F(MetricsServerTest, IdleAndHalfSentConnectionsDoNotBlockAScrape) {
  // Each of these holds a civetweb worker until the request timeout: fewer than the workers.
  std::vector<std::unique_ptr<RawConnection>> held;
  for (int i = 0; i < 6; ++i) {
    held.push_back(std::make_unique<RawConnection>(server_->port(), ""));
    held.push_back(
        std::make_unique<RawConnection>(server_->port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n"));
  }
  for (const auto& connection : held) ASSERT_TRUE(connection->connected());
  // HttpGet gives up after 10 s: with civetweb's own defaults (2 workers, 30 s) this fails.
  EXPECT_THAT(HttpGet(server_->port(), "/metrics"), StartsWith("HTTP/1.1 200 OK"));
}

TEST_F(MetricsServerTest, BadOptionsAreRefused) {
  MetricsServerOptions options;
  options.listen = "127.0.0.1:0";
  options.threads = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(MetricsServer::Start(*registry_, options).status()));
  options.threads = 1;
  options.request_timeout = absl::ZeroDuration();
  EXPECT_TRUE(absl::IsInvalidArgument(MetricsServer::Start(*registry_, options).status()));
}

TEST_F(MetricsServerTest, OtherPathsAreNotFound) {
  EXPECT_THAT(HttpGet(server_->port(), "/nothing-here"), HasSubstr(" 404 "));
}

TEST_F(MetricsServerTest, PortInUseIsAClearStartUpError) {
  MetricsServerOptions options;
  options.listen = "127.0.0.1:" + std::to_string(server_->port());
  auto second = MetricsServer::Start(*registry_, options);
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(absl::IsUnavailable(second.status()));
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("--metrics_listen"));
}

TEST_F(MetricsServerTest, MalformedAddressIsAClearStartUpError) {
  MetricsServerOptions options;
  options.listen = "not an address";
  auto server = MetricsServer::Start(*registry_, options);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("not an address"));
}

}  // namespace
}  // namespace userpilot::gateway
