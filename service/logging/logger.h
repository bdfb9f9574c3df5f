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
// line's members on the caller's thread and hands the line to spdlog's asynchronous logger, a
// bounded queue in front of one writer thread ("upgw-log"). Queuing never blocks: when the
// queue is full the oldest queued line is dropped and counted (dropped_lines(), exported as
// userpilot_gateway_log_lines_dropped_total). The writer holds each line until the queue behind
// it is empty (or kMaxBatchBytes have gathered) and writes the batch with one write, so a busy
// gateway makes one system call per batch, not per line. Lines keep the order in which Log()
// was called; destroying the Logger writes out every line still queued. A crash loses what is
// still queued (microseconds' worth unless the output is stalled). With queue_lines = 0 each
// line is written before Log() returns (tests, tools).
//
// Thread-safety: every method may be called from any thread (spdlog serialises writes; each
// line is written whole).
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
#include "service/logging/redactor.h"

namespace spdlog {
class logger;
namespace details {
class thread_pool;
}
namespace sinks {
class sink;
}
}  // namespace spdlog

namespace userpilot::gateway {

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
// output is stalled, at ~1.7 MB preallocated (408 bytes a line).
inline constexpr size_t kDefaultLogQueueLines = 4096;

struct LoggerOptions {
  LogSeverity level = LogSeverity::kInfo;
  // Redacted from every line. Empty: nothing to redact.
  std::string api_key;
  // > 0: lines are queued (at most this many) and written by a background thread, in batches;
  // a full queue drops its oldest line. 0: written on the caller's thread.
  size_t queue_lines = 0;
};

class Logger {
 public:
  // Writes to stderr.
  explicit Logger(const LoggerOptions& options);
  // Writes to `file`, which must stay open until the Logger is destroyed; queued lines are
  // written in batches (one fwrite and fflush each).
  Logger(const LoggerOptions& options, std::FILE* file);
  // Writes to `sink` (tests: spdlog::sinks::ostream_sink_mt), line by line.
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

  // Writes out anything buffered: at once when lines are written on the caller's thread;
  // queued behind the lines already queued otherwise (returns without waiting; like a line, the
  // request pushes out the oldest line when the queue is full).
  void Flush();

  // Lines dropped because the queue was full, since start (0 when lines are not queued).
  // Takes the queue's lock briefly: read it at scrape time, not per call.
  uint64_t dropped_lines() const;
  // The queue's bound in lines (LoggerOptions::queue_lines).
  size_t queue_lines() const { return queue_lines_; }

  // The most a batch gathers before the writer writes it without waiting for the queue to
  // empty.
  static constexpr size_t kMaxBatchBytes = size_t{64} << 10;

  const Redactor& redactor() const { return redactor_; }

 private:
  void Write(LogSeverity level, absl::string_view message, const LogField* fields, size_t count);

  // Creates logger_ writing to `sink` (through pool_ when queue_lines_ > 0).
  void Init(std::shared_ptr<spdlog::sinks::sink> sink);

  const LogSeverity level_;
  const Redactor redactor_;
  const size_t queue_lines_;
  // The queue and its writer thread (null when lines are not queued). Created before logger_,
  // and destroyed (joined) before it, so that the logger and its sink end on the destroying
  // thread.
  std::shared_ptr<spdlog::details::thread_pool> pool_;
  std::shared_ptr<spdlog::logger> logger_;
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
