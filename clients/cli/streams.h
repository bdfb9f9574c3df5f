// userpilotctl's streaming calls: WatchJob and WatchJobs (print every state as it arrives) and
// ImportData (stream a local file to the gateway in chunks, never reading it whole).
//
// They are made through the C++ client library (clients/cpp), which connects, sets the
// deadline, sends `x-caller` (and the bearer token) and reconnects a watch the gateway ended
// early; here they take userpilotctl's shapes (a file path, absl::Time deadlines, callbacks
// that always go on).
//
// Thread-safety: each function blocks until its call ends; callbacks run on the calling
// thread. Safe to call from several threads at once.
#ifndef USERPILOT_GATEWAY_CLIENTS_CLI_STREAMS_H_
#define USERPILOT_GATEWAY_CLIENTS_CLI_STREAMS_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "clients/cpp/client.h"
#include "grpcpp/support/status.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway::cli {

// Called with each state a watch receives.
using JobCallback = std::function<void(const v1::Job&)>;

// How many watch attempts in a row may bring no new state before a watch gives up: a watch
// outlives a replica draining or restarting (the library's backoff spreads these attempts over
// about 15 to 30 seconds).
inline constexpr int kWatchAttempts = 11;

// Streams the states of `job_id` until the job ends; `deadline` InfiniteFuture means none.
// After UNAVAILABLE (a gateway replica draining, a connection closed for its age) or the
// gateway's own deadline cap, the watch reconnects, up to kWatchAttempts attempts in a row
// that bring nothing new, and skips the state it already delivered. The status is OK after a
// terminal state, else the last attempt's.
grpc::Status WatchJob(client::Client& client, const std::string& job_id, absl::Time deadline,
                      const JobCallback& on_job);

// Streams WatchJobs until it ends (cancel with the deadline, or Ctrl-C); reconnects as WatchJob
// does.
grpc::Status WatchJobs(client::Client& client, bool include_existing, absl::Time deadline,
                       const JobCallback& on_job);

// The header to send for the file at `path`: `header` as given, with filename defaulting to
// the path's last component, format (when unset) from the extension (.csv -> CSV; .ndjson,
// .jsonl, .json -> NDJSON) and size_bytes from the file. INVALID_ARGUMENT when the file cannot
// be read or the format cannot be guessed.
absl::StatusOr<v1::ImportHeader> CompleteImportHeader(v1::ImportHeader header,
                                                      const std::string& path);

// Sends `header`, then the file at `path` in chunks of `chunk_bytes`, and returns the job the
// gateway answered with in `job`. The file is read chunk by chunk as the stream accepts it
// (gRPC flow control), so memory stays at one chunk. Never retried (the file is consumed). A
// local read error cancels the call (UNKNOWN status naming the file).
grpc::Status ImportFile(client::Client& client, const v1::ImportHeader& header,
                        const std::string& path, absl::Time deadline, v1::Job* job,
                        size_t chunk_bytes = 256 * 1024);

// One human line about `job`: "bulk:jobs:...  processing  120/500 rows  12s".
std::string ProgressLine(const v1::Job& job);

}  // namespace userpilot::gateway::cli

#endif  // USERPILOT_GATEWAY_CLIENTS_CLI_STREAMS_H_
