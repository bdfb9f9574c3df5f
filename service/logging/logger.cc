#include "service/logging/logger.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <utility>
#include <vector>

#include "google/protobuf/stubs/logging.h"
#include "grpc/support/log.h"
#include "service/logging/json_writer.h"
#include "service/logging/log_writer.h"
#include "spdlog/logger.h"
#include "spdlog/pattern_formatter.h"
#include "spdlog/sinks/base_sink.h"

namespace userpilot::gateway {
namespace {

// Time and level come from spdlog; %v is the rest of the object (members, already JSON).
constexpr char kPattern[] = R"({"time":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l",%v})";

spdlog::level::level_enum SpdlogLevel(LogSeverity level) {
  switch (level) {
    case LogSeverity::kDebug:
      return spdlog::level::debug;
    case LogSeverity::kInfo:
      return spdlog::level::info;
    case LogSeverity::kWarning:
      return spdlog::level::warn;
    case LogSeverity::kError:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

// The file sink. Batching (lines queued, written by the writer thread): lines gather in `batch_`
// until the writer flushes at the end of its batch, or kMaxBatchBytes have gathered, then go out
// in one fwrite and fflush. Otherwise each line goes out at once.
class BatchingFileSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  BatchingFileSink(std::FILE* file, bool batching) : file_(file), batching_(batching) {}
  ~BatchingFileSink() override { WriteOut(); }

 protected:
  void sink_it_(const spdlog::details::log_msg& message) override {
    formatter_->format(message, batch_);  // Appends.
    if (!batching_ || batch_.size() >= Logger::kMaxBatchBytes) WriteOut();
  }
  void flush_() override { WriteOut(); }

 private:
  void WriteOut() {
    if (batch_.size() == 0) return;
    std::fwrite(batch_.data(), 1, batch_.size(), file_);
    std::fflush(file_);
    batch_.clear();
  }

  std::FILE* const file_;
  const bool batching_;
  spdlog::memory_buf_t batch_;
};

std::atomic<Logger*> grpc_logger{nullptr};

void GrpcLogFunction(gpr_log_func_args* args) {
  Logger* logger = grpc_logger.load(std::memory_order_acquire);
  if (logger == nullptr) {  // Released: plain text, as gRPC would write it.
    std::fprintf(stderr, "grpc %s:%d: %s\n", args->file != nullptr ? args->file : "?", args->line,
                 args->message != nullptr ? args->message : "");
    return;
  }
  LogSeverity level = LogSeverity::kError;
  if (args->severity == GPR_LOG_SEVERITY_DEBUG) level = LogSeverity::kDebug;
  if (args->severity == GPR_LOG_SEVERITY_INFO) level = LogSeverity::kInfo;
  logger->Log(level, "grpc",
              {{"file", args->file != nullptr ? args->file : ""},
               {"line", args->line},
               {"detail", args->message != nullptr ? args->message : ""}});
}

// Protobuf's own messages (e.g. "String field ... contains invalid UTF-8 data when parsing"),
// which its default handler writes to stderr as plain `[libprotobuf ERROR]` lines.
void ProtobufLogFunction(google::protobuf::LogLevel severity, const char* file, int line,
                         const std::string& message) {
  Logger* logger = grpc_logger.load(std::memory_order_acquire);
  if (logger == nullptr) {  // Released: plain text, as protobuf would write it.
    std::fprintf(stderr, "[libprotobuf %d %s:%d] %s\n", static_cast<int>(severity),
                 file != nullptr ? file : "?", line, message.c_str());
    return;
  }
  LogSeverity level = LogSeverity::kError;
  if (severity == google::protobuf::LOGLEVEL_INFO) level = LogSeverity::kInfo;
  if (severity == google::protobuf::LOGLEVEL_WARNING) level = LogSeverity::kWarning;
  logger->Log(level, "protobuf",
              {{"file", file != nullptr ? file : ""}, {"line", line}, {"detail", message}});
}

}  // namespace

std::optional<LogSeverity> ParseLogSeverity(absl::string_view name) {
  if (name == "debug") return LogSeverity::kDebug;
  if (name == "info") return LogSeverity::kInfo;
  if (name == "warning" || name == "warn") return LogSeverity::kWarning;
  if (name == "error") return LogSeverity::kError;
  return std::nullopt;
}

Logger::Logger(const LoggerOptions& options) : Logger(options, stderr) {}

Logger::Logger(const LoggerOptions& options, std::FILE* file)
    : level_(options.level), redactor_(options.api_key), queue_lines_(options.queue_lines) {
  Init(std::make_shared<BatchingFileSink>(file, queue_lines_ > 0), options.linger);
}

Logger::Logger(const LoggerOptions& options, std::shared_ptr<spdlog::sinks::sink> sink)
    : level_(options.level), redactor_(options.api_key), queue_lines_(options.queue_lines) {
  Init(std::move(sink), options.linger);
}

void Logger::Init(std::shared_ptr<spdlog::sinks::sink> sink, absl::Duration linger) {
  logger_ = std::make_shared<spdlog::logger>("userpilot-gateway", std::move(sink));
  logger_->set_formatter(
      std::make_unique<spdlog::pattern_formatter>(kPattern, spdlog::pattern_time_type::utc));
  logger_->set_level(SpdlogLevel(level_));
  if (queue_lines_ == 0) {
    logger_->flush_on(spdlog::level::debug);  // Every line, at once.
    return;
  }
  // On the writer thread: each line through the formatter into the sink, then one flush (the
  // file sink's write) for the batch.
  writer_ = std::make_unique<LogWriter>(
      queue_lines_, absl::ToChronoNanoseconds(linger), kMaxBatchBytes,
      [logger = logger_.get()](const std::vector<QueuedLogLine>& lines) {
        for (const QueuedLogLine& line : lines) {
          logger->log(line.time, spdlog::source_loc{}, line.level,
                      spdlog::string_view_t(line.members.data(), line.members.size()));
        }
        logger->flush();
      });
}

Logger::~Logger() {
  Logger* self = this;
  grpc_logger.compare_exchange_strong(self, nullptr);  // A forgotten CaptureGrpcLogs(nullptr).
  // The writer writes out every queued line and is joined; then, on this thread, the logger and
  // its sink go.
  writer_.reset();
  logger_->flush();
  logger_.reset();
}

bool Logger::Enabled(LogSeverity level) const {
  return static_cast<int>(level) >= static_cast<int>(level_);
}

void Logger::Write(LogSeverity level, absl::string_view message, const LogField* fields,
                   size_t count) {
  if (!Enabled(level)) return;
  JsonObject line;
  line.Add("msg", redactor_.Redact(message));
  for (const LogField* field_ptr = fields; field_ptr != fields + count; ++field_ptr) {
    const LogField& field = *field_ptr;
    std::visit(
        [&](const auto& value) {
          using T = std::decay_t<decltype(value)>;
          if constexpr (std::is_same_v<T, std::string>) {
            line.Add(field.key, redactor_.Redact(value));
          } else {
            line.Add(field.key, value);
          }
        },
        field.value);
  }
  // The finished line is checked once more: escaping could, in theory, produce one of the
  // key's escaped forms from text that did not hold the key itself.
  std::string members = line.TakeMembers();
  if (redactor_.Contains(members)) members = redactor_.Redact(members);
  if (writer_ == nullptr) {
    logger_->log(SpdlogLevel(level), spdlog::string_view_t(members.data(), members.size()));
    return;
  }
  // The time is the caller's, as for a line written at once.
  writer_->Push(QueuedLogLine{spdlog::log_clock::now(), SpdlogLevel(level), std::move(members)},
                /*urgent=*/level >= LogSeverity::kWarning);
}

void Logger::Flush() {
  if (writer_ != nullptr) {
    writer_->Flush();  // The writer flushes the sink after each batch.
  } else {
    logger_->flush();
  }
}

uint64_t Logger::dropped_lines() const { return writer_ == nullptr ? 0 : writer_->dropped(); }

uint64_t Logger::writer_wakeups() const { return writer_ == nullptr ? 0 : writer_->wakeups(); }

void CaptureGrpcLogs(Logger* logger) {
  grpc_logger.store(logger, std::memory_order_release);
  gpr_set_log_function(&GrpcLogFunction);
  google::protobuf::SetLogHandler(&ProtobufLogFunction);
  gpr_log_verbosity_init();  // GRPC_VERBOSITY, or ERROR (a no-op once gRPC has done it).
  // gRPC filters by its own verbosity (GRPC_VERBOSITY, default ERROR) before calling us; only
  // --log_level=debug opens it further.
  if (logger != nullptr && logger->Enabled(LogSeverity::kDebug)) {
    gpr_set_log_verbosity(GPR_LOG_SEVERITY_DEBUG);
  }
}

}  // namespace userpilot::gateway
