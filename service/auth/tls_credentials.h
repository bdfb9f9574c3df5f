// TLS on the gRPC listener, and the caller's identity from a verified client certificate.
//
//   --tls_cert_file, --tls_key_file   the server's certificate chain and private key (PEM)
//   --tls_client_ca_file              when set, clients must present a certificate issued by
//                                     one of these CAs (mTLS); the call's caller is then the
//                                     certificate's first DNS subjectAltName, else its CN
//
// The credentials come from gRPC's FileWatcherCertificateProvider, which re-reads the three
// files every reload interval on its own thread and hands new material to new handshakes;
// connections already open keep theirs, so a rotation drops nothing. Rotate the key and the
// certificate together (Kubernetes swaps a Secret's files at once): gRPC 1.51 does not check
// that a re-read key matches the re-read certificate, and handshakes fail until both agree.
// CheckTlsFiles does check that at start-up, so a wrong pair stops the process with a clear
// message instead of failing every handshake.
//
// Thread-safety: free functions; CheckTlsFiles reads files (start-up only);
// PeerCertificateName is called from gRPC threads and touches no file.
#ifndef USERPILOT_GATEWAY_SERVICE_AUTH_TLS_CREDENTIALS_H_
#define USERPILOT_GATEWAY_SERVICE_AUTH_TLS_CREDENTIALS_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/security/auth_context.h"
#include "grpcpp/security/server_credentials.h"

namespace userpilot::gateway {

struct TlsFiles {
  std::string cert_file;       // --tls_cert_file: PEM chain, the server's certificate first.
  std::string key_file;        // --tls_key_file: PEM private key of that certificate.
  std::string client_ca_file;  // --tls_client_ca_file: PEM CA bundle; empty: no client certs.

  bool enabled() const { return !cert_file.empty() || !key_file.empty(); }
  bool client_certificates() const { return !client_ca_file.empty(); }
};

// What CheckTlsFiles learned about the server certificate, for the start-up log and metrics.
struct TlsCertificateInfo {
  std::string subject;  // One line, OpenSSL's RFC 2253 form.
  absl::Time not_after;
  int client_cas = 0;  // Certificates in the client CA bundle (0 without mTLS).
};

// Checks the files as the listener will read them: the certificate file holds at least one
// PEM certificate, not expired; the key file holds a PEM private key matching the first
// certificate's public key; the client CA file, when set, holds at least one certificate;
// --tls_client_ca_file needs the other two; --tls_cert_file and --tls_key_file come together.
// Calls `problem(flag, message)` for each problem (flag without `--`); messages never quote
// the key. Returns the certificate's details when there was no problem.
std::optional<TlsCertificateInfo> CheckTlsFiles(
    const TlsFiles& files, absl::Time now,
    const std::function<void(absl::string_view flag, std::string message)>& problem);

// Server credentials for the files (which CheckTlsFiles accepted), re-read every
// `reload_interval` (rounded up to whole seconds, at least 1). With a client CA file, client
// certificates are required and verified against it; without, none is requested.
std::shared_ptr<grpc::ServerCredentials> MakeTlsServerCredentials(const TlsFiles& files,
                                                                  absl::Duration reload_interval);

// The name a verified client certificate gives its holder: the first DNS subjectAltName, else
// the subject's common name. nullopt when the connection is not TLS or the peer presented no
// verified certificate. The name is returned as found; the caller checks it is a caller name.
std::optional<std::string> PeerCertificateName(const grpc::AuthContext& auth_context);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_AUTH_TLS_CREDENTIALS_H_
