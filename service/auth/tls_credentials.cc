#include "service/auth/tls_credentials.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cmath>
#include <ctime>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "grpc/grpc_security_constants.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "service/auth/caller_token_store.h"

namespace userpilot::gateway {
namespace {

// PEM files larger than this are not certificates or keys.
constexpr size_t kMaxPemBytes = 1 << 20;

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Bio = std::unique_ptr<BIO, BioDeleter>;
using Cert = std::unique_ptr<X509, X509Deleter>;
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

Bio MemoryBio(const std::string& data) {
  return Bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

// Every PEM certificate in `pem`, in order.
std::vector<Cert> ReadCertificates(const std::string& pem) {
  std::vector<Cert> certs;
  Bio bio = MemoryBio(pem);
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(cert);
  }
  ERR_clear_error();  // The loop ends on "no start line".
  return certs;
}

// A password callback that refuses: encrypted keys are reported, never prompted for.
int NoPassword(char*, int, int, void*) { return -1; }

absl::Time ToTime(const ASN1_TIME* time) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(time, &tm) != 1) return absl::InfinitePast();
  return absl::FromTimeT(timegm(&tm));
}

std::string Subject(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

}  // namespace

std::optional<TlsCertificateInfo> CheckTlsFiles(
    const TlsFiles& files, absl::Time now,
    const std::function<void(absl::string_view flag, std::string message)>& problem) {
  bool ok = true;
  auto fail = [&](absl::string_view flag, std::string message) {
    ok = false;
    problem(flag, std::move(message));
  };
  if (files.cert_file.empty() != files.key_file.empty()) {
    fail(files.cert_file.empty() ? "tls_cert_file" : "tls_key_file",
         "--tls_cert_file and --tls_key_file go together: give both or neither");
  }
  if (files.client_certificates() && files.cert_file.empty() && files.key_file.empty()) {
    fail("tls_client_ca_file",
         "client certificates need TLS: give --tls_cert_file and --tls_key_file too");
  }
  if (!ok || !files.enabled()) return std::nullopt;

  TlsCertificateInfo info;
  Cert leaf;
  absl::StatusOr<std::string> cert_pem = ReadBoundedFile(files.cert_file, kMaxPemBytes);
  if (!cert_pem.ok()) {
    fail("tls_cert_file", std::string(cert_pem.status().message()));
  } else {
    std::vector<Cert> chain = ReadCertificates(*cert_pem);
    if (chain.empty()) {
      fail("tls_cert_file",
           absl::StrCat("'", files.cert_file,
                        "' holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
    } else {
      leaf = std::move(chain.front());
      info.subject = Subject(leaf.get());
      info.not_after = ToTime(X509_get0_notAfter(leaf.get()));
      if (info.not_after <= now) {
        fail("tls_cert_file",
             absl::StrCat("the certificate in '", files.cert_file, "' (", info.subject,
                          ") expired at ", absl::FormatTime(info.not_after, absl::UTCTimeZone())));
      }
    }
  }

  absl::StatusOr<std::string> key_pem = ReadBoundedFile(files.key_file, kMaxPemBytes);
  if (!key_pem.ok()) {
    fail("tls_key_file", std::string(key_pem.status().message()));
  } else {
    Bio bio = MemoryBio(*key_pem);
    Pkey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassword, nullptr));
    ERR_clear_error();
    if (key == nullptr) {
      fail("tls_key_file",
           absl::StrCat("'", files.key_file,
                        "' holds no readable PEM private key (an encrypted key is not supported)"));
    } else if (leaf != nullptr && X509_check_private_key(leaf.get(), key.get()) != 1) {
      ERR_clear_error();
      fail("tls_key_file",
           absl::StrCat("the key in '", files.key_file, "' does not belong to the certificate in '",
                        files.cert_file, "' (", info.subject, ")"));
    }
  }

  if (files.client_certificates()) {
    absl::StatusOr<std::string> ca_pem = ReadBoundedFile(files.client_ca_file, kMaxPemBytes);
    if (!ca_pem.ok()) {
      fail("tls_client_ca_file", std::string(ca_pem.status().message()));
    } else {
      info.client_cas = static_cast<int>(ReadCertificates(*ca_pem).size());
      if (info.client_cas == 0) {
        fail("tls_client_ca_file",
             absl::StrCat("'", files.client_ca_file, "' holds no PEM certificate"));
      }
    }
  }
  if (!ok) return std::nullopt;
  return info;
}

std::shared_ptr<grpc::ServerCredentials> MakeTlsServerCredentials(const TlsFiles& files,
                                                                  absl::Duration reload_interval) {
  const double seconds = std::ceil(absl::ToDoubleSeconds(reload_interval));
  const unsigned int refresh = seconds < 1 ? 1 : static_cast<unsigned int>(seconds);
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      files.key_file, files.cert_file, files.client_ca_file, refresh);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (files.client_certificates()) {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

std::optional<std::string> PeerCertificateName(const grpc::AuthContext& auth_context) {
  if (!auth_context.IsPeerAuthenticated()) return std::nullopt;
  const std::vector<grpc::string_ref> type =
      auth_context.FindPropertyValues(GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME);
  // "tls" from TlsServerCredentials (what the gateway uses), "ssl" from SslServerCredentials.
  if (type.empty() || (type.front() != GRPC_TLS_TRANSPORT_SECURITY_TYPE &&
                       type.front() != GRPC_SSL_TRANSPORT_SECURITY_TYPE)) {
    return std::nullopt;
  }
  for (const char* property : {GRPC_PEER_DNS_PROPERTY_NAME, GRPC_X509_CN_PROPERTY_NAME}) {
    const std::vector<grpc::string_ref> values = auth_context.FindPropertyValues(property);
    if (!values.empty()) return std::string(values.front().data(), values.front().size());
  }
  return std::nullopt;
}

}  // namespace userpilot::gateway
