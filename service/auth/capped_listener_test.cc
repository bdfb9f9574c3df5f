#include "service/auth/capped_listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "service/auth/authenticator.h"
#include "service/auth/testing/test_certificates.h"
#include "service/auth/tls_credentials.h"
#include "userpilot/gateway/v1/gateway.grpc.pb.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;

// Waits for `done` under `mu`, at most a minute (a bound for broken builds, not a timing).
template <typename Predicate>
bool WaitFor(std::mutex& mu, std::condition_variable& cv, Predicate done) {
  std::unique_lock<std::mutex> lock(mu);
  return cv.wait_for(lock, std::chrono::seconds(60), done);
}

// Stands in for gRPC: keeps every connection handed over, until the test closes it.
class FakeAcceptor : public grpc::experimental::ExternalConnectionAcceptor {
 public:
  void HandleNewConnection(NewConnectionParameters* p) override {
    std::lock_guard<std::mutex> lock(mu_);
    fds_.push_back(p->fd);
    cv_.notify_all();
  }
  bool WaitForConnections(size_t n) {
    return WaitFor(mu_, cv_, [&] { return fds_.size() >= n; });
  }
  // Closes the i-th connection handed over, as gRPC does when a connection ends.
  void CloseConnection(size_t i) {
    std::lock_guard<std::mutex> lock(mu_);
    close(fds_.at(i));
  }
  ~FakeAcceptor() override {
    for (size_t i = 0; i < fds_.size(); ++i) close(fds_[i]);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int> fds_;
};

class RecordingObserver : public ConnectionObserver {
 public:
  void OnConnectionRefused(absl::string_view reason, size_t open,
                           absl::string_view error) override {
    std::lock_guard<std::mutex> lock(mu_);
    refusals_.push_back(absl::StrCat(reason, " open=", open, error.empty() ? "" : " ", error));
    cv_.notify_all();
  }
  bool WaitForRefusals(size_t n) {
    return WaitFor(mu_, cv_, [&] { return refusals_.size() >= n; });
  }
  std::vector<std::string> refusals() {
    std::lock_guard<std::mutex> lock(mu_);
    return refusals_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> refusals_;
};

// A raw TCP connection to 127.0.0.1:port. -1 on failure.
int Connect(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// True when the server reset the connection (read fails with ECONNRESET).
bool WasReset(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (poll(&p, 1, 60000) != 1) return false;
  char byte;
  return read(fd, &byte, 1) < 0 && errno == ECONNRESET;
}

std::unique_ptr<CappedListener> Listen(int max_connections, ConnectionObserver* observer,
                                       std::string address = "127.0.0.1:0") {
  CappedListenerOptions options;
  options.address = std::move(address);
  options.max_connections = max_connections;
  options.observer = observer;
  options.accept_error_backoff = absl::Milliseconds(10);
  absl::StatusOr<std::unique_ptr<CappedListener>> listener = CappedListener::Listen(options);
  EXPECT_TRUE(listener.ok()) << listener.status();
  return listener.ok() ? *std::move(listener) : nullptr;
}

TEST(CappedListenerTest, RefusesConnectionsOverTheCapUntilOneCloses) {
  RecordingObserver observer;
  FakeAcceptor acceptor;
  std::unique_ptr<CappedListener> listener = Listen(2, &observer);
  ASSERT_NE(listener, nullptr);
  EXPECT_GT(listener->port(), 0);
  listener->Start(&acceptor);

  const int a = Connect(listener->port());
  const int b = Connect(listener->port());
  ASSERT_TRUE(acceptor.WaitForConnections(2));
  const int c = Connect(listener->port());
  ASSERT_GE(c, 0);
  ASSERT_TRUE(observer.WaitForRefusals(1));
  EXPECT_TRUE(WasReset(c));
  EXPECT_EQ(observer.refusals().front(), "limit open=2");
  CappedListener::Stats stats = listener->stats();
  EXPECT_EQ(stats.accepted, 2u);
  EXPECT_EQ(stats.refused_limit, 1u);
  EXPECT_EQ(stats.open, 2u);

  // gRPC closes the first connection: the next one fits again.
  acceptor.CloseConnection(0);
  const int d = Connect(listener->port());
  ASSERT_TRUE(acceptor.WaitForConnections(3));
  stats = listener->stats();
  EXPECT_EQ(stats.accepted, 3u);
  EXPECT_EQ(stats.refused_limit, 1u);
  EXPECT_EQ(stats.open, 2u);
  for (int fd : {a, b, c, d}) close(fd);
}

TEST(CappedListenerTest, BacksOffWhenOutOfDescriptorsAndRecovers) {
#ifdef __SANITIZE_ADDRESS__
  // UBSan's vptr check opens a pipe to probe memory; with no descriptor left it reports every
  // virtual call as a bad object.
  GTEST_SKIP() << "needs a process without sanitizers (they need descriptors of their own)";
#endif
  RecordingObserver observer;
  FakeAcceptor acceptor;
  std::unique_ptr<CappedListener> listener = Listen(100, &observer);
  ASSERT_NE(listener, nullptr);
  listener->Start(&acceptor);
  const int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(client, 0);

  // No descriptor left for accept(): the listener reports EMFILE and pauses.
  rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  const int spare = dup(client);  // The lowest free descriptor number, freed again below.
  ASSERT_GE(spare, 0);
  close(spare);
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(spare);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(listener->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int connected = connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  const bool refused = observer.WaitForRefusals(1);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_EQ(connected, 0);
  ASSERT_TRUE(refused);
  EXPECT_THAT(observer.refusals().front(), HasSubstr("accept_error open=0 Too many open files"));
  EXPECT_GE(listener->stats().accept_errors, 1u);
  // With descriptors back, the waiting connection is accepted after the pause.
  ASSERT_TRUE(acceptor.WaitForConnections(1));
  close(client);
}

TEST(CappedListenerTest, AddressErrors) {
  CappedListenerOptions options;
  options.address = "127.0.0.1";
  EXPECT_EQ(CappedListener::Listen(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.address = "[::1:50051";
  EXPECT_EQ(CappedListener::Listen(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.address = "127.0.0.1:0";
  options.max_connections = 0;
  EXPECT_EQ(CappedListener::Listen(options).status().code(), absl::StatusCode::kInvalidArgument);

  std::unique_ptr<CappedListener> first = Listen(1, nullptr);
  ASSERT_NE(first, nullptr);
  options.address = absl::StrCat("127.0.0.1:", first->port());
  options.max_connections = 1;
  absl::StatusOr<std::unique_ptr<CappedListener>> second = CappedListener::Listen(options);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(),
              HasSubstr("cannot listen on '" + options.address + "': Address already in use"));
}

TEST(CappedListenerTest, ANameListensOnEveryAddressWithOnePort) {
  FakeAcceptor acceptor;
  std::unique_ptr<CappedListener> listener = Listen(10, nullptr, "localhost:0");
  ASSERT_NE(listener, nullptr);
  listener->Start(&acceptor);
  const int fd = Connect(listener->port());
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(acceptor.WaitForConnections(1));
  close(fd);
}

TEST(CappedListenerTest, StopClosesTheListeningSocket) {
  FakeAcceptor acceptor;
  std::unique_ptr<CappedListener> listener = Listen(10, nullptr);
  ASSERT_NE(listener, nullptr);
  listener->Start(&acceptor);
  const int port = listener->port();
  listener->Stop();
  listener->Stop();  // Idempotent.
  EXPECT_EQ(Connect(port), -1);
}

// The real thing: gRPC serving TLS on connections the listener accepted.
class EchoService final : public v1::UserpilotGateway::CallbackService {
 public:
  grpc::ServerUnaryReactor* IdentifyUser(grpc::CallbackServerContext* context,
                                         const v1::IdentifyUserRequest*,
                                         v1::IdentifyUserResponse* response) override {
    response->set_upstream_request_id(
        PeerCertificateName(*context->auth_context()).value_or("(none)"));
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

TEST(CappedListenerGrpcTest, GrpcServesTlsOnAcceptedConnectionsWithinTheCap) {
  testing::TempDir dir;
  testing::TestCertificateAuthority ca("CA");
  testing::LeafSpec server_spec;
  server_spec.subject_alt_names = {"DNS:gateway.test"};
  testing::TestKeyAndCertificate server_cert = ca.Issue(server_spec);
  testing::LeafSpec client_spec;
  client_spec.subject_alt_names = {"DNS:billing"};
  testing::TestKeyAndCertificate client_cert = ca.Issue(client_spec);
  testing::WriteFileOrDie(dir.File("tls.crt"), server_cert.certificate_pem);
  testing::WriteFileOrDie(dir.File("tls.key"), server_cert.key_pem);
  testing::WriteFileOrDie(dir.File("ca.crt"), ca.certificate_pem());
  const TlsFiles files{dir.File("tls.crt"), dir.File("tls.key"), dir.File("ca.crt")};

  RecordingObserver observer;
  std::unique_ptr<CappedListener> listener = Listen(2, &observer);
  ASSERT_NE(listener, nullptr);
  EchoService service;
  grpc::ServerBuilder builder;
  auto acceptor = builder.experimental().AddExternalConnectionAcceptor(
      grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD,
      MakeTlsServerCredentials(files, absl::Hours(1)));
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  listener->Start(acceptor.get());

  auto channel = [&] {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = ca.certificate_pem();
    ssl.pem_private_key = client_cert.key_pem;
    ssl.pem_cert_chain = client_cert.certificate_pem;
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("gateway.test");
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", listener->port()),
                                     grpc::SslCredentials(ssl), args);
  };
  auto call = [](const std::shared_ptr<grpc::Channel>& ch) {
    auto stub = v1::UserpilotGateway::NewStub(ch);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    v1::IdentifyUserRequest request;
    v1::IdentifyUserResponse response;
    grpc::Status status = stub->IdentifyUser(&context, request, &response);
    return status.ok() ? response.upstream_request_id()
                       : absl::StrCat("error ", status.error_code());
  };
  auto first = channel();
  auto second = channel();
  EXPECT_EQ(call(first), "billing");
  EXPECT_EQ(call(second), "billing");
  // A third connection is over the cap: reset, so the call fails UNAVAILABLE at once.
  EXPECT_EQ(call(channel()), absl::StrCat("error ", grpc::StatusCode::UNAVAILABLE));
  EXPECT_GE(listener->stats().refused_limit, 1u);
  EXPECT_THAT(observer.refusals().front(), HasSubstr("limit open=2"));

  // The client closing its connection frees the place; gRPC closes the socket on its side
  // shortly after, so retry until a fresh connection gets in.
  first.reset();
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::string result;
  do {
    result = call(channel());
    if (result != "billing") std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } while (result != "billing" && std::chrono::steady_clock::now() < give_up);
  EXPECT_EQ(result, "billing");

  listener->Stop();
  server->Shutdown(std::chrono::system_clock::now());
}

}  // namespace
}  // namespace userpilot::gateway
