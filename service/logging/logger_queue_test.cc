// The Logger with a queue (LoggerOptions::queue_lines > 0): lines in order, written in
// batches by the background writer, which wakes per batch rather than per line (but at once for
// a warning or error, Flush() and destruction), a full queue that drops and counts without
// making the caller wait, and every queued line written by Flush() and when the Logger is
// destroyed.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/logging/logger.h"

namespace userpilot::gateway {
namespace {

using ::testing::HasSubstr;

// The value of integer member `key` in a log line, or -1.
int64_t IntMember(const std::string& line, const std::string& key) {
  const std::string prefix = "\"" + key + "\":";
  const size_t at = line.find(prefix);
  if (at == std::string::npos) return -1;
  const size_t start = at + prefix.size();
  const size_t end = line.find_first_of(",}", start);
  int64_t value = -1;
  if (!absl::SimpleAtoi(line.substr(start, end - start), &value)) return -1;
  return value;
}

std::vector<std::string> SplitLines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

LoggerOptions Queued(size_t lines) {
  LoggerOptions options;
  options.queue_lines = lines;
  return options;
}

// A linger no test waits out: a line shows up only when something wakes the writer.
LoggerOptions QueuedForever(size_t lines) {
  LoggerOptions options = Queued(lines);
  options.linger = absl::Hours(1);
  return options;
}

// A FILE* on memory (open_memstream): what the Logger wrote, once it is closed.
class MemoryFile {
 public:
  MemoryFile() : file_(open_memstream(&data_, &size_)) {}
  ~MemoryFile() {
    Close();
    std::free(data_);
  }
  std::FILE* file() { return file_; }
  // What was written so far.
  std::string Peek() {
    std::fflush(file_);
    return std::string(data_, size_);
  }
  std::string Close() {
    if (file_ != nullptr) std::fclose(file_);
    file_ = nullptr;
    return std::string(data_, size_);
  }

 private:
  char* data_ = nullptr;
  size_t size_ = 0;
  std::FILE* file_;
};

// A FILE* that records what is written (unbuffered: one write per fwrite) and lets a test wait,
// within a deadline, for text to arrive.
class RecordingFile {
 public:
  RecordingFile() {
    cookie_io_functions_t io = {};
    io.write = [](void* cookie, const char* data, size_t size) -> ssize_t {
      auto* self = static_cast<RecordingFile*>(cookie);
      std::lock_guard<std::mutex> lock(self->mu_);
      self->text_.append(data, size);
      self->cv_.notify_all();
      return static_cast<ssize_t>(size);
    };
    file_ = fopencookie(this, "w", io);
    setvbuf(file_, nullptr, _IONBF, 0);
  }
  ~RecordingFile() { std::fclose(file_); }

  std::FILE* file() { return file_; }
  std::string text() {
    std::lock_guard<std::mutex> lock(mu_);
    return text_;
  }
  // Waits (at most 30 s) until `needle` has been written.
  bool WaitFor(const std::string& needle) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30),
                        [&] { return text_.find(needle) != std::string::npos; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::string text_;
  std::FILE* file_;
};

// Each thread's lines in the order it logged them, none missing: lines carry `thread` and `seq`.
void ExpectInOrderPerThread(const std::vector<std::string>& lines, int threads, int lines_each) {
  ASSERT_EQ(lines.size(), size_t(threads) * lines_each);
  std::vector<int64_t> next(threads, 0);
  for (const std::string& line : lines) {
    const int64_t thread = IntMember(line, "thread");
    ASSERT_TRUE(thread >= 0 && thread < threads) << line;
    ASSERT_EQ(IntMember(line, "seq"), next[thread]++) << line;
  }
}

TEST(LoggerQueueTest, LinesArriveInOrderAndDestroyingTheLoggerWritesEveryOne) {
  MemoryFile out;
  constexpr int kThreads = 4;
  constexpr int kLinesEach = 500;
  {
    Logger logger(Queued(4096), out.file());
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&logger, t] {
        for (int i = 0; i < kLinesEach; ++i) logger.Info("call", {{"thread", t}, {"seq", i}});
      });
    }
    for (std::thread& thread : threads) thread.join();
    logger.Info("stopped");
    EXPECT_EQ(logger.dropped_lines(), 0u);
    EXPECT_EQ(logger.queue_lines(), 4096u);
  }  // Destroyed at once: whatever is still queued must be written now.
  const std::vector<std::string> lines = SplitLines(out.Close());
  ASSERT_EQ(lines.size(), size_t{kThreads * kLinesEach + 1});
  std::vector<int64_t> next(kThreads, 0);
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    const int64_t thread = IntMember(lines[i], "thread");
    ASSERT_TRUE(thread >= 0 && thread < kThreads) << lines[i];
    // Each thread's lines in the order it logged them, none missing.
    ASSERT_EQ(IntMember(lines[i], "seq"), next[thread]++) << lines[i];
  }
  EXPECT_THAT(lines.back(), HasSubstr(R"("msg":"stopped")"));
}

// A FILE* whose writes block until Release(), and are counted: what the writer thread sees.
class StallingFile {
 public:
  StallingFile() {
    cookie_io_functions_t io = {};
    io.write = [](void* cookie, const char* data, size_t size) -> ssize_t {
      return static_cast<StallingFile*>(cookie)->Write(data, size);
    };
    file_ = fopencookie(this, "w", io);
    setvbuf(file_, nullptr, _IONBF, 0);  // One write per fwrite: the Logger's batches.
  }
  ~StallingFile() { std::fclose(file_); }

  std::FILE* file() { return file_; }
  // Waits (at most 30 s) until the first write is stalled.
  bool WaitForStall() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [this] { return writes_ > 0; });
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  int writes() {
    std::lock_guard<std::mutex> lock(mu_);
    return writes_;
  }
  std::string text() {
    std::lock_guard<std::mutex> lock(mu_);
    return text_;
  }

 private:
  ssize_t Write(const char* data, size_t size) {
    std::unique_lock<std::mutex> lock(mu_);
    ++writes_;
    cv_.notify_all();
    cv_.wait_for(lock, std::chrono::seconds(30), [this] { return released_; });
    text_.append(data, size);
    return static_cast<ssize_t>(size);
  }

  std::mutex mu_;
  std::condition_variable cv_;
  int writes_ = 0;
  bool released_ = false;
  std::string text_;
  std::FILE* file_;
};

TEST(LoggerQueueTest, LinesQueuedWhileTheWriterIsBusyGoOutInOneWrite) {
  StallingFile out;
  {
    Logger logger(Queued(1024), out.file());
    logger.Info("first", {{"seq", 0}});
    ASSERT_TRUE(out.WaitForStall());  // The writer is inside its first write.
    for (int i = 1; i <= 100; ++i) logger.Info("call", {{"seq", i}});
    out.Release();
  }
  EXPECT_EQ(out.writes(), 2);  // "first", then the hundred queued meanwhile as one batch.
  const std::vector<std::string> lines = SplitLines(out.text());
  ASSERT_EQ(lines.size(), 101u);
  for (int i = 0; i <= 100; ++i) EXPECT_EQ(IntMember(lines[i], "seq"), i) << lines[i];
}

TEST(LoggerQueueTest, AFullQueueDropsAndCountsWithoutMakingTheCallerWait) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  fcntl(fds[1], F_SETPIPE_SZ, 4096);  // The smallest pipe: it fills after a few lines.
  std::FILE* write_end = fdopen(fds[1], "w");
  ASSERT_NE(write_end, nullptr);
  constexpr int kLines = 1000;
  const std::string padding(1000, 'x');
  auto logger = std::make_unique<Logger>(Queued(16), write_end);

  // Nobody reads the pipe yet: the writer stalls on it, the queue fills, and every further
  // line must be dropped and counted, with Info() returning at once.
  auto logging = std::async(std::launch::async, [&] {
    for (int i = 0; i < kLines; ++i) logger->Info("call", {{"seq", i}, {"pad", padding}});
  });
  const bool returned = logging.wait_for(std::chrono::seconds(60)) == std::future_status::ready;
  const uint64_t dropped = logger->dropped_lines();

  std::string received;
  std::thread reader([&received, fd = fds[0]] {
    char buffer[65536];
    ssize_t n;
    while ((n = read(fd, buffer, sizeof(buffer))) > 0) received.append(buffer, n);
  });
  logging.wait();
  logger.reset();  // Writes out what is still queued.
  std::fclose(write_end);
  reader.join();
  close(fds[0]);

  EXPECT_TRUE(returned) << "Info() waited for the stalled writer";
  EXPECT_GT(dropped, 0u);
  const std::vector<std::string> lines = SplitLines(received);
  EXPECT_EQ(lines.size() + dropped, size_t{kLines});
  int64_t previous = -1;
  for (const std::string& line : lines) {
    const int64_t seq = IntMember(line, "seq");
    EXPECT_GT(seq, previous) << "out of order";  // Gaps where lines were dropped.
    previous = seq;
  }
}

TEST(LoggerQueueTest, FlushReturnsOnceEveryLineOfEveryThreadIsWrittenInOrder) {
  RecordingFile out;
  constexpr int kThreads = 8;
  constexpr int kLinesEach = 250;
  Logger logger(QueuedForever(4096), out.file());
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&logger, t] {
      for (int i = 0; i < kLinesEach; ++i) logger.Info("call", {{"thread", t}, {"seq", i}});
    });
  }
  for (std::thread& thread : threads) thread.join();
  logger.Flush();  // The linger is an hour: only Flush() can have written them.
  ExpectInOrderPerThread(SplitLines(out.text()), kThreads, kLinesEach);
  EXPECT_EQ(logger.dropped_lines(), 0u);
}

TEST(LoggerQueueTest, DestroyingTheLoggerWritesEveryQueuedLineWithoutWaitingOutTheLinger) {
  RecordingFile out;
  {
    Logger logger(QueuedForever(4096), out.file());
    for (int i = 0; i < 100; ++i) logger.Info("call", {{"thread", 0}, {"seq", i}});
  }
  ExpectInOrderPerThread(SplitLines(out.text()), 1, 100);
}

TEST(LoggerQueueTest, AnErrorLineIsWrittenWithoutWaitingForTheLinger) {
  RecordingFile out;
  Logger logger(QueuedForever(4096), out.file());
  logger.Info("before");
  logger.Error("upstream down");
  // Bounded wait, generous: the point is that it arrives at all within an hour's linger.
  ASSERT_TRUE(out.WaitFor(R"("msg":"upstream down")")) << out.text();
  const std::vector<std::string> lines = SplitLines(out.text());
  ASSERT_EQ(lines.size(), 2u);  // The info line queued before it goes out with it, first.
  EXPECT_THAT(lines[0], HasSubstr(R"("level":"info","msg":"before")"));
  EXPECT_THAT(lines[1], HasSubstr(R"("level":"error","msg":"upstream down")"));
}

TEST(LoggerQueueTest, AFullQueueDropsItsOldestLinesAndCountsThem) {
  StallingFile out;
  {
    Logger logger(QueuedForever(8), out.file());
    logger.Error("first");  // Woken at once, the writer stalls inside this line's write.
    ASSERT_TRUE(out.WaitForStall());
    for (int i = 0; i < 20; ++i) logger.Info("call", {{"seq", i}});
    EXPECT_EQ(logger.dropped_lines(), 12u);  // 20 lines into 8 places.
    out.Release();
  }
  const std::vector<std::string> lines = SplitLines(out.text());
  ASSERT_EQ(lines.size(), 9u);
  EXPECT_THAT(lines[0], HasSubstr(R"("msg":"first")"));
  for (int i = 0; i < 8; ++i) EXPECT_EQ(IntMember(lines[i + 1], "seq"), 12 + i) << lines[i + 1];
}

TEST(LoggerQueueTest, InfoLinesAreWrittenAfterTheLingerWithoutAFlush) {
  RecordingFile out;
  Logger logger(Queued(4096), out.file());  // The gateway's linger.
  logger.Info("one");
  ASSERT_TRUE(out.WaitFor(R"("msg":"one")"));
  // Nothing more is queued: the writer goes idle, and the next line wakes it again.
  logger.Info("two");
  ASSERT_TRUE(out.WaitFor(R"("msg":"two")"));
  EXPECT_EQ(SplitLines(out.text()).size(), 2u);
}

TEST(LoggerQueueTest, TheWriterIsNotWokenPerLine) {
  RecordingFile out;
  constexpr int kLines = 1000;
  Logger logger(QueuedForever(4096), out.file());
  logger.Info("call", {{"thread", 0}, {"seq", 0}});
  logger.Flush();  // The writer has run: from here on it sleeps between batches.
  const uint64_t before = logger.writer_wakeups();
  for (int i = 1; i < kLines; ++i) {
    logger.Info("call", {{"thread", 0}, {"seq", i}});
    // Spaced (not timed), as calls arrive: a writer woken per line would have time to fall
    // asleep again before the next.
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  logger.Flush();
  ExpectInOrderPerThread(SplitLines(out.text()), 1, kLines);
  // Woken per line, it would wake about 1,000 times; per batch, the lines wait for Flush().
  EXPECT_LT(logger.writer_wakeups() - before, 100u);
}

TEST(LoggerQueueTest, WithoutAQueueNothingIsDroppedAndLinesAreWrittenAtOnce) {
  MemoryFile out;
  Logger logger(LoggerOptions(), out.file());
  logger.Info("now");
  EXPECT_EQ(logger.dropped_lines(), 0u);
  EXPECT_EQ(logger.queue_lines(), 0u);
  EXPECT_EQ(logger.writer_wakeups(), 0u);
  EXPECT_THAT(out.Peek(), HasSubstr(R"("msg":"now")"));  // Written before Info() returned.
}

}  // namespace
}  // namespace userpilot::gateway
