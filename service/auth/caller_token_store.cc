#include "service/auth/caller_token_store.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace userpilot::gateway {

absl::StatusOr<std::string> ReadBoundedFile(const std::string& path, size_t max_bytes) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot open '", path, "': ", std::strerror(errno)));
  }
  std::string data;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
    if (data.size() + n > max_bytes) {
      std::fclose(f);
      return absl::InvalidArgumentError(
          absl::StrCat("'", path, "' is larger than ", max_bytes, " bytes"));
    }
    data.append(buf, n);
  }
  const int err = errno;
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) {
    return absl::NotFoundError(absl::StrCat("cannot read '", path, "': ", std::strerror(err)));
  }
  return data;
}

absl::StatusOr<std::unique_ptr<CallerTokenStore>> CallerTokenStore::Start(Options options) {
  if (options.reload_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the token file's reload interval must be positive");
  }
  absl::StatusOr<std::string> contents = ReadBoundedFile(options.path, kMaxFileBytes);
  if (!contents.ok()) return contents.status();
  absl::StatusOr<CallerTokens> tokens = CallerTokens::Parse(*contents, options.path);
  if (!tokens.ok()) return tokens.status();
  std::unique_ptr<CallerTokenStore> store(new CallerTokenStore(
      std::move(options), std::make_shared<const CallerTokens>(*std::move(tokens)),
      *std::move(contents)));
  store->thread_ = std::thread([s = store.get()] { s->Run(); });
  return store;
}

CallerTokenStore::CallerTokenStore(Options options, std::shared_ptr<const CallerTokens> tokens,
                                   std::string contents)
    : options_(std::move(options)),
      snapshot_(std::move(tokens)),
      loaded_contents_(std::move(contents)) {}

CallerTokenStore::~CallerTokenStore() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<const CallerTokens> CallerTokenStore::Snapshot() const {
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  return snapshot_;
}

void CallerTokenStore::Run() {
  const auto interval = absl::ToChronoMilliseconds(options_.reload_interval);
  std::unique_lock<std::mutex> lock(stop_mu_);
  while (!stop_cv_.wait_for(lock, interval, [this] { return stopping_; })) {
    lock.unlock();
    ReloadNow().IgnoreError();  // Reported through on_reload.
    lock.lock();
  }
}

absl::Status CallerTokenStore::ReloadNow() {
  std::lock_guard<std::mutex> lock(reload_mu_);
  absl::StatusOr<std::string> contents = ReadBoundedFile(options_.path, kMaxFileBytes);
  absl::Status status = contents.status();
  std::shared_ptr<const CallerTokens> loaded;
  if (status.ok()) {
    if (*contents == loaded_contents_) {
      last_failure_.clear();
      return absl::OkStatus();
    }
    absl::StatusOr<CallerTokens> tokens = CallerTokens::Parse(*contents, options_.path);
    status = tokens.status();
    if (tokens.ok()) loaded = std::make_shared<const CallerTokens>(*std::move(tokens));
  }
  Reload report;
  if (loaded != nullptr) {
    {
      std::lock_guard<std::mutex> snapshot_lock(snapshot_mu_);
      snapshot_ = loaded;
    }
    loaded_contents_ = *std::move(contents);
    last_failure_.clear();
    report.tokens = loaded->entries().size();
    report.callers = loaded->Callers().size();
  } else {
    status = absl::Status(status.code(),
                          absl::StrCat(status.message(), " (the previous tokens stay in force)"));
    if (status.ToString() == last_failure_) return status;
    last_failure_ = status.ToString();
    std::shared_ptr<const CallerTokens> current = Snapshot();
    report.tokens = current->entries().size();
    report.callers = current->Callers().size();
  }
  report.status = status;
  if (options_.on_reload) options_.on_reload(report);
  return status;
}

}  // namespace userpilot::gateway
