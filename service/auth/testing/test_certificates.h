// Certificates made at run time for tests: a throw-away certificate authority that issues server
// and client certificates with chosen names, so no key is ever committed to the repository.
// Keys are EC P-256 (fast to generate); certificates are signed with SHA-256 by OpenSSL's
// libcrypto.
//
// Thread-safety: one authority per thread; the PEM strings are plain values.
#ifndef USERPILOT_GATEWAY_SERVICE_AUTH_TESTING_TEST_CERTIFICATES_H_
#define USERPILOT_GATEWAY_SERVICE_AUTH_TESTING_TEST_CERTIFICATES_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace userpilot::gateway::testing {

struct TestKeyAndCertificate {
  std::string key_pem;
  std::string certificate_pem;
};

// What to put in an issued certificate.
struct LeafSpec {
  std::string common_name;
  // subjectAltName entries in order, each with its type: "DNS:billing", "URI:spiffe://x/y",
  // "IP:127.0.0.1".
  std::vector<std::string> subject_alt_names;
  // Validity relative to now (the defaults: valid from an hour ago for a day).
  absl::Duration not_before = absl::Hours(-1);
  absl::Duration not_after = absl::Hours(24);
};

class TestCertificateAuthority {
 public:
  // A self-signed CA certificate with this common name.
  explicit TestCertificateAuthority(const std::string& common_name);
  ~TestCertificateAuthority();
  TestCertificateAuthority(const TestCertificateAuthority&) = delete;
  TestCertificateAuthority& operator=(const TestCertificateAuthority&) = delete;

  // The CA certificate (what clients and servers trust).
  const std::string& certificate_pem() const { return certificate_pem_; }

  // A certificate signed by this CA, with a fresh key; usable for both TLS server and client
  // authentication.
  TestKeyAndCertificate Issue(const LeafSpec& spec);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string certificate_pem_;
};

// A fresh key and a self-signed certificate for it (not from any authority).
TestKeyAndCertificate SelfSigned(const LeafSpec& spec);

// Writes `contents` to `path` (replacing it). Aborts the test binary on failure.
void WriteFileOrDie(const std::string& path, const std::string& contents);

// A fresh private directory under $TEST_TMPDIR or /tmp, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace userpilot::gateway::testing

#endif  // USERPILOT_GATEWAY_SERVICE_AUTH_TESTING_TEST_CERTIFICATES_H_
