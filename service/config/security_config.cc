#include "service/config/security_config.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "service/auth/caller_token_store.h"
#include "service/auth/caller_tokens.h"
#include "service/config/endpoints.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {
namespace {

constexpr int kMaxConnections = 1000000;
constexpr int kMaxConcurrentStreams = 1000000;

void CheckTokenFile(const std::string& path, const FlagProblem& problem) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    problem("caller_tokens_file", absl::StrCat("cannot read '", path, "'"));
    return;
  }
  std::ostringstream contents;
  contents << file.rdbuf();
  if (contents.str().size() > CallerTokenStore::kMaxFileBytes) {
    problem("caller_tokens_file", absl::StrCat("'", path, "' is larger than ",
                                               CallerTokenStore::kMaxFileBytes, " bytes"));
    return;
  }
  absl::StatusOr<CallerTokens> tokens = CallerTokens::Parse(contents.str(), path);
  if (!tokens.ok()) problem("caller_tokens_file", std::string(tokens.status().message()));
}

// The service whose method names --caller_allow uses.
const google::protobuf::ServiceDescriptor& GatewayService() {
  return *v1::IdentifyUserRequest::descriptor()->file()->FindServiceByName("UserpilotGateway");
}

void CheckCount(absl::string_view flag, int value, int max, const FlagProblem& problem) {
  if (value < 0 || value > max) {
    problem(flag, absl::StrCat("must be from 0 (no cap) to ", max, ", not ", value));
  }
}

}  // namespace

SecurityConfig LoadSecurityConfig(const SecurityInput& in, absl::Time now,
                                  const FlagProblem& problem) {
  SecurityConfig out;
  out.tls = TlsFiles{in.tls_cert_file, in.tls_key_file, in.tls_client_ca_file};
  if (out.tls.enabled() || out.tls.client_certificates()) {
    CheckTlsFiles(out.tls, now, problem);
  }
  out.caller_tokens_file = in.caller_tokens_file;
  if (!in.caller_tokens_file.empty()) CheckTokenFile(in.caller_tokens_file, problem);
  absl::StatusOr<CallerAllowList> allow = CallerAllowList::Parse(in.caller_allow, GatewayService());
  if (!allow.ok()) {
    problem("caller_allow", std::string(allow.status().message()));
  } else {
    out.allow = *std::move(allow);
    if (!out.allow.allows_everything() && !out.authentication()) {
      problem("caller_allow",
              "needs authenticated callers: set --caller_tokens_file or --tls_client_ca_file");
    }
  }
  if (in.credentials_reload_interval < absl::Seconds(1) ||
      in.credentials_reload_interval == absl::InfiniteDuration()) {
    problem("credentials_reload_interval",
            absl::StrCat("must be a finite duration of at least 1s, not ",
                         absl::FormatDuration(in.credentials_reload_interval)));
  }
  out.credentials_reload_interval = in.credentials_reload_interval;
  out.reflection_with_auth = in.reflection_with_auth;
  CheckCount("max_connections", in.max_connections, kMaxConnections, problem);
  out.max_connections = in.max_connections;
  CheckCount("max_concurrent_streams", in.max_concurrent_streams, kMaxConcurrentStreams, problem);
  out.max_concurrent_streams = in.max_concurrent_streams;
  if (!in.health_listen.empty()) {
    if (absl::Status s = ValidateListenAddress(in.health_listen); !s.ok()) {
      problem("health_listen", std::string(s.message()));
    }
  }
  out.health_listen = in.health_listen;
  return out;
}

std::string SecurityDebugString(const SecurityConfig& config) {
  auto or_none = [](const std::string& v) { return v.empty() ? std::string("(none)") : v; };
  return absl::StrCat("tls_cert_file=", or_none(config.tls.cert_file),
                      " tls_key_file=", or_none(config.tls.key_file),
                      " tls_client_ca_file=", or_none(config.tls.client_ca_file),
                      " caller_tokens_file=", or_none(config.caller_tokens_file),
                      " caller_allow=", config.allow.DebugString(), " credentials_reload_interval=",
                      absl::FormatDuration(config.credentials_reload_interval),
                      " reflection_with_auth=", config.reflection_with_auth ? "true" : "false",
                      " max_connections=", config.max_connections,
                      " max_concurrent_streams=", config.max_concurrent_streams,
                      " health_listen=", or_none(config.health_listen));
}

}  // namespace userpilot::gateway
