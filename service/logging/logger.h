// Logger: the gateway's structured logs - one JSON object per line on stderr, through Debian's
// spdlog - with the API key redacted from everything written.
//
//   {"time":"2026-11-28T23:06:59.123456Z","level":"info","msg":"serving","port":50051}
//
// `time` is UTC with microseconds; `level` is debug, info, warning or error; `msg` says what
// happened; further members are the fields given, in order. The level threshold comes from
// --log_level (ParseLogSeverity(LogLevelName(config.log_level))): lines below it cost one
// comparison. Every string (the
// message and each field) is redacted, then JSON-escaped, and the finished line is checked
// once more, so no form of the key reaches the output.
//
// The composition root creates one Logger and hands it (by reference) to what logs: AccessLog
// for per-call lines, main for start-up and shutdown lines. CaptureGrpcLogs() routes gRPC's own
// log output through it too.
//
// Off the call path (LoggerOptions::queue_lines > 0, what the gateway runs): Log() formats the
// line's members on the caller's thread and queues them for one writer thread ("upgw-log",
// LogWriter in log_writer.h), which adds time and level through spdlog's formatter and writes.
// Queuing never blocks: when the queue is full the oldest queued line is dropped and counted
// (dropped_lines(), exported as userpilot_gateway_log_lines_dropped_total). The writer wakes
// once per batch, not per line: it lets lines gather for up to LoggerOptions::linger (20 ms),
// and is woken earlier only by a warning or error (written at once), a queue half full or
// holding kMaxBatchBytes, Flush() or the destructor. It writes each batch with one write per
// kMaxBatchBytes, so a busy gateway makes one system call and one writer wake-up per batch.
// Lines keep the order in which Log() was called; destroying the Logger writes out every line
// still queued. A crash loses what is still queued: the lines of the last linger (20 ms), more
// only if the output is stalled. With queue_lines = 0 each line is written before Log()
// returns (tests, tools).
//
// The queue is LogWriter's own rather than spdlog's asynchronous logger because that one wakes
// its writer (a futex call on the caller's thread, a context switch on the writer's) for every
// line; spdlog stays the formatter and the sink.
//
// Thread-safety: every method may be called from any thread (one writer thread or spdlog's sink
// lock serialises writes; each line is written whole).
#ifndef USERPILOT_GATEWAY_SERVICE_LOGGING_LOGGER_H_
#define USERPILOT_GATEWAY_SERVICE_LOGGING_LOGGER_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/logging/redactor.h"

namespace spdlog {
class logger;
namespace sinks {
class sink;
}
}  // namespace spdlog

namespace userpilot::gateway {

class LogWriter;

// Severity of a line and threshold of a Logger. The logging library does not depend on the
// configuration; ParseLogSeverity reads --log_level's values.
enum class LogSeverity { kDebug, kInfo, kWarning, kError };

// "debug", "info", "warning" (or "warn") or "error"; nullopt for anything else.
std::optional<LogSeverity> ParseLogSeverity(absl::string_view name);

// One `key: value` member of a log line. Keys are fixed names in code (snake_case), never
// data.
struct LogField {
  LogField(absl::string_view k, absl::string_view v) : key(k), value(std::string(v)) {}
  LogField(absl::string_view k, const char* v) : key(k), value(std::string(v)) {}
  LogField(absl::string_view k, const std::string& v) : key(k), value(v) {}
  LogField(absl::string_view k, int v) : key(k), value(int64_t{v}) {}
  LogField(absl::string_view k, long v) : key(k), value(int64_t{v}) {}                 // NOLINT
  LogField(absl::string_view k, long long v) : key(k), value(int64_t{v}) {}            // NOLINT
  LogField(absl::string_view k, unsigned long v) : key(k), value(uint64_t{v}) {}       // NOLINT
  LogField(absl::string_view k, unsigned long long v) : key(k), value(uint64_t{v}) {}  // NOLINT
  LogField(absl::string_view k, double v) : key(k), value(v) {}
  LogField(absl::string_view k, bool v) : key(k), value(v) {}

  absl::string_view key;
  std::variant<std::string, int64_t, uint64_t, double, bool> value;
};

// The gateway's log queue: 4,096 lines (about 2 s of access log at 2,000 calls/s) while the
// output is stalled: 192 KiB of slots preallocated (48 bytes a line), plus each queued line's
// text on the heap (an access-log line's: ~260 bytes in a buffer of up to ~520; ~2 MB when
// full).
inline constexpr size_t kDefaultLogQueueLines = 4096;

// How long a queued line waits for others to join its batch. 20 ms: about 50 writer wake-ups a
// second under steady traffic of info lines (0.1 per call at 500 calls/s; more only when
// kMaxBatchBytes gather sooner, above ~10,000 lines a second), invisible to someone tailing the
// log, and little lost in a crash (40 lines at 2,000 calls/s).
inline constexpr absl::Duration kDefaultLogLinger = absl::Milliseconds(20);

struct LoggerOptions {
  LogSeverity level = LogSeverity::kInfo;
  // Redacted from every line. Empty: nothing to redact.
  std::string api_key;
  // > 0: lines are queued (at most this many) and written by a background thread, in batches;
  // a full queue drops its oldest line. 0: written on the caller's thread.
  size_t queue_lines = 0;
  // With a queue: the longest an info or debug line waits for others to join its batch.
  absl::Duration linger = kDefaultLogLinger;
};

class Logger {
 public:
  // Writes to stderr.
  explicit Logger(const LoggerOptions& options);
  // Writes to `file`, which must stay open until the Logger is destroyed; queued lines are
  // written in batches (one fwrite and fflush each).
  Logger(const LoggerOptions& options, std::FILE* file);
  // Writes to `sink` (tests: spdlog::sinks::ostream_sink_mt), line by line, flushing it after
  // each batch.
  Logger(const LoggerOptions& options, std::shared_ptr<spdlog::sinks::sink> sink);
  // Writes out every queued line, then returns.
  ~Logger();

  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  // Whether a line at `level` would be written.
  bool Enabled(LogSeverity level) const;

  void Log(LogSeverity level, absl::string_view message,
           std::initializer_list<LogField> fields = {}) {
    Write(level, message, fields.begin(), fields.size());
  }
  void Log(LogSeverity level, absl::string_view message, const std::vector<LogField>& fields) {
    Write(level, message, fields.data(), fields.size());
  }
  void Debug(absl::string_view message, std::initializer_list<LogField> fields = {}) {
    Log(LogSeverity::kDebug, message, fields);
  }
  void Info(absl::string_view message, std::initializer_list<LogField> fields = {}) {
    Log(LogSeverity::kInfo, message, fields);
  }
  void Warning(absl::string_view message, std::initializer_list<LogField> fields = {}) {
    Log(LogSeverity::kWarning, message, fields);
  }
  void Error(absl::string_view message, std::initializer_list<LogField> fields = {}) {
    Log(LogSeverity::kError, message, fields);
  }

  // Returns once every line logged before the call is written out (or was dropped). With a
  // queue it wakes the writer and waits for it, however long the output is stalled: for
  // shutdown paths and tests, never the call path.
  void Flush();

  // Lines dropped because the queue was full, since start (0 when lines are not queued).
  // Takes the queue's lock briefly: read it at scrape time, not per call.
  uint64_t dropped_lines() const;
  // The queue's bound in lines (LoggerOptions::queue_lines).
  size_t queue_lines() const { return queue_lines_; }
  // How many times the writer thread has woken (0 when lines are not queued): tests and
  // benchmarks check that it wakes per batch, not per line.
  uint64_t writer_wakeups() const;

  // The most a batch gathers before the writer writes it (one write each), and what queued
  // text wakes a lingering writer.
  static constexpr size_t kMaxBatchBytes = size_t{64} << 10;

  const Redactor& redactor() const { return redactor_; }

 private:
  void Write(LogSeverity level, absl::string_view message, const LogField* fields, size_t count);

  // Creates logger_ writing to `sink`, and writer_ when queue_lines_ > 0.
  void Init(std::shared_ptr<spdlog::sinks::sink> sink, absl::Duration linger);

  const LogSeverity level_;
  const Redactor redactor_;
  const size_t queue_lines_;
  std::shared_ptr<spdlog::logger> logger_;
  // The queue and its writer thread, which calls logger_ (null when lines are not queued).
  // Created after logger_ and destroyed (joined) before it, so that the logger and its sink end
  // on the destroying thread.
  std::unique_ptr<LogWriter> writer_;
};

// Routes gRPC's own log output (gpr_log) through `logger` as JSON lines (msg "grpc", with
// `file`, `line` and `detail`), at gRPC's severity, and protobuf's (SetLogHandler) the same way
// (msg "protobuf"), so that nothing but JSON reaches stderr. gRPC's own filter still applies first
// (GRPC_VERBOSITY, default ERROR), opened to DEBUG when the logger's level is debug. nullptr
// switches back to plain stderr lines. Call CaptureGrpcLogs(nullptr) before destroying the
// logger, once gRPC's servers and channels are shut down (a log call racing with the switch
// could still use the old logger).
void CaptureGrpcLogs(Logger* logger);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_LOGGING_LOGGER_H_
