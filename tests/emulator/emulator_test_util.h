// What the emulator's tests share: a libcurl client (one keep-alive connection), a fake clock,
// and a fixture that starts an emulator on that clock. Test-only; header-only.
//
// Thread-safety: FakeClock is thread-safe; a Client is used by one thread at a time.
#ifndef USERPILOT_GATEWAY_TESTS_EMULATOR_EMULATOR_TEST_UTIL_H_
#define USERPILOT_GATEWAY_TESTS_EMULATOR_EMULATOR_TEST_UTIL_H_

#include <curl/curl.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "tests/emulator/emulator.h"
#include "tests/emulator/json.h"

namespace userpilot::gateway::testing {

inline constexpr char kKey[] = "emulator-key";

// A clock tests move by hand; thread-safe.
class FakeClock {
 public:
  absl::Time Now() const {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ = absl::FromUnixSeconds(1747639752);  // 2025-05-19T07:29:12Z
};

struct HttpResult {
  CURLcode code = CURLE_OK;
  long status = 0;  // NOLINT(runtime/int): curl's type.
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // Lower-cased names.
  absl::Duration elapsed;

  std::string Header(absl::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return "";
  }
  google::protobuf::Value Json() const {
    absl::StatusOr<google::protobuf::Value> v = ParseJson(body);
    EXPECT_TRUE(v.ok()) << v.status() << " in " << body;
    return v.ok() ? *v : google::protobuf::Value();
  }
};

struct Request {
  std::string method = "GET";
  std::string path;
  std::string body;
  std::vector<std::string> headers;  // "Name: value".
  bool auth = true;                  // Adds Authorization: Token emulator-key.
  long timeout_ms = 5000;            // NOLINT(runtime/int): curl's type.
  // A new connection, closed afterwards. Needed where a request is dropped: libcurl silently
  // resends a request once when a *reused* connection closes without an answer.
  bool fresh_connection = false;
  // A multipart/form-data upload instead of `body`: field `file`.
  bool multipart = false;
  std::string filename;
  std::string file_type;
};

// One keep-alive connection's worth of libcurl easy handle.
class Client {
 public:
  explicit Client(std::string base_url) : base_url_(std::move(base_url)), curl_(curl_easy_init()) {}
  ~Client() { curl_easy_cleanup(curl_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  HttpResult Do(const Request& r) {
    HttpResult result;
    curl_easy_reset(curl_);
    const std::string url = base_url_ + r.path;
    curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, r.method.c_str());
    curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, r.timeout_ms);
    curl_easy_setopt(curl_, CURLOPT_NOSIGNAL, 1L);
    if (r.fresh_connection) {
      curl_easy_setopt(curl_, CURLOPT_FRESH_CONNECT, 1L);
      curl_easy_setopt(curl_, CURLOPT_FORBID_REUSE, 1L);
    }
    curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &Client::OnBody);
    curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &result.body);
    curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, &Client::OnHeader);
    curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &result.headers);
    curl_slist* headers = nullptr;
    if (r.auth) headers = curl_slist_append(headers, "Authorization: Token emulator-key");
    for (const std::string& h : r.headers) headers = curl_slist_append(headers, h.c_str());
    headers = curl_slist_append(headers, "Expect:");
    curl_mime* mime = nullptr;
    if (r.multipart) {
      mime = curl_mime_init(curl_);
      curl_mimepart* part = curl_mime_addpart(mime);
      curl_mime_name(part, "file");
      curl_mime_data(part, r.body.data(), r.body.size());
      if (!r.filename.empty()) curl_mime_filename(part, r.filename.c_str());
      if (!r.file_type.empty()) curl_mime_type(part, r.file_type.c_str());
      curl_easy_setopt(curl_, CURLOPT_MIMEPOST, mime);
    } else if (!r.body.empty() || r.method == "POST") {
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, r.body.data());
      curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE, static_cast<long>(r.body.size()));
      curl_easy_setopt(curl_, CURLOPT_CUSTOMREQUEST, r.method.c_str());
      if (r.method != "GET") headers = curl_slist_append(headers, "Content-Type: application/json");
    }
    curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, headers);
    const absl::Time start = absl::Now();
    result.code = curl_easy_perform(curl_);
    result.elapsed = absl::Now() - start;
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &result.status);
    curl_slist_free_all(headers);
    if (mime != nullptr) curl_mime_free(mime);
    return result;
  }

  HttpResult Get(const std::string& path) {
    Request r;
    r.path = path;
    return Do(r);
  }
  HttpResult GetOnFreshConnection(const std::string& path) {
    Request r;
    r.path = path;
    r.fresh_connection = true;
    return Do(r);
  }
  HttpResult Send(const std::string& method, const std::string& path, const std::string& body) {
    Request r;
    r.method = method;
    r.path = path;
    r.body = body;
    return Do(r);
  }
  HttpResult Post(const std::string& path, const std::string& body) {
    return Send("POST", path, body);
  }
  HttpResult Upload(const std::string& path, const std::string& content,
                    const std::string& filename, const std::string& type = "") {
    Request r;
    r.method = "POST";
    r.path = path;
    r.body = content;
    r.multipart = true;
    r.filename = filename;
    r.file_type = type;
    return Do(r);
  }

 private:
  static size_t OnBody(char* data, size_t size, size_t n, void* out) {
    static_cast<std::string*>(out)->append(data, size * n);
    return size * n;
  }
  static size_t OnHeader(char* data, size_t size, size_t n, void* out) {
    absl::string_view line(data, size * n);
    const size_t colon = line.find(':');
    if (colon != absl::string_view::npos) {
      static_cast<std::vector<std::pair<std::string, std::string>>*>(out)->emplace_back(
          absl::AsciiStrToLower(line.substr(0, colon)),
          std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
    }
    return size * n;
  }

  const std::string base_url_;
  CURL* const curl_;
};

inline std::string Str(const google::protobuf::Value& v, absl::string_view key) {
  const google::protobuf::Value* f = FindField(v, key);
  return f == nullptr ? "<absent>" : f->string_value();
}

// The first error of a Userpilot error body.
inline google::protobuf::Value FirstError(const HttpResult& r) {
  const google::protobuf::Value body = r.Json();
  const google::protobuf::Value* errors = FindField(body, "errors");
  if (errors == nullptr || errors->list_value().values_size() == 0) {
    ADD_FAILURE() << "no errors array in " << r.body;
    return google::protobuf::Value();
  }
  return errors->list_value().values(0);
}

inline std::string Users(int n) {
  std::vector<std::string> rows;
  for (int i = 0; i < n; ++i) rows.push_back(absl::StrCat(R"({"user_id":"u)", i, R"("})"));
  return absl::StrCat(R"({"users":[)", absl::StrJoin(rows, ","), "]}");
}

class EmulatorTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(EmulatorOptions()); }

  // (Re)starts the emulator with `options` on the fake clock.
  void Start(EmulatorOptions options) {
    client_.reset();
    emulator_.reset();
    options.clock = [this] { return clock_.Now(); };
    absl::StatusOr<std::unique_ptr<Emulator>> e = Emulator::Start(std::move(options));
    ASSERT_TRUE(e.ok()) << e.status();
    emulator_ = *std::move(e);
    client_ = std::make_unique<Client>(emulator_->base_url());
  }

  FakeClock clock_;
  std::unique_ptr<Emulator> emulator_;
  std::unique_ptr<Client> client_;  // Destroyed first: connections close before the server.
};

}  // namespace userpilot::gateway::testing

#endif  // USERPILOT_GATEWAY_TESTS_EMULATOR_EMULATOR_TEST_UTIL_H_
