// TLS, client certificates and bearer tokens (credentials.h, ClientOptions::tls and
// ::bearer_token) against the scripted gateway served over TLS and mTLS, with certificates that
// tests/clients/make_test_certs.sh creates with openssl when the suite starts.
#include "clients/cpp/credentials.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "clients/cpp/client.h"
#include "clients/cpp/testing/scripted_gateway.h"
#include "gmock/gmock.h"
#include "grpcpp/security/server_credentials.h"
#include "gtest/gtest.h"

namespace userpilot::gateway::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::ScriptedGatewayServer;

constexpr char kToken[] = "tok-3f9a.SECRET_value~1";

std::string Slurp(const std::string& path) {
  std::ifstream file(path);
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

class CredentialsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char pattern[] = "/tmp/upgw-client-certs-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    const std::string command = std::string(UPGW_MAKE_TEST_CERTS) + " " + dir_;
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
  }
  static void TearDownTestSuite() {
    const std::string command = "rm -rf " + dir_;
    EXPECT_EQ(std::system(command.c_str()), 0);
  }
  static std::string Path(const std::string& name) { return dir_ + "/" + name; }

  // The gateway's TLS; with `require_client_cert`, mTLS against the test CA.
  static std::shared_ptr<grpc::ServerCredentials> ServerTls(bool require_client_cert) {
    grpc::SslServerCredentialsOptions options(
        require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                            : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    options.pem_key_cert_pairs.push_back({Slurp(Path("server.key")), Slurp(Path("server.pem"))});
    if (require_client_cert) options.pem_root_certs = Slurp(Path("ca.pem"));
    return grpc::SslServerCredentials(options);
  }

  // Options that trust `ca` and expect the server's name, with an optional client certificate.
  static ClientOptions Tls(const std::string& ca, const std::string& client = "") {
    ClientOptions options;
    options.caller = "billing";
    options.retry.max_attempts = 1;
    options.tls.emplace();
    grpc::Status loaded =
        LoadTlsFiles(Path(ca + ".pem"), client.empty() ? "" : Path(client + ".pem"),
                     client.empty() ? "" : Path(client + ".key"), &*options.tls);
    EXPECT_TRUE(loaded.ok()) << loaded.error_message();
    options.tls->server_name = "gateway.test";
    return options;
  }

  static grpc::Status ListJobs(const std::string& target, const ClientOptions& options) {
    return Client::Connect(target, options)
        .ListJobs(CallOptions::WithTimeout(std::chrono::seconds(10)))
        .status();
  }

  static inline std::string dir_;
};

TEST_F(CredentialsTest, TlsWithTheRightCaAndATokenReachesTheGateway) {
  ScriptedGatewayServer server(ServerTls(/*require_client_cert=*/false));
  ClientOptions options = Tls("ca");
  options.bearer_token = kToken;
  grpc::Status status = ListJobs(server.target(), options);
  ASSERT_TRUE(status.ok()) << ErrorDetails::Describe(status);
  auto seen = server.gateway().seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].authorization, std::string("Bearer ") + kToken);
  EXPECT_EQ(seen[0].caller, "billing");
}

TEST_F(CredentialsTest, AWrongCaOrAWrongServerNameFailsBeforeAnyCall) {
  ScriptedGatewayServer server(ServerTls(false));
  ClientOptions wrong_ca = Tls("other-ca");
  wrong_ca.bearer_token = kToken;
  grpc::Status status = ListJobs(server.target(), wrong_ca);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(status.error_message(), Not(HasSubstr(kToken)));

  ClientOptions no_name = Tls("ca");
  no_name.tls->server_name.clear();  // 127.0.0.1 is not in the certificate
  EXPECT_EQ(ListJobs(server.target(), no_name).error_code(), grpc::StatusCode::UNAVAILABLE);

  ClientOptions plaintext;  // a TLS port does not speak plaintext
  plaintext.retry.max_attempts = 1;
  EXPECT_EQ(ListJobs(server.target(), plaintext).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(server.gateway().calls("ListJobs"), 0);
}

TEST_F(CredentialsTest, MutualTlsNeedsAClientCertificateFromTheTrustedCa) {
  ScriptedGatewayServer server(ServerTls(/*require_client_cert=*/true));
  grpc::Status status = ListJobs(server.target(), Tls("ca", "client"));
  ASSERT_TRUE(status.ok()) << ErrorDetails::Describe(status);
  auto seen = server.gateway().seen();
  ASSERT_EQ(seen.size(), 1u);
  // gRPC's peer identity of an X.509 client: its DNS SANs, in order; the first is the caller.
  EXPECT_EQ(seen[0].peer_identity, "billing,billing.test");
  EXPECT_EQ(seen[0].authorization, "");

  EXPECT_EQ(ListJobs(server.target(), Tls("ca")).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ListJobs(server.target(), Tls("ca", "rogue")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(server.gateway().calls("ListJobs"), 1);
}

TEST_F(CredentialsTest, ATokenIsNotSentOverPlaintextUnlessAllowed) {
  ScriptedGatewayServer server;  // plaintext
  ClientOptions options;
  options.retry.max_attempts = 1;
  options.bearer_token = kToken;
  grpc::Status status = ListJobs(server.target(), options);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(status.error_message(), Not(HasSubstr(kToken)));
  EXPECT_EQ(server.gateway().calls("ListJobs"), 0);

  options.token_over_plaintext = true;  // a sidecar encrypts the hop, or local development
  ASSERT_TRUE(ListJobs(server.target(), options).ok());
  ASSERT_EQ(server.gateway().seen().size(), 1u);
  EXPECT_EQ(server.gateway().seen()[0].authorization, std::string("Bearer ") + kToken);
}

TEST_F(CredentialsTest, LoadTlsFilesNamesTheFileThatCannotBeUsed) {
  TlsOptions tls;
  tls.server_name = "kept";
  grpc::Status status = LoadTlsFiles(Path("ca.pem"), Path("client.pem"), Path("client.key"), &tls);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(tls.root_certs, HasSubstr("-----BEGIN CERTIFICATE-----"));
  EXPECT_THAT(tls.cert_chain, HasSubstr("-----BEGIN CERTIFICATE-----"));
  EXPECT_THAT(tls.private_key, HasSubstr("PRIVATE KEY-----"));
  EXPECT_EQ(tls.server_name, "kept");

  const std::string not_pem = Path("not-pem.der");
  std::ofstream(not_pem) << "\x30\x82\x01\x0a";
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{Path("missing.pem"), "", ""},
       "the CA file '" + Path("missing.pem") + "' cannot be read: No such file"},
      {{not_pem, "", ""}, "the CA file '" + not_pem + "' holds no PEM block"},
      {{"", Path("client.pem"), ""}, "needs both its certificate file and its key file"},
      {{"", Path("client.pem"), not_pem}, "the client key file '" + not_pem + "'"},
  };
  for (const auto& [files, error] : cases) {
    TlsOptions untouched = tls;
    grpc::Status s = LoadTlsFiles(files[0], files[1], files[2], &untouched);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << error;
    EXPECT_THAT(s.error_message(), HasSubstr(error));
    EXPECT_EQ(untouched.root_certs, tls.root_certs) << "unchanged on failure";
  }
}

TEST_F(CredentialsTest, ReadBearerTokenTrimsTheFileAndNeverQuotesIt) {
  const std::string path = Path("token");
  std::ofstream(path) << "  " << kToken << "\n";
  std::string token;
  ASSERT_TRUE(ReadBearerToken(path, &token).ok());
  EXPECT_EQ(token, kToken);

  std::ofstream(path, std::ios::trunc) << "two words-SECRET\n";
  grpc::Status spaced = ReadBearerToken(path, &token);
  EXPECT_EQ(spaced.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(spaced.error_message(), HasSubstr("not visible ASCII (at byte 4)"));
  EXPECT_THAT(spaced.error_message(), Not(HasSubstr("SECRET")));
  EXPECT_EQ(token, kToken) << "unchanged on failure";

  std::ofstream(path, std::ios::trunc) << "\n";
  EXPECT_THAT(ReadBearerToken(path, &token).error_message(), HasSubstr("is empty"));
  EXPECT_THAT(ReadBearerToken(Path("nope"), &token).error_message(),
              HasSubstr("the token file '" + Path("nope") + "' cannot be read"));
  EXPECT_THAT(CheckBearerToken("", "USERPILOT_GATEWAY_TOKEN").error_message(),
              HasSubstr("the bearer token from USERPILOT_GATEWAY_TOKEN is empty"));
}

}  // namespace
}  // namespace userpilot::gateway::client
