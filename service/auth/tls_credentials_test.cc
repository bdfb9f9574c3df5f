#include "service/auth/tls_credentials.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "service/auth/authenticator.h"
#include "service/auth/testing/test_certificates.h"
#include "userpilot/gateway/v1/gateway.grpc.pb.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::LeafSpec;
using testing::TempDir;
using testing::TestCertificateAuthority;
using testing::TestKeyAndCertificate;
using testing::WriteFileOrDie;

// Answers IdentifyUser with the authenticated caller in upstream_request_id, or the refusal.
class EchoCallerService final : public v1::UserpilotGateway::CallbackService {
 public:
  explicit EchoCallerService(const Authenticator& auth) : auth_(auth) {}

  grpc::ServerUnaryReactor* IdentifyUser(grpc::CallbackServerContext* context,
                                         const v1::IdentifyUserRequest*,
                                         v1::IdentifyUserResponse* response) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    Result<std::string> caller = auth_.Authenticate(*context, "IdentifyUser");
    if (!caller.ok()) {
      reactor->Finish(grpc::Status(static_cast<grpc::StatusCode>(caller.status().code()),
                                   std::string(caller.status().message())));
    } else {
      response->set_upstream_request_id(*caller);
      reactor->Finish(grpc::Status::OK);
    }
    return reactor;
  }

 private:
  const Authenticator& auth_;
};

// Cert, key and client CA files laid out as a Kubernetes Secret volume: each name a symlink into
// `..data`, which Publish() swaps at once.
class TlsVolume {
 public:
  explicit TlsVolume(const TempDir& dir) : dir_(dir) {}

  void Publish(const TestKeyAndCertificate& server, const std::string& client_ca) {
    const std::string version = dir_.File(absl::StrCat("..v", ++version_));
    ASSERT_EQ(mkdir(version.c_str(), 0700), 0);
    WriteFileOrDie(version + "/tls.crt", server.certificate_pem);
    WriteFileOrDie(version + "/tls.key", server.key_pem);
    WriteFileOrDie(version + "/ca.crt", client_ca);
    const std::string tmp = dir_.File("..data_tmp");
    ASSERT_EQ(symlink(version.c_str(), tmp.c_str()), 0);
    ASSERT_EQ(rename(tmp.c_str(), dir_.File("..data").c_str()), 0);
    if (version_ == 1) {
      for (const char* name : {"tls.crt", "tls.key", "ca.crt"}) {
        ASSERT_EQ(symlink(absl::StrCat("..data/", name).c_str(), dir_.File(name).c_str()), 0);
      }
    }
  }

  TlsFiles Files(bool client_certificates) const {
    return TlsFiles{dir_.File("tls.crt"), dir_.File("tls.key"),
                    client_certificates ? dir_.File("ca.crt") : ""};
  }

 private:
  const TempDir& dir_;
  int version_ = 0;
};

TestKeyAndCertificate ServerCertificate(TestCertificateAuthority& ca) {
  LeafSpec spec;
  spec.common_name = "userpilot-gateway";
  spec.subject_alt_names = {"DNS:userpilot-gateway.test", "IP:127.0.0.1"};
  return ca.Issue(spec);
}

// A client channel to 127.0.0.1:port trusting `roots`, with a client certificate when given. A
// channel of its own (local subchannel pool), so each one makes a fresh connection.
std::shared_ptr<grpc::Channel> TlsChannel(int port, const std::string& roots,
                                          const TestKeyAndCertificate* client = nullptr) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = roots;
  if (client != nullptr) {
    ssl.pem_private_key = client->key_pem;
    ssl.pem_cert_chain = client->certificate_pem;
  }
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("userpilot-gateway.test");
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port), grpc::SslCredentials(ssl),
                                   args);
}

std::shared_ptr<grpc::Channel> PlaintextChannel(int port) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), args);
}

// One IdentifyUser call: the caller the server saw, or the error.
absl::StatusOr<std::string> Call(const std::shared_ptr<grpc::Channel>& channel,
                                 absl::string_view bearer = "") {
  auto stub = v1::UserpilotGateway::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  if (!bearer.empty()) context.AddMetadata("authorization", absl::StrCat("Bearer ", bearer));
  v1::IdentifyUserRequest request;
  v1::IdentifyUserResponse response;
  grpc::Status status = stub->IdentifyUser(&context, request, &response);
  if (!status.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  }
  return response.upstream_request_id();
}

class TlsServer {
 public:
  TlsServer(const TlsFiles& files, bool client_certificates, absl::Duration reload)
      : auth_([&] {
          AuthenticatorOptions options;
          options.client_certificates = client_certificates;
          return options;
        }()),
        service_(auth_) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", MakeTlsServerCredentials(files, reload), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~TlsServer() { server_->Shutdown(std::chrono::system_clock::now()); }
  int port() const { return port_; }

 private:
  Authenticator auth_;
  EchoCallerService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

TEST(CheckTlsFilesTest, AcceptsAMatchingPair) {
  TempDir dir;
  TestCertificateAuthority ca("test CA");
  TlsVolume volume(dir);
  volume.Publish(ServerCertificate(ca), ca.certificate_pem() + ca.certificate_pem());
  std::vector<std::string> problems;
  std::optional<TlsCertificateInfo> info =
      CheckTlsFiles(volume.Files(true), absl::Now(), [&](absl::string_view flag, std::string m) {
        problems.push_back(absl::StrCat(flag, ": ", m));
      });
  EXPECT_THAT(problems, IsEmpty());
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->subject, "CN=userpilot-gateway");
  EXPECT_GT(info->not_after, absl::Now() + absl::Hours(23));
  EXPECT_EQ(info->client_cas, 2);
}

TEST(CheckTlsFilesTest, NoFilesNoProblem) {
  bool called = false;
  EXPECT_FALSE(CheckTlsFiles(TlsFiles{}, absl::Now(), [&](absl::string_view, std::string) {
                 called = true;
               }).has_value());
  EXPECT_FALSE(called);
}

struct TlsProblemCase {
  const char* name;
  // Edits the (otherwise good) files before the check.
  std::function<void(TlsFiles&, const TempDir&, TestCertificateAuthority&)> edit;
  const char* flag;
  const char* message;
};

void PrintTo(const TlsProblemCase& c, std::ostream* os) { *os << c.name; }

class CheckTlsFilesProblemTest : public ::testing::TestWithParam<TlsProblemCase> {};

TEST_P(CheckTlsFilesProblemTest, NamesTheFlag) {
  TempDir dir;
  TestCertificateAuthority ca("test CA");
  TestKeyAndCertificate server = ServerCertificate(ca);
  WriteFileOrDie(dir.File("tls.crt"), server.certificate_pem);
  WriteFileOrDie(dir.File("tls.key"), server.key_pem);
  WriteFileOrDie(dir.File("ca.crt"), ca.certificate_pem());
  TlsFiles files{dir.File("tls.crt"), dir.File("tls.key"), dir.File("ca.crt")};
  GetParam().edit(files, dir, ca);
  std::vector<std::pair<std::string, std::string>> problems;
  EXPECT_FALSE(CheckTlsFiles(files, absl::Now(), [&](absl::string_view flag, std::string m) {
                 problems.emplace_back(std::string(flag), std::move(m));
               }).has_value());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].first, GetParam().flag);
  EXPECT_THAT(problems[0].second, HasSubstr(GetParam().message));
  EXPECT_THAT(problems[0].second, ::testing::Not(HasSubstr("PRIVATE KEY")));
}

INSTANTIATE_TEST_SUITE_P(
    Problems, CheckTlsFilesProblemTest,
    ::testing::Values(TlsProblemCase{"KeyWithoutCert",
                                     [](TlsFiles& f, const TempDir&, TestCertificateAuthority&) {
                                       f.cert_file.clear();
                                     },
                                     "tls_cert_file", "go together"},
                      TlsProblemCase{"CaWithoutTls",
                                     [](TlsFiles& f, const TempDir&, TestCertificateAuthority&) {
                                       f.cert_file.clear();
                                       f.key_file.clear();
                                     },
                                     "tls_client_ca_file", "client certificates need TLS"},
                      TlsProblemCase{"MissingCertFile",
                                     [](TlsFiles& f, const TempDir& d, TestCertificateAuthority&) {
                                       f.cert_file = d.File("absent.crt");
                                     },
                                     "tls_cert_file", "cannot open"},
                      TlsProblemCase{"NotACertificate",
                                     [](TlsFiles& f, const TempDir& d, TestCertificateAuthority&) {
                                       WriteFileOrDie(f.cert_file, "hello\n");
                                     },
                                     "tls_cert_file", "holds no PEM certificate"},
                      TlsProblemCase{"Expired",
                                     [](TlsFiles& f, const TempDir&, TestCertificateAuthority& ca) {
                                       LeafSpec spec;
                                       spec.common_name = "old";
                                       spec.not_before = absl::Hours(-48);
                                       spec.not_after = absl::Hours(-24);
                                       TestKeyAndCertificate old = ca.Issue(spec);
                                       WriteFileOrDie(f.cert_file, old.certificate_pem);
                                       WriteFileOrDie(f.key_file, old.key_pem);
                                     },
                                     "tls_cert_file", "(CN=old) expired at"},
                      TlsProblemCase{"KeyOfAnotherCertificate",
                                     [](TlsFiles& f, const TempDir&, TestCertificateAuthority& ca) {
                                       WriteFileOrDie(f.key_file, ca.Issue(LeafSpec{}).key_pem);
                                     },
                                     "tls_key_file", "does not belong to the certificate"},
                      TlsProblemCase{"CertificateInsteadOfKey",
                                     [](TlsFiles& f, const TempDir&, TestCertificateAuthority& ca) {
                                       WriteFileOrDie(f.key_file, ca.certificate_pem());
                                     },
                                     "tls_key_file", "holds no readable PEM private key"},
                      TlsProblemCase{"EmptyCaBundle",
                                     [](TlsFiles& f, const TempDir&, TestCertificateAuthority&) {
                                       WriteFileOrDie(f.client_ca_file, "# none\n");
                                     },
                                     "tls_client_ca_file", "holds no PEM certificate"}),
    [](const ::testing::TestParamInfo<TlsProblemCase>& info) { return info.param.name; });

TEST(TlsServerTest, ServesTlsAndRefusesPlaintext) {
  TempDir dir;
  TestCertificateAuthority ca("server CA");
  TlsVolume volume(dir);
  volume.Publish(ServerCertificate(ca), ca.certificate_pem());
  TlsServer server(volume.Files(false), false, absl::Hours(1));

  // Development mode inside TLS: no client certificate, so the caller is x-caller's.
  EXPECT_EQ(*Call(TlsChannel(server.port(), ca.certificate_pem())), "unknown");
  absl::StatusOr<std::string> plaintext = Call(PlaintextChannel(server.port()));
  ASSERT_FALSE(plaintext.ok());
  EXPECT_EQ(plaintext.status().code(), absl::StatusCode::kUnavailable);
  // A client that does not trust the server's CA does not get through either.
  TestCertificateAuthority other("other CA");
  EXPECT_EQ(Call(TlsChannel(server.port(), other.certificate_pem())).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(TlsServerTest, ClientCertificatesNameTheCaller) {
  TempDir dir;
  TestCertificateAuthority server_ca("server CA");
  TestCertificateAuthority client_ca("client CA");
  TlsVolume volume(dir);
  volume.Publish(ServerCertificate(server_ca), client_ca.certificate_pem());
  TlsServer server(volume.Files(true), true, absl::Hours(1));

  LeafSpec billing;
  billing.common_name = "ignored-cn";
  billing.subject_alt_names = {"URI:spiffe://cluster.local/ns/prod/sa/billing",
                               "DNS:billing.prod.svc", "DNS:billing"};
  TestKeyAndCertificate billing_cert = client_ca.Issue(billing);
  EXPECT_EQ(*Call(TlsChannel(server.port(), server_ca.certificate_pem(), &billing_cert)),
            "billing.prod.svc");

  LeafSpec batch;
  batch.common_name = "batch-jobs";
  TestKeyAndCertificate batch_cert = client_ca.Issue(batch);
  EXPECT_EQ(*Call(TlsChannel(server.port(), server_ca.certificate_pem(), &batch_cert)),
            "batch-jobs");

  LeafSpec wildcard;
  wildcard.subject_alt_names = {"DNS:*.prod.svc"};
  TestKeyAndCertificate wildcard_cert = client_ca.Issue(wildcard);
  EXPECT_EQ(
      Call(TlsChannel(server.port(), server_ca.certificate_pem(), &wildcard_cert)).status().code(),
      absl::StatusCode::kUnauthenticated);

  // No certificate, one from another CA, or plaintext: the handshake itself fails.
  EXPECT_EQ(Call(TlsChannel(server.port(), server_ca.certificate_pem())).status().code(),
            absl::StatusCode::kUnavailable);
  TestKeyAndCertificate stranger = server_ca.Issue(batch);
  EXPECT_EQ(Call(TlsChannel(server.port(), server_ca.certificate_pem(), &stranger)).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(Call(PlaintextChannel(server.port())).status().code(), absl::StatusCode::kUnavailable);
}

TEST(TlsServerTest, ARotatedCertificateIsServedWithoutDroppingConnections) {
  TempDir dir;
  TestCertificateAuthority old_ca("old CA");
  TestCertificateAuthority new_ca("new CA");
  TestCertificateAuthority client_ca("client CA");
  LeafSpec client;
  client.subject_alt_names = {"DNS:billing"};
  TestKeyAndCertificate client_cert = client_ca.Issue(client);
  TlsVolume volume(dir);
  volume.Publish(ServerCertificate(old_ca), client_ca.certificate_pem());
  TlsServer server(volume.Files(true), true, absl::Seconds(1));

  std::shared_ptr<grpc::Channel> before =
      TlsChannel(server.port(), old_ca.certificate_pem(), &client_cert);
  ASSERT_EQ(*Call(before), "billing");

  volume.Publish(ServerCertificate(new_ca), client_ca.certificate_pem());
  // New connections get the new certificate once gRPC's watcher has re-read the files (every
  // second here). Waits for that event; the bound only stops a broken build from hanging.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  absl::StatusOr<std::string> fresh;
  do {
    fresh = Call(TlsChannel(server.port(), new_ca.certificate_pem(), &client_cert));
    if (!fresh.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (!fresh.ok() && std::chrono::steady_clock::now() < give_up);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(*fresh, "billing");
  // The old certificate is no longer offered to new connections...
  EXPECT_EQ(Call(TlsChannel(server.port(), old_ca.certificate_pem(), &client_cert)).status().code(),
            absl::StatusCode::kUnavailable);
  // ...while the connection opened before the rotation still carries calls.
  EXPECT_EQ(*Call(before), "billing");
}

}  // namespace
}  // namespace userpilot::gateway
