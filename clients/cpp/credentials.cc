#include "clients/cpp/credentials.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace userpilot::gateway::client {
namespace {

grpc::Status Invalid(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

// The whole of `path`, or INVALID_ARGUMENT naming `what` and the path.
grpc::Status ReadFile(const std::string& what, const std::string& path, std::string* contents) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return Invalid(absl::StrCat(what, " '", path, "' cannot be read: ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) return Invalid(absl::StrCat(what, " '", path, "' cannot be read"));
  *contents = text.str();
  return grpc::Status::OK;
}

// A PEM file, which must hold at least one PEM block (a certificate given as DER, or a
// directory, would otherwise fail only at the first handshake, with a vaguer message).
grpc::Status ReadPem(const std::string& what, const std::string& path, std::string* pem) {
  grpc::Status read = ReadFile(what, path, pem);
  if (!read.ok()) return read;
  if (!absl::StrContains(*pem, "-----BEGIN ")) {
    pem->clear();
    return Invalid(absl::StrCat(what, " '", path, "' holds no PEM block (-----BEGIN ...)"));
  }
  return grpc::Status::OK;
}

}  // namespace

grpc::Status LoadTlsFiles(const std::string& ca_file, const std::string& cert_file,
                          const std::string& key_file, TlsOptions* tls) {
  if (cert_file.empty() != key_file.empty()) {
    return Invalid(
        "a client certificate needs both its certificate file and its key file, not only one");
  }
  TlsOptions loaded = *tls;
  loaded.root_certs.clear();
  loaded.cert_chain.clear();
  loaded.private_key.clear();
  grpc::Status status;
  if (!ca_file.empty()) status = ReadPem("the CA file", ca_file, &loaded.root_certs);
  if (status.ok() && !cert_file.empty()) {
    status = ReadPem("the client certificate file", cert_file, &loaded.cert_chain);
  }
  if (status.ok() && !key_file.empty()) {
    status = ReadPem("the client key file", key_file, &loaded.private_key);
  }
  if (!status.ok()) return status;
  *tls = std::move(loaded);
  return grpc::Status::OK;
}

grpc::Status CheckBearerToken(const std::string& token, const std::string& source) {
  if (token.empty()) return Invalid(absl::StrCat("the bearer token from ", source, " is empty"));
  for (size_t i = 0; i < token.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(token[i]);
    if (c < 0x21 || c > 0x7e) {
      return Invalid(absl::StrCat("the bearer token from ", source,
                                  " holds a character that is not visible ASCII (at byte ", i + 1,
                                  ")"));
    }
  }
  return grpc::Status::OK;
}

grpc::Status ReadBearerToken(const std::string& path, std::string* token) {
  std::string text;
  grpc::Status read = ReadFile("the token file", path, &text);
  if (!read.ok()) return read;
  std::string trimmed(absl::StripAsciiWhitespace(text));
  grpc::Status checked = CheckBearerToken(trimmed, absl::StrCat("'", path, "'"));
  if (!checked.ok()) return checked;
  *token = std::move(trimmed);
  return grpc::Status::OK;
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentialsFor(const TlsOptions& tls) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = tls.root_certs;
  ssl.pem_cert_chain = tls.cert_chain;
  ssl.pem_private_key = tls.private_key;
  return grpc::SslCredentials(ssl);
}

}  // namespace userpilot::gateway::client
