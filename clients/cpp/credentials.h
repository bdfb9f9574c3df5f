// TLS, client certificates and bearer tokens for calls to userpilot-gateway.
//
// The gateway can serve TLS (--tls_cert_file, --tls_key_file), require a client certificate
// whose first DNS SAN (else CN) names the caller (--tls_client_ca_file), and accept a bearer
// token per calling service (--caller_tokens_file), sent as `authorization: Bearer <token>`.
// These helpers read what a caller needs for that from files (Kubernetes mounts secrets as
// files) into ClientOptions::tls and ClientOptions::bearer_token:
//
//   userpilot::gateway::client::ClientOptions options;
//   options.tls.emplace();
//   grpc::Status loaded = LoadTlsFiles("/etc/gateway-tls/ca.crt", "/etc/gateway-tls/tls.crt",
//                                      "/etc/gateway-tls/tls.key", &*options.tls);
//   if (loaded.ok()) loaded = ReadBearerToken("/etc/gateway-token/token", &options.bearer_token);
//
// Errors name the file and the reason, never what the file holds; nothing here logs.
//
// Thread-safety: free functions without shared state.
#ifndef USERPILOT_GATEWAY_CLIENTS_CPP_CREDENTIALS_H_
#define USERPILOT_GATEWAY_CLIENTS_CPP_CREDENTIALS_H_

#include <memory>
#include <string>

#include "grpcpp/security/credentials.h"
#include "grpcpp/support/status.h"

namespace userpilot::gateway::client {

// TLS towards the gateway. PEM text rather than paths, so the PEM may come from anywhere (a
// file: LoadTlsFiles; a secret store); the files are read once, when the client is made.
struct TlsOptions {
  // The CAs that sign the gateway's certificate. Empty: gRPC's default roots (the system's, or
  // GRPC_DEFAULT_SSL_ROOTS_FILE_PATH).
  std::string root_certs;
  // This caller's certificate chain and its private key, for a gateway that requires client
  // certificates (mTLS). Both or neither.
  std::string cert_chain;
  std::string private_key;
  // The name the gateway's certificate must carry when it is not the target's host (an IP
  // address in tests; a name that only the certificate knows). Empty: the target's host.
  std::string server_name;
};

// Fills `tls` from PEM files: `ca_file` (empty: gRPC's default roots), `cert_file` and
// `key_file` (both or neither). INVALID_ARGUMENT naming the file when one cannot be read, is
// empty or holds no PEM block, or when only one of the certificate and the key is given.
// server_name is left as it is.
grpc::Status LoadTlsFiles(const std::string& ca_file, const std::string& cert_file,
                          const std::string& key_file, TlsOptions* tls);

// Reads a bearer token from `path` (a mounted secret): the file's text without surrounding
// whitespace (secret files often end with a newline). INVALID_ARGUMENT naming the file when it
// cannot be read, is empty, or the token holds characters an HTTP header cannot carry
// (anything but visible ASCII); the message never quotes the token.
grpc::Status ReadBearerToken(const std::string& path, std::string* token);

// The same checks for a token that did not come from a file (an environment variable, a
// secret store): INVALID_ARGUMENT, with `source` naming where it came from, when it is empty or
// holds a character other than visible ASCII.
grpc::Status CheckBearerToken(const std::string& token, const std::string& source);

// gRPC channel credentials for `tls` (grpc::SslCredentials). Client::Connect uses them; a
// caller that builds its own channel passes them with Client::ChannelArgumentsFor (which
// carries server_name).
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentialsFor(const TlsOptions& tls);

}  // namespace userpilot::gateway::client

#endif  // USERPILOT_GATEWAY_CLIENTS_CPP_CREDENTIALS_H_
