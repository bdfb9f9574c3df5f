#include "service/auth/testing/test_certificates.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "absl/strings/str_join.h"

namespace userpilot::gateway::testing {
namespace {

[[noreturn]] void Die(const char* what) {
  std::cerr << "test_certificates: " << what << " failed\n";
  std::abort();
}

struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using Cert = std::unique_ptr<X509, X509Deleter>;

Pkey NewKey() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) Die("EVP_EC_gen");
  return Pkey(key);
}

std::string ToPem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    Die("PEM_write_bio_PrivateKey");
  }
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(size));
  BIO_free(bio);
  return pem;
}

std::string ToPem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (PEM_write_bio_X509(bio, cert) != 1) Die("PEM_write_bio_X509");
  char* data = nullptr;
  long size = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(size));
  BIO_free(bio);
  return pem;
}

void AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) Die("X509V3_EXT_conf_nid");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `key` named `spec`, issued by `issuer` (itself when null) with
// `issuer_key`.
Cert MakeCertificate(const LeafSpec& spec, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key,
                     bool is_ca) {
  static long serial = 1;
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), absl::ToInt64Seconds(spec.not_before));
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), absl::ToInt64Seconds(spec.not_after));
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (!spec.common_name.empty()) {
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(spec.common_name.c_str()), -1,
                               -1, 0);
  }
  X509_set_issuer_name(cert.get(), issuer == nullptr ? name : X509_get_subject_name(issuer));
  X509* issuer_cert = issuer == nullptr ? cert.get() : issuer;
  if (is_ca) {
    AddExtension(cert.get(), issuer_cert, NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(cert.get(), issuer_cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExtension(cert.get(), issuer_cert, NID_basic_constraints, "critical,CA:FALSE");
    AddExtension(cert.get(), issuer_cert, NID_key_usage, "critical,digitalSignature");
    AddExtension(cert.get(), issuer_cert, NID_ext_key_usage, "serverAuth,clientAuth");
  }
  if (!spec.subject_alt_names.empty()) {
    AddExtension(cert.get(), issuer_cert, NID_subject_alt_name,
                 absl::StrJoin(spec.subject_alt_names, ","));
  }
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) == 0) Die("X509_sign");
  return cert;
}

}  // namespace

struct TestCertificateAuthority::Impl {
  Pkey key;
  Cert cert;
};

TestCertificateAuthority::TestCertificateAuthority(const std::string& common_name)
    : impl_(std::make_unique<Impl>()) {
  impl_->key = NewKey();
  LeafSpec spec;
  spec.common_name = common_name;
  impl_->cert = MakeCertificate(spec, impl_->key.get(), nullptr, impl_->key.get(), true);
  certificate_pem_ = ToPem(impl_->cert.get());
}

TestCertificateAuthority::~TestCertificateAuthority() = default;

TestKeyAndCertificate TestCertificateAuthority::Issue(const LeafSpec& spec) {
  Pkey key = NewKey();
  Cert cert = MakeCertificate(spec, key.get(), impl_->cert.get(), impl_->key.get(), false);
  return {ToPem(key.get()), ToPem(cert.get())};
}

TestKeyAndCertificate SelfSigned(const LeafSpec& spec) {
  Pkey key = NewKey();
  Cert cert = MakeCertificate(spec, key.get(), nullptr, key.get(), false);
  return {ToPem(key.get()), ToPem(cert.get())};
}

void WriteFileOrDie(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
  out.close();
  if (!out) Die(("writing " + path).c_str());
}

TempDir::TempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/upgw-auth-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) Die("mkdtemp");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace userpilot::gateway::testing
