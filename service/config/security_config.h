// Who may connect and call: the TLS, caller-authentication, connection and health-listener
// flags, checked at start-up (docs/security.md).
//
//   --tls_cert_file, --tls_key_file    TLS on the gRPC listener (auth/tls_credentials.h)
//   --tls_client_ca_file               require and verify client certificates (mTLS)
//   --caller_tokens_file               bearer tokens per caller, `NAME SHA256HEX` lines
//   --caller_allow                     which RPCs each caller may call (auth/caller_allow_list.h)
//   --credentials_reload_interval      how often the files above are re-read
//   --reflection_with_auth             serve reflection even when authentication is on
//   --max_connections                  cap on open gRPC connections (auth/capped_listener.h)
//   --max_concurrent_streams           cap on concurrent calls per connection (HTTP/2)
//   --health_listen                    a plaintext listener serving only grpc.health.v1
//
// LoadSecurityConfig reads the files once to check them (a missing or unreadable file, a key
// that does not match its certificate, an expired certificate, a token file line that does not
// parse, an RPC name that is not the service's), reporting each problem under its flag, so a
// bad deployment stops at start-up; the components read them again when they start.
//
// Thread-safety: plain values.
#ifndef USERPILOT_GATEWAY_SERVICE_CONFIG_SECURITY_CONFIG_H_
#define USERPILOT_GATEWAY_SERVICE_CONFIG_SECURITY_CONFIG_H_

#include <string>

#include "absl/time/time.h"
#include "service/auth/caller_allow_list.h"
#include "service/auth/tls_credentials.h"
#include "service/config/traffic_config.h"

namespace userpilot::gateway {

// The raw security flags, named like them, with their defaults.
struct SecurityInput {
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_client_ca_file;
  std::string caller_tokens_file;
  std::string caller_allow;
  absl::Duration credentials_reload_interval = absl::Seconds(10);
  bool reflection_with_auth = false;
  int max_connections = 0;         // 0: no cap.
  int max_concurrent_streams = 0;  // 0: gRPC's default (no cap).
  std::string health_listen;       // Empty: no health-only listener.
};

// The validated security configuration.
struct SecurityConfig {
  TlsFiles tls;                    // tls.enabled(): TLS on the gRPC listener.
  std::string caller_tokens_file;  // Empty: bearer tokens are not accepted.
  CallerAllowList allow;           // Every RPC for every caller unless --caller_allow.
  absl::Duration credentials_reload_interval;
  bool reflection_with_auth = false;
  int max_connections = 0;
  int max_concurrent_streams = 0;
  std::string health_listen;

  // True when callers must authenticate (tokens or client certificates); false: development
  // mode, every caller trusted and named by `x-caller`.
  bool authentication() const { return !caller_tokens_file.empty() || tls.client_certificates(); }
};

// Checks `in` (reading the files it names) and returns the configuration; every problem goes
// to `problem` under its flag. Messages never quote a key or a token file's digests.
SecurityConfig LoadSecurityConfig(const SecurityInput& in, absl::Time now,
                                  const FlagProblem& problem);

// `name=value` pairs of the security settings, for the start-up log line.
std::string SecurityDebugString(const SecurityConfig& config);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_CONFIG_SECURITY_CONFIG_H_
