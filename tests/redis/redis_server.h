// RedisServer: a real Debian `redis-server` on 127.0.0.1 for tests, one per test (or suite).
//
//   absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Start();
//   ASSERT_TRUE(server.ok()) << server.status();
//   std::string url = (*server)->url();             // "redis://127.0.0.1:<port>/0"
//   (*server)->Command({"SET", "k", "v"});          // synchronous, for setup and checks
//   (*server)->Stop();  (*server)->Restart();       // kill it / bring it back on the same port
//   (*server)->Freeze();  (*server)->Thaw();        // SIGSTOP / SIGCONT: a hung server
//
// The server runs with `--bind 127.0.0.1 --port <free port> --save '' --appendonly no` in a
// fresh temporary directory (its log is redis.log there; Start()'s errors quote its tail), and
// is ready when it answers PING. It dies with the test: the destructor kills it, and the child
// asks the kernel for SIGKILL should the test process die first (PR_SET_PDEATHSIG).
//
// Link `upgw_redis_testing` (defined in service/redis/CMakeLists.txt). Integration tests that
// need Redis use it the same way; the binary is found on PATH (`redis-server`, Debian package
// redis-server, installed by scripts/install-deps.sh).
//
// Thread-safety: not thread-safe except Command(), which opens its own connection per call.
// Command() blocks (up to 2 s): tests only.
#ifndef USERPILOT_GATEWAY_TESTS_REDIS_REDIS_SERVER_H_
#define USERPILOT_GATEWAY_TESTS_REDIS_REDIS_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace userpilot::gateway::testing {

class RedisServer {
 public:
  struct Options {
    int port = 0;  // 0: pick a free port.
    // Extra `redis-server` arguments, e.g. {"--enable-debug-command", "local"}.
    std::vector<std::string> extra_args;
    absl::Duration startup_timeout = absl::Seconds(5);
  };

  static absl::StatusOr<std::unique_ptr<RedisServer>> Start(Options options);
  static absl::StatusOr<std::unique_ptr<RedisServer>> Start() { return Start(Options()); }

  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  std::string url() const;  // redis://127.0.0.1:<port>/0
  bool running() const { return pid_ > 0; }

  // SIGKILL and reap (a crash: no shutdown, the data is gone since nothing is saved).
  void Stop();
  // Starts again on the same port (empty data); waits for PING.
  absl::Status Restart();
  // SIGSTOP / SIGCONT: the server keeps its socket (connects still succeed) but answers
  // nothing while frozen.
  void Freeze();
  void Thaw();

  // Runs one command on a new blocking connection and returns the reply flattened to text:
  // strings, status and errors as is ("ERR ..." for errors), integers in decimal, nil as
  // "(nil)", arrays as their elements joined by '\n'. UNAVAILABLE if Redis is not reachable.
  absl::StatusOr<std::string> Command(const std::vector<std::string>& argv,
                                      absl::Duration timeout = absl::Seconds(2)) const;

 private:
  RedisServer(Options options, std::string dir);
  absl::Status Launch();
  std::string LogTail() const;

  Options options_;
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
  bool frozen_ = false;
};

}  // namespace userpilot::gateway::testing

#endif  // USERPILOT_GATEWAY_TESTS_REDIS_REDIS_SERVER_H_
