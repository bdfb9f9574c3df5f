#include "service/auth/authenticator.h"

#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "service/auth/caller_token_store.h"
#include "service/auth/testing/test_certificates.h"
#include "service/auth/tls_credentials.h"
#include "service/common/call_facts.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

const google::protobuf::ServiceDescriptor& Service() {
  return *v1::IdentifyUserRequest::descriptor()->file()->FindServiceByName("UserpilotGateway");
}

std::string Line(absl::string_view caller, absl::string_view token) {
  std::string hex;
  for (unsigned char byte : Sha256(token)) absl::StrAppend(&hex, absl::Hex(byte, absl::kZeroPad2));
  return absl::StrCat(caller, " ", hex, "\n");
}

struct Refusal {
  AuthRefusal reason;
  std::string caller;
  std::string rpc;
  bool operator==(const Refusal& o) const {
    return std::tie(reason, caller, rpc) == std::tie(o.reason, o.caller, o.rpc);
  }
};

class RecordingObserver : public AuthObserver {
 public:
  void OnRefused(AuthRefusal reason, absl::string_view caller, absl::string_view rpc) override {
    std::lock_guard<std::mutex> lock(mu_);
    refusals_.push_back({reason, std::string(caller), std::string(rpc)});
  }
  std::vector<Refusal> refusals() {
    std::lock_guard<std::mutex> lock(mu_);
    return refusals_;
  }

 private:
  std::mutex mu_;
  std::vector<Refusal> refusals_;
};

CallCredentials Bearer(absl::string_view value, std::optional<absl::string_view> x_caller = {}) {
  CallCredentials credentials;
  credentials.authorization.push_back(value);
  credentials.x_caller = x_caller;
  return credentials;
}

CallCredentials Certificate(std::string name) {
  CallCredentials credentials;
  credentials.certificate_name = std::move(name);
  return credentials;
}

absl::string_view ReasonOf(const Result<std::string>& result) {
  return ErrorReasonName(result.facts().reason);
}

class AuthenticatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::WriteFileOrDie(dir_.File("tokens"), absl::StrCat(Line("billing", "billing-token"),
                                                              Line("gdpr-service", "gdpr-token")));
    CallerTokenStore::Options options;
    options.path = dir_.File("tokens");
    options.reload_interval = absl::Hours(1);
    absl::StatusOr<std::unique_ptr<CallerTokenStore>> store = CallerTokenStore::Start(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  Authenticator Make(bool tokens, bool certificates, absl::string_view allow = "") {
    AuthenticatorOptions options;
    options.tokens = tokens ? store_.get() : nullptr;
    options.client_certificates = certificates;
    absl::StatusOr<CallerAllowList> list = CallerAllowList::Parse(allow, Service());
    EXPECT_TRUE(list.ok()) << list.status();
    options.allow = *list;
    options.observer = &observer_;
    return Authenticator(std::move(options));
  }

  testing::TempDir dir_;
  std::unique_ptr<CallerTokenStore> store_;
  RecordingObserver observer_;
};

TEST_F(AuthenticatorTest, DevelopmentModeTrustsXCaller) {
  Authenticator auth = Make(false, false);
  EXPECT_FALSE(auth.enabled());
  CallCredentials credentials;
  EXPECT_EQ(*auth.Authenticate(credentials, "DeleteUsers"), "unknown");
  credentials.x_caller = "billing";
  EXPECT_EQ(*auth.Authenticate(credentials, "DeleteUsers"), "billing");
  credentials.x_caller = "bill ing";
  EXPECT_EQ(*auth.Authenticate(credentials, "DeleteUsers"), "invalid");
  // A token means nothing without a token file.
  EXPECT_EQ(*auth.Authenticate(Bearer("Bearer whatever", "x"), "TrackEvent"), "x");
  EXPECT_THAT(auth.DebugString(), HasSubstr("development mode"));
  EXPECT_THAT(observer_.refusals(), IsEmpty());
}

TEST_F(AuthenticatorTest, ARightTokenNamesTheCallerAndXCallerIsIgnored) {
  Authenticator auth = Make(true, false);
  EXPECT_TRUE(auth.enabled());
  EXPECT_EQ(*auth.Authenticate(Bearer("Bearer billing-token"), "TrackEvent"), "billing");
  // The scheme is case-insensitive (RFC 7235).
  EXPECT_EQ(*auth.Authenticate(Bearer("bearer gdpr-token"), "DeleteUsers"), "gdpr-service");
  // A spoofed x-caller changes nothing.
  EXPECT_EQ(*auth.Authenticate(Bearer("Bearer billing-token", "gdpr-service"), "DeleteUsers"),
            "billing");
  EXPECT_THAT(auth.KnownCallers(), ElementsAre("billing", "gdpr-service"));
  EXPECT_THAT(auth.DebugString(), HasSubstr("bearer tokens from " + dir_.File("tokens")));
  EXPECT_THAT(observer_.refusals(), IsEmpty());
}

TEST_F(AuthenticatorTest, WrongTokensAllGetTheSameAnswer) {
  Authenticator auth = Make(true, false);
  for (const char* token : {"Bearer billing-toke", "Bearer billing-token2", "Bearer x",
                            "Bearer BILLING-TOKEN", "Bearer  billing-token"}) {
    Result<std::string> caller = auth.Authenticate(Bearer(token), "TrackEvent");
    ASSERT_FALSE(caller.ok()) << token;
    EXPECT_EQ(caller.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(caller.status().message(), "invalid bearer token");
    EXPECT_EQ(ReasonOf(caller), "CALLER_UNAUTHENTICATED");
  }
  EXPECT_EQ(observer_.refusals().size(), 5u);
  EXPECT_EQ(observer_.refusals().front(), (Refusal{AuthRefusal::kBadToken, "", "TrackEvent"}));
}

TEST_F(AuthenticatorTest, MissingOrMalformedCredentialsAreRefused) {
  Authenticator auth = Make(true, false);
  CallCredentials none;
  none.x_caller = "billing";
  Result<std::string> caller = auth.Authenticate(none, "TrackEvent");
  ASSERT_FALSE(caller.ok());
  EXPECT_EQ(caller.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(caller.status().message(), HasSubstr("authorization: Bearer <token>"));

  for (const char* value :
       {"billing-token", "Basic billing-token", "Bearer", "Bearer ", "Bearerbilling-token"}) {
    caller = auth.Authenticate(Bearer(value), "TrackEvent");
    ASSERT_FALSE(caller.ok()) << value;
    EXPECT_EQ(caller.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_THAT(caller.status().message(), Not(HasSubstr("billing-token")));
  }
  CallCredentials twice = Bearer("Bearer billing-token");
  twice.authorization.push_back("Bearer gdpr-token");
  caller = auth.Authenticate(twice, "TrackEvent");
  ASSERT_FALSE(caller.ok());
  EXPECT_THAT(caller.status().message(), HasSubstr("more than one 'authorization'"));

  std::vector<Refusal> refusals = observer_.refusals();
  ASSERT_EQ(refusals.size(), 7u);
  EXPECT_EQ(refusals[0].reason, AuthRefusal::kNoCredentials);
  EXPECT_EQ(refusals[1].reason, AuthRefusal::kBadToken);
  EXPECT_EQ(refusals[6].reason, AuthRefusal::kBadToken);
}

TEST_F(AuthenticatorTest, TheAllowListRefusesWithPermissionDenied) {
  Authenticator auth = Make(true, false, "gdpr-service=DeleteUsers,*=TrackEvent|GetJob");
  EXPECT_EQ(*auth.Authenticate(Bearer("Bearer gdpr-token"), "DeleteUsers"), "gdpr-service");
  EXPECT_EQ(*auth.Authenticate(Bearer("Bearer billing-token"), "TrackEvent"), "billing");
  Result<std::string> caller = auth.Authenticate(Bearer("Bearer billing-token"), "DeleteUsers");
  ASSERT_FALSE(caller.ok());
  EXPECT_EQ(caller.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(caller.status().message(),
            "caller 'billing' may not call DeleteUsers (--caller_allow)");
  EXPECT_EQ(ReasonOf(caller), "CALLER_NOT_ALLOWED");
  ASSERT_TRUE(caller.facts().access_refusal.has_value());
  EXPECT_EQ(caller.facts().access_refusal->caller, "billing");
  EXPECT_EQ(caller.facts().access_refusal->rpc, "DeleteUsers");
  EXPECT_THAT(observer_.refusals(),
              ElementsAre(Refusal{AuthRefusal::kNotAllowed, "billing", "DeleteUsers"}));
  // An unauthenticated call is refused as such, whatever the RPC.
  caller = auth.Authenticate(Bearer("Bearer nope"), "TrackEvent");
  EXPECT_EQ(caller.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(auth.KnownCallers(), ElementsAre("billing", "gdpr-service"));
  EXPECT_THAT(auth.DebugString(), HasSubstr("caller_allow=gdpr-service=DeleteUsers,*="));
}

TEST_F(AuthenticatorTest, ClientCertificatesNameTheCaller) {
  Authenticator auth = Make(false, true);
  EXPECT_TRUE(auth.enabled());
  EXPECT_EQ(*auth.Authenticate(Certificate("billing.prod.svc"), "TrackEvent"), "billing.prod.svc");
  // Without a token file an authorization header is not a credential.
  CallCredentials both = Certificate("billing");
  both.authorization.push_back("Bearer anything");
  both.x_caller = "gdpr-service";
  EXPECT_EQ(*auth.Authenticate(both, "TrackEvent"), "billing");

  Result<std::string> caller = auth.Authenticate(Certificate("*.prod.svc"), "TrackEvent");
  ASSERT_FALSE(caller.ok());
  EXPECT_EQ(caller.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(caller.status().message(), HasSubstr("is not a caller name"));
  caller = auth.Authenticate(CallCredentials(), "TrackEvent");
  ASSERT_FALSE(caller.ok());
  EXPECT_THAT(caller.status().message(), HasSubstr("requires a client certificate"));
  EXPECT_THAT(observer_.refusals(),
              ElementsAre(Refusal{AuthRefusal::kBadCertificate, "", "TrackEvent"},
                          Refusal{AuthRefusal::kNoCredentials, "", "TrackEvent"}));
}

TEST_F(AuthenticatorTest, WithBothATokenDecidesWhenSent) {
  Authenticator auth = Make(true, true);
  CallCredentials credentials = Certificate("batch-jobs");
  EXPECT_EQ(*auth.Authenticate(credentials, "TrackEvent"), "batch-jobs");
  credentials.authorization.push_back("Bearer billing-token");
  EXPECT_EQ(*auth.Authenticate(credentials, "TrackEvent"), "billing");
  // A wrong token is refused even on a certified connection.
  credentials.authorization = {"Bearer wrong"};
  EXPECT_EQ(auth.Authenticate(credentials, "TrackEvent").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(auth.DebugString(), HasSubstr("+ client certificates"));
}

// The end of an empty property list (the base constructor is protected).
struct NoProperties : grpc::AuthPropertyIterator {};

// An AuthContext with chosen properties, as gRPC builds one from a TLS handshake.
class FakeAuthContext : public grpc::AuthContext {
 public:
  FakeAuthContext(bool authenticated, std::multimap<std::string, std::string> properties)
      : authenticated_(authenticated), properties_(std::move(properties)) {}
  bool IsPeerAuthenticated() const override { return authenticated_; }
  std::vector<grpc::string_ref> GetPeerIdentity() const override { return {}; }
  std::string GetPeerIdentityPropertyName() const override { return ""; }
  std::vector<grpc::string_ref> FindPropertyValues(const std::string& name) const override {
    std::vector<grpc::string_ref> values;
    auto [begin, end] = properties_.equal_range(name);
    for (auto it = begin; it != end; ++it) values.emplace_back(it->second);
    return values;
  }
  grpc::AuthPropertyIterator begin() const override { return NoProperties(); }
  grpc::AuthPropertyIterator end() const override { return NoProperties(); }
  void AddProperty(const std::string&, const grpc::string_ref&) override {}
  bool SetPeerIdentityPropertyName(const std::string&) override { return false; }

 private:
  bool authenticated_;
  std::multimap<std::string, std::string> properties_;
};

TEST(PeerCertificateNameTest, FirstDnsNameElseCommonName) {
  using Props = std::multimap<std::string, std::string>;
  EXPECT_EQ(PeerCertificateName(FakeAuthContext(true, Props{{"transport_security_type", "ssl"},
                                                            {"x509_common_name", "cn"},
                                                            {"peer_dns", "first.svc"},
                                                            {"peer_dns", "second.svc"}})),
            "first.svc");
  // TlsServerCredentials say "tls", SslServerCredentials "ssl".
  EXPECT_EQ(PeerCertificateName(FakeAuthContext(
                true, Props{{"transport_security_type", "tls"}, {"x509_common_name", "cn"}})),
            "cn");
  // Not verified, or not TLS: no name.
  EXPECT_EQ(PeerCertificateName(FakeAuthContext(
                false, Props{{"transport_security_type", "ssl"}, {"x509_common_name", "cn"}})),
            std::nullopt);
  EXPECT_EQ(PeerCertificateName(FakeAuthContext(
                true, Props{{"transport_security_type", "insecure"}, {"peer_dns", "x"}})),
            std::nullopt);
}

TEST(AuthRefusalNameTest, LabelValues) {
  EXPECT_EQ(AuthRefusalName(AuthRefusal::kNoCredentials), "no_credentials");
  EXPECT_EQ(AuthRefusalName(AuthRefusal::kBadToken), "bad_token");
  EXPECT_EQ(AuthRefusalName(AuthRefusal::kBadCertificate), "bad_certificate");
  EXPECT_EQ(AuthRefusalName(AuthRefusal::kNotAllowed), "not_allowed");
}

}  // namespace
}  // namespace userpilot::gateway
