#include "service/auth/authenticator.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "service/auth/caller_name.h"
#include "service/auth/caller_token_store.h"
#include "service/auth/tls_credentials.h"
#include "service/common/call_facts.h"

namespace userpilot::gateway {
namespace {

constexpr absl::string_view kBearer = "bearer ";

absl::string_view View(const grpc::string_ref& ref) {
  return absl::string_view(ref.data(), ref.size());
}

}  // namespace

absl::string_view AuthRefusalName(AuthRefusal refusal) {
  switch (refusal) {
    case AuthRefusal::kNoCredentials:
      return "no_credentials";
    case AuthRefusal::kBadToken:
      return "bad_token";
    case AuthRefusal::kBadCertificate:
      return "bad_certificate";
    case AuthRefusal::kNotAllowed:
      return "not_allowed";
  }
  return "unknown";
}

CallCredentials CallCredentials::From(const grpc::ServerContextBase& context) {
  CallCredentials credentials;
  const auto& metadata = context.client_metadata();
  auto [begin, end] = metadata.equal_range("authorization");
  for (auto it = begin; it != end; ++it) credentials.authorization.push_back(View(it->second));
  auto caller = metadata.find("x-caller");
  if (caller != metadata.end()) credentials.x_caller = View(caller->second);
  if (std::shared_ptr<const grpc::AuthContext> auth = context.auth_context()) {
    credentials.certificate_name = PeerCertificateName(*auth);
  }
  return credentials;
}

std::string TrustedCallerName(std::optional<absl::string_view> x_caller) {
  if (!x_caller.has_value()) return "unknown";
  if (!IsValidCallerName(*x_caller)) return "invalid";
  return std::string(*x_caller);
}

Authenticator::Authenticator(AuthenticatorOptions options) : options_(std::move(options)) {}

CallStatus Authenticator::Refuse(AuthRefusal reason, absl::string_view caller,
                                 absl::string_view rpc, std::string message) const {
  if (options_.observer != nullptr) options_.observer->OnRefused(reason, caller, rpc);
  CallFacts facts;
  if (reason == AuthRefusal::kNotAllowed) {
    facts.reason = ErrorReason::kCallerNotAllowed;
    facts.access_refusal = AccessRefusal{std::string(caller), std::string(rpc)};
    return CallStatus(absl::PermissionDeniedError(std::move(message)), std::move(facts));
  }
  facts.reason = ErrorReason::kCallerUnauthenticated;
  return CallStatus(absl::UnauthenticatedError(std::move(message)), std::move(facts));
}

Result<std::string> Authenticator::Authenticate(const CallCredentials& credentials,
                                                absl::string_view rpc) const {
  if (!enabled()) return TrustedCallerName(credentials.x_caller);

  std::string caller;
  if (options_.tokens != nullptr && !credentials.authorization.empty()) {
    if (credentials.authorization.size() > 1) {
      return Refuse(AuthRefusal::kBadToken, "", rpc,
                    "more than one 'authorization' metadata entry: send exactly one, "
                    "'Bearer <token>'");
    }
    const absl::string_view value = credentials.authorization.front();
    if (value.size() <= kBearer.size() ||
        !absl::EqualsIgnoreCase(value.substr(0, kBearer.size()), kBearer)) {
      return Refuse(AuthRefusal::kBadToken, "", rpc,
                    "the 'authorization' metadata must be 'Bearer <token>'");
    }
    // The whole snapshot stays alive while its caller name is copied.
    std::shared_ptr<const CallerTokens> tokens = options_.tokens->Snapshot();
    const std::string* name = tokens->Match(value.substr(kBearer.size()));
    if (name == nullptr) {
      return Refuse(AuthRefusal::kBadToken, "", rpc, "invalid bearer token");
    }
    caller = *name;
  } else if (options_.client_certificates && credentials.certificate_name.has_value()) {
    if (!IsValidCallerName(*credentials.certificate_name)) {
      return Refuse(AuthRefusal::kBadCertificate, "", rpc,
                    absl::StrCat("the client certificate's name (its first DNS subjectAltName, "
                                 "else its common name) is not a caller name (",
                                 kCallerNameRule, ")"));
    }
    caller = *credentials.certificate_name;
  } else {
    return Refuse(AuthRefusal::kNoCredentials, "", rpc,
                  options_.tokens != nullptr
                      ? "this gateway requires credentials: send 'authorization: Bearer <token>' "
                        "metadata"
                      : "this gateway requires a client certificate");
  }

  if (!options_.allow.Allows(caller, rpc)) {
    return Refuse(AuthRefusal::kNotAllowed, caller, rpc,
                  absl::StrCat("caller '", caller, "' may not call ", rpc, " (--caller_allow)"));
  }
  return caller;
}

std::vector<std::string> Authenticator::KnownCallers() const {
  std::vector<std::string> names = options_.allow.Callers();
  if (options_.tokens != nullptr) {
    std::vector<std::string> token_names = options_.tokens->Snapshot()->Callers();
    names.insert(names.end(), token_names.begin(), token_names.end());
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::string Authenticator::DebugString() const {
  if (!enabled()) return "auth=none (development mode: every caller trusted, named by x-caller)";
  std::vector<std::string> modes;
  if (options_.tokens != nullptr) {
    modes.push_back(absl::StrCat("bearer tokens from ", options_.tokens->path(), " (",
                                 options_.tokens->Snapshot()->entries().size(), " tokens)"));
  }
  if (options_.client_certificates) modes.push_back("client certificates");
  return absl::StrCat("auth=", absl::StrJoin(modes, " + "),
                      " caller_allow=", options_.allow.DebugString());
}

}  // namespace userpilot::gateway
