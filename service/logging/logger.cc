#include "service/logging/logger.h"

#include <pthread.h>

#include <atomic>
#include <cstdio>
#include <mutex>
#include <utility>

#include "google/protobuf/stubs/logging.h"
#include "grpc/support/log.h"
#include "service/logging/json_writer.h"
#include "spdlog/async_logger.h"
#include "spdlog/details/thread_pool.h"
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

// The queued logger's sink, run by the writer thread: lines gather in `batch_` until the queue
// behind them is empty (the last line of a burst) or kMaxBatchBytes have gathered, then go out
// in one fwrite and fflush. Without a queue (`pool` null) each line goes out at once.
class BatchingFileSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  BatchingFileSink(std::FILE* file, spdlog::details::thread_pool* pool)
      : file_(file), pool_(pool) {}
  ~BatchingFileSink() override { WriteOut(); }  // The last batch, at shutdown.

 protected:
  void sink_it_(const spdlog::details::log_msg& message) override {
    formatter_->format(message, batch_);  // Appends.
    if (pool_ == nullptr || batch_.size() >= Logger::kMaxBatchBytes || pool_->queue_size() == 0) {
      WriteOut();
    }
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
  spdlog::details::thread_pool* const pool_;
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
  if (queue_lines_ > 0) {
    pool_ = std::make_shared<spdlog::details::thread_pool>(
        queue_lines_, 1, [] { pthread_setname_np(pthread_self(), "upgw-log"); });
  }
  Init(std::make_shared<BatchingFileSink>(file, pool_.get()));
}

Logger::Logger(const LoggerOptions& options, std::shared_ptr<spdlog::sinks::sink> sink)
    : level_(options.level), redactor_(options.api_key), queue_lines_(options.queue_lines) {
  if (queue_lines_ > 0) pool_ = std::make_shared<spdlog::details::thread_pool>(queue_lines_, 1);
  Init(std::move(sink));
}

void Logger::Init(std::shared_ptr<spdlog::sinks::sink> sink) {
  if (pool_ != nullptr) {
    // overrun_oldest: a full queue drops its oldest line instead of making the caller wait.
    logger_ = std::make_shared<spdlog::async_logger>("userpilot-gateway", std::move(sink), pool_,
                                                     spdlog::async_overflow_policy::overrun_oldest);
  } else {
    logger_ = std::make_shared<spdlog::logger>("userpilot-gateway", std::move(sink));
    logger_->flush_on(spdlog::level::debug);  // Every line, at once.
  }
  logger_->set_formatter(
      std::make_unique<spdlog::pattern_formatter>(kPattern, spdlog::pattern_time_type::utc));
  logger_->set_level(SpdlogLevel(level_));
}

Logger::~Logger() {
  Logger* self = this;
  grpc_logger.compare_exchange_strong(self, nullptr);  // A forgotten CaptureGrpcLogs(nullptr).
  if (pool_ == nullptr) {
    logger_->flush();
    return;
  }
  // No flush message: queued with the overrun policy, it could push out a line. The pool's stop
  // message waits for room instead, and the writer writes every line queued before it. Then,
  // on this thread after the join, the logger and its sink go, and the sink writes out its last
  // batch (the writer held it back: the stop message was still queued behind it).
  pool_.reset();  // Joins the writer.
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
  std::string members = line.members();
  if (redactor_.Contains(members)) members = redactor_.Redact(members);
  logger_->log(SpdlogLevel(level), spdlog::string_view_t(members.data(), members.size()));
}

void Logger::Flush() { logger_->flush(); }

uint64_t Logger::dropped_lines() const {
  return pool_ == nullptr ? 0 : static_cast<uint64_t>(pool_->overrun_counter());
}

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
