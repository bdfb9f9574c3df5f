// Who is calling, and may they call this RPC: the check every gateway RPC passes before its
// request is validated or any budget is spent.
//
// Modes, from the configuration:
//   tokens    (--caller_tokens_file)  the call carries `authorization: Bearer <token>`; the
//                                     caller is the token's name in the file.
//   mTLS      (--tls_client_ca_file)  the connection's verified client certificate names the
//                                     caller (its first DNS subjectAltName, else its CN).
//   both                              a bearer token, when the call sends one, decides (and
//                                     must be valid); otherwise the certificate does.
//   neither                           development mode: every caller is trusted and named by
//                                     its `x-caller` metadata, as sent.
// With tokens or mTLS, the authenticated name is the caller everywhere (fair queuing,
// per-caller limits, logs, metrics) and `x-caller` is ignored: a call cannot claim to be
// someone else.
//
// Refusals, each before any work:
//   UNAUTHENTICATED    no credentials, a malformed `authorization`, a token that matches no
//                      entry, or a certificate whose name is not a caller name. The message
//                      never says how close a wrong token was (every wrong token gets the same
//                      answer), and nothing about the token is logged.
//   PERMISSION_DENIED  the caller may not call this RPC (--caller_allow); the message names
//                      the RPC and the caller.
// Both carry the facts (common/call_facts.h) reason CALLER_UNAUTHENTICATED or CALLER_NOT_ALLOWED
// (with the caller and the RPC), which the edge turns into a google.rpc.ErrorInfo, and are
// reported to the AuthObserver with their reason.
//
// Thread-safety: immutable after construction apart from the token store's snapshots;
// Authenticate() is called from gRPC threads concurrently and never blocks or reads a file.
#ifndef USERPILOT_GATEWAY_SERVICE_AUTH_AUTHENTICATOR_H_
#define USERPILOT_GATEWAY_SERVICE_AUTH_AUTHENTICATOR_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "grpcpp/security/auth_context.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/string_ref.h"
#include "service/auth/caller_allow_list.h"
#include "service/common/call_result.h"

namespace userpilot::gateway {

class CallerTokenStore;

// Why a call was refused; the names are metric label values.
enum class AuthRefusal {
  kNoCredentials,   // "no_credentials": neither a bearer token nor a client certificate.
  kBadToken,        // "bad_token": malformed `authorization`, or a token that matches none.
  kBadCertificate,  // "bad_certificate": the certificate's name is not a caller name.
  kNotAllowed,      // "not_allowed": authenticated, but the RPC is not in its allow-list.
};
absl::string_view AuthRefusalName(AuthRefusal refusal);

// What the authenticator reports. Implementations must be thread-safe and cheap.
class AuthObserver {
 public:
  virtual ~AuthObserver() = default;
  // A call to `rpc` was refused. `caller` is the authenticated name for kNotAllowed, empty
  // otherwise.
  virtual void OnRefused(AuthRefusal reason, absl::string_view caller, absl::string_view rpc) = 0;
};

// What one call presents, taken from its metadata and connection.
struct CallCredentials {
  // Every `authorization` metadata value, as sent.
  std::vector<absl::string_view> authorization;
  // The verified client certificate's name (PeerCertificateName), if any.
  std::optional<std::string> certificate_name;
  // The `x-caller` metadata value, if sent (used only in development mode).
  std::optional<absl::string_view> x_caller;

  // Extracted from a call. The views point into `context`, which must outlive the result.
  static CallCredentials From(const grpc::ServerContextBase& context);
};

struct AuthenticatorOptions {
  // Bearer tokens; null: tokens are not accepted (an `authorization` metadata is ignored).
  // Must outlive the authenticator.
  const CallerTokenStore* tokens = nullptr;
  // Whether the listener requires verified client certificates (--tls_client_ca_file).
  bool client_certificates = false;
  // Which RPCs each caller may call (only with tokens or client certificates).
  CallerAllowList allow;
  // Told about every refusal; may be null. Must outlive the authenticator.
  AuthObserver* observer = nullptr;
};

class Authenticator {
 public:
  explicit Authenticator(AuthenticatorOptions options);

  // False in development mode (neither tokens nor client certificates): callers are trusted.
  bool enabled() const { return options_.tokens != nullptr || options_.client_certificates; }

  // The caller of a call to `rpc` (a method name of the gateway service, "DeleteUsers"), or
  // its refusal (see above). In development mode: the `x-caller` name (TrustedCallerName).
  Result<std::string> Authenticate(const CallCredentials& credentials, absl::string_view rpc) const;
  Result<std::string> Authenticate(const grpc::ServerContextBase& context,
                                   absl::string_view rpc) const {
    return Authenticate(CallCredentials::From(context), rpc);
  }

  // The caller names that may appear as an authenticated caller and were configured (token
  // file names at this moment, allow-list names): what metrics may use as label values.
  std::vector<std::string> KnownCallers() const;

  // One line for the start-up log: the mode, and the allow-list.
  std::string DebugString() const;

 private:
  CallStatus Refuse(AuthRefusal reason, absl::string_view caller, absl::string_view rpc,
                    std::string message) const;

  const AuthenticatorOptions options_;
};

// The development-mode caller name from `x-caller`: the value when it is a caller name
// (caller_name.h), "unknown" when absent, "invalid" otherwise.
std::string TrustedCallerName(std::optional<absl::string_view> x_caller);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_AUTH_AUTHENTICATOR_H_
