// The bearer tokens in force: `--caller_tokens_file`, re-read while the gateway runs.
//
// Kubernetes updates a mounted Secret by writing the new files into a fresh directory and
// swapping a symlink, so a file's path stays the same while what it names changes; an operator
// editing the file in place changes its contents under the same name. Either way the store
// notices: its own thread re-reads the file every `reload_interval` (a small file, read in
// microseconds) and, when the contents differ from the last good load and parse, publishes them
// as a new immutable snapshot. A read or parse failure keeps the previous tokens in force (a
// half-written file never locks every caller out) and is reported once until the outcome
// changes.
//
// gRPC threads only take a snapshot (a shared_ptr copy under a mutex held for a pointer copy):
// no call ever waits on file I/O.
//
// Thread-safety: Snapshot() and ReloadNow() from any thread. The report callback runs on the
// thread that reloaded (the store's own, or ReloadNow's caller), never concurrently with itself.
#ifndef USERPILOT_GATEWAY_SERVICE_AUTH_CALLER_TOKEN_STORE_H_
#define USERPILOT_GATEWAY_SERVICE_AUTH_CALLER_TOKEN_STORE_H_

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/auth/caller_tokens.h"

namespace userpilot::gateway {

class CallerTokenStore {
 public:
  // Largest token file read; a larger one is refused (the previous tokens stay in force).
  static constexpr size_t kMaxFileBytes = 1 << 20;

  // What one reload changed: OK with the new tokens' counts, or why the file was not taken.
  struct Reload {
    absl::Status status;
    size_t tokens = 0;   // Entries now in force (after a failure: the previous ones).
    size_t callers = 0;  // Distinct caller names now in force.
  };

  struct Options {
    std::string path;
    // How often the file is re-read. Must be positive.
    absl::Duration reload_interval = absl::Seconds(10);
    // Told about every reload that loaded new tokens, and about a failure when the previous
    // attempt did not fail the same way (so a broken file is reported once, not every
    // interval). May be empty. Must not call back into the store.
    std::function<void(const Reload&)> on_reload;
  };

  // Reads and parses the file on the calling thread (start-up), then starts the reload thread.
  // Errors: the file cannot be read, is larger than kMaxFileBytes, or does not parse
  // (CallerTokens::Parse's message, naming the line).
  static absl::StatusOr<std::unique_ptr<CallerTokenStore>> Start(Options options);

  // Stops the reload thread (waits at most for a reload in progress).
  ~CallerTokenStore();
  CallerTokenStore(const CallerTokenStore&) = delete;
  CallerTokenStore& operator=(const CallerTokenStore&) = delete;

  // The tokens in force. Never null.
  std::shared_ptr<const CallerTokens> Snapshot() const;

  // Re-reads the file now, on the calling thread, exactly as the reload thread does every
  // interval. Returns what happened: OK (new tokens or unchanged contents) or the failure.
  absl::Status ReloadNow();

  const std::string& path() const { return options_.path; }

 private:
  CallerTokenStore(Options options, std::shared_ptr<const CallerTokens> tokens,
                   std::string contents);
  void Run();

  const Options options_;

  mutable std::mutex snapshot_mu_;
  std::shared_ptr<const CallerTokens> snapshot_;  // Guarded by snapshot_mu_.

  std::mutex reload_mu_;         // Serializes reloads (the thread and ReloadNow).
  std::string loaded_contents_;  // Guarded by reload_mu_: the file as last taken.
  std::string last_failure_;     // Guarded by reload_mu_: last failure reported, "" if none.

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;  // Guarded by stop_mu_.
  std::thread thread_;
};

// Reads a whole file of at most `max_bytes`. Errors name the path and the reason, never the
// contents: NOT_FOUND (cannot open or read), INVALID_ARGUMENT (larger than max_bytes).
absl::StatusOr<std::string> ReadBoundedFile(const std::string& path, size_t max_bytes);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_AUTH_CALLER_TOKEN_STORE_H_
