#include "tests/redis/redis_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

namespace userpilot::gateway::testing {
namespace {

// A port the kernel considers free right now (it could be taken before redis binds it; Start()
// retries with another port when redis exits at once).
absl::StatusOr<int> FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::InternalError(absl::StrCat("bind/getsockname: ", std::strerror(err)));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string Flatten(const redisReply* r) {
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      return std::string(r->str, r->len);
    case REDIS_REPLY_INTEGER:
      return std::to_string(r->integer);
    case REDIS_REPLY_ARRAY: {
      std::vector<std::string> parts;
      for (size_t i = 0; i < r->elements; ++i) parts.push_back(Flatten(r->element[i]));
      return absl::StrJoin(parts, "\n");
    }
    default:
      return "(nil)";
  }
}

}  // namespace

RedisServer::RedisServer(Options options, std::string dir)
    : options_(std::move(options)), dir_(std::move(dir)), port_(options_.port) {}

RedisServer::~RedisServer() {
  Stop();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

absl::StatusOr<std::unique_ptr<RedisServer>> RedisServer::Start(Options options) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "upgw-redis-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("mkdtemp: ", std::strerror(errno)));
  }
  const bool pick_port = options.port == 0;
  std::unique_ptr<RedisServer> server(new RedisServer(std::move(options), tmpl));
  absl::Status status;
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (pick_port) {
      absl::StatusOr<int> port = FreePort();
      if (!port.ok()) return port.status();
      server->port_ = *port;
    }
    status = server->Launch();
    if (status.ok() || !pick_port) break;
  }
  if (!status.ok()) return status;
  return server;
}

std::string RedisServer::url() const { return absl::StrCat("redis://127.0.0.1:", port_, "/0"); }

absl::Status RedisServer::Launch() {
  const std::string port = std::to_string(port_);
  const std::string log = dir_ + "/redis.log";
  // clang-format off
  std::vector<std::string> args = {"redis-server",
                                   "--bind", "127.0.0.1",
                                   "--port", port,
                                   "--save", "",
                                   "--appendonly", "no",
                                   "--dir", dir_,
                                   "--logfile", log,
                                   "--daemonize", "no"};
  // clang-format on
  args.insert(args.end(), options_.extra_args.begin(), options_.extra_args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    const int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    ::execvp("redis-server", argv.data());
    ::_exit(127);
  }
  pid_ = pid;
  frozen_ = false;

  const absl::Time give_up = absl::Now() + options_.startup_timeout;
  while (absl::Now() < give_up) {
    int wstatus = 0;
    if (::waitpid(pid_, &wstatus, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::UnavailableError(absl::StrCat("redis-server on port ", port_,
                                                 " exited at start (status ", wstatus,
                                                 "; is redis-server installed?): ", LogTail()));
    }
    absl::StatusOr<std::string> pong = Command({"PING"}, absl::Milliseconds(200));
    if (pong.ok() && *pong == "PONG") return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Stop();
  return absl::DeadlineExceededError(
      absl::StrCat("redis-server on port ", port_, " did not answer PING: ", LogTail()));
}

void RedisServer::Stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int wstatus = 0;
  while (::waitpid(pid_, &wstatus, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  frozen_ = false;
}

absl::Status RedisServer::Restart() {
  Stop();
  // The old socket may linger briefly in the kernel; redis sets SO_REUSEADDR, so retry a few
  // times only for the unlikely EADDRINUSE.
  absl::Status status;
  for (int attempt = 0; attempt < 3; ++attempt) {
    status = Launch();
    if (status.ok()) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return status;
}

void RedisServer::Freeze() {
  if (pid_ > 0 && !frozen_) {
    ::kill(pid_, SIGSTOP);
    frozen_ = true;
  }
}

void RedisServer::Thaw() {
  if (pid_ > 0 && frozen_) {
    ::kill(pid_, SIGCONT);
    frozen_ = false;
  }
}

absl::StatusOr<std::string> RedisServer::Command(const std::vector<std::string>& argv,
                                                 absl::Duration timeout) const {
  const timeval tv = absl::ToTimeval(timeout);
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port_, tv);
  if (c == nullptr || c->err != 0) {
    std::string error = c == nullptr ? "out of memory" : c->errstr;
    if (c != nullptr) redisFree(c);
    return absl::UnavailableError(absl::StrCat("redis 127.0.0.1:", port_, ": ", error));
  }
  redisSetTimeout(c, tv);
  std::vector<const char*> ptrs;
  std::vector<size_t> lens;
  for (const std::string& a : argv) {
    ptrs.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* reply = static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), ptrs.data(), lens.data()));
  if (reply == nullptr) {
    std::string error = c->errstr;
    redisFree(c);
    return absl::UnavailableError(absl::StrCat("redis 127.0.0.1:", port_, ": ", error));
  }
  std::string text = Flatten(reply);
  freeReplyObject(reply);
  redisFree(c);
  return text;
}

std::string RedisServer::LogTail() const {
  std::ifstream in(dir_ + "/redis.log");
  std::stringstream all;
  all << in.rdbuf();
  std::string text = all.str();
  if (text.size() > 600) text = "..." + text.substr(text.size() - 600);
  return text.empty() ? "(empty log)" : text;
}

}  // namespace userpilot::gateway::testing
