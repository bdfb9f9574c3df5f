#include "tests/mocks/loopback_http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace userpilot::gateway::testing {
namespace {

[[noreturn]] void Die(const char* what) {
  std::perror(what);
  std::abort();
}

bool SendAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Appends whatever arrives next; false when the peer closed or the socket failed.
bool ReceiveMore(int fd, std::string& buffer) {
  char chunk[16384];
  for (;;) {
    const ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<size_t>(n));
    return true;
  }
}

absl::string_view FindHeader(const HttpHeaders& headers, absl::string_view name) {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return {};
}

bool HasHeader(const HttpHeaders& headers, absl::string_view name) {
  for (const auto& header : headers) {
    if (absl::EqualsIgnoreCase(header.first, name)) return true;
  }
  return false;
}

std::string Head(const ScriptedReply& reply) {
  std::string out = reply.status_line.empty()
                        ? absl::StrCat("HTTP/1.1 ", reply.status, " ",
                                       reply.status == 200 ? "OK" : "Scripted", "\r\n")
                        : absl::StrCat(reply.status_line, "\r\n");
  const HttpHeaders& headers = reply.headers;
  for (const auto& [name, value] : headers) absl::StrAppend(&out, name, ": ", value, "\r\n");
  return out;
}

enum class ReadResult { kRequest, kClosed, kGarbage };

// Reads one request from `fd`, buffering extra bytes in `buffer`.
ReadResult ReadRequest(int fd, std::string& buffer, ReceivedRequest& request) {
  size_t head_end = 0;
  for (;;) {
    if (!buffer.empty() && !absl::ascii_isupper(static_cast<unsigned char>(buffer[0]))) {
      return ReadResult::kGarbage;
    }
    head_end = buffer.find("\r\n\r\n");
    if (head_end != std::string::npos) break;
    if (!ReceiveMore(fd, buffer)) return ReadResult::kClosed;
  }
  const std::string head = buffer.substr(0, head_end);
  buffer.erase(0, head_end + 4);
  std::vector<absl::string_view> lines = absl::StrSplit(head, "\r\n");
  std::vector<absl::string_view> request_line = absl::StrSplit(lines[0], ' ');
  if (request_line.size() != 3) return ReadResult::kGarbage;
  request.method = std::string(request_line[0]);
  request.target = std::string(request_line[1]);
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos) return ReadResult::kGarbage;
    request.headers.emplace_back(
        std::string(lines[i].substr(0, colon)),
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1))));
  }
  size_t length = 0;
  const absl::string_view length_header = FindHeader(request.headers, "Content-Length");
  if (!length_header.empty() && !absl::SimpleAtoi(length_header, &length)) {
    return ReadResult::kGarbage;
  }
  while (buffer.size() < length) {
    if (!ReceiveMore(fd, buffer)) return ReadResult::kClosed;
  }
  request.body = buffer.substr(0, length);
  buffer.erase(0, length);
  return ReadResult::kRequest;
}

}  // namespace

LoopbackHttpServer::LoopbackHttpServer(Handler handler) : handler_(std::move(handler)) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) Die("socket");
  const int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) Die("bind");
  if (listen(listen_fd_, SOMAXCONN) != 0) Die("listen");
  socklen_t length = sizeof(address);
  if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    Die("getsockname");
  }
  port_ = ntohs(address.sin_port);
  if (pipe2(wake_pipe_, O_CLOEXEC) != 0) Die("pipe2");
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

LoopbackHttpServer::~LoopbackHttpServer() { Stop(); }

std::string LoopbackHttpServer::Url(absl::string_view path_and_query) const {
  return absl::StrCat("http://127.0.0.1:", port_, path_and_query);
}

int LoopbackHttpServer::connections_accepted() const {
  std::lock_guard<std::mutex> lock(mu_);
  return connections_;
}

std::vector<ReceivedRequest> LoopbackHttpServer::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

bool LoopbackHttpServer::WaitForRequests(size_t n, absl::Duration timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return request_arrived_.wait_for(lock, absl::ToChronoMilliseconds(timeout),
                                   [&] { return requests_.size() >= n; });
}

void LoopbackHttpServer::Release() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
  }
  (void)!write(wake_pipe_[1], "r", 1);
}

void LoopbackHttpServer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    stopped_ = stopping_ = true;
  }
  (void)!write(wake_pipe_[1], "s", 1);
  shutdown(listen_fd_, SHUT_RDWR);  // Wakes accept().
  acceptor_.join();
  close(listen_fd_);
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const int fd : open_fds_) shutdown(fd, SHUT_RDWR);  // Wakes recv().
    threads.swap(connection_threads_);
  }
  for (std::thread& thread : threads) thread.join();
  close(wake_pipe_[0]);
  close(wake_pipe_[1]);
}

void LoopbackHttpServer::AcceptLoop() {
  for (;;) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0 && (errno == EINTR || errno == ECONNABORTED)) continue;
    if (fd < 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      close(fd);
      return;
    }
    const int connection = ++connections_;
    open_fds_.insert(fd);
    connection_threads_.emplace_back([this, fd, connection] { Serve(fd, connection); });
  }
}

bool LoopbackHttpServer::WaitForRelease(int fd) {
  bool watch_client = true;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return false;
      if (released_) return true;
    }
    pollfd fds[2] = {{wake_pipe_[0], POLLIN, 0}, {fd, POLLIN, 0}};
    if (poll(fds, watch_client ? 2 : 1, -1) < 0 && errno != EINTR) return false;
    if (watch_client && fds[1].revents != 0) {
      char byte;
      const ssize_t n = recv(fd, &byte, 1, MSG_PEEK);
      if (n <= 0) return false;  // The client gave up (e.g. its deadline passed).
      watch_client = false;      // Unexpected early bytes: stop watching, keep holding.
    }
  }
}

void LoopbackHttpServer::Serve(int fd, int connection) {
  std::string buffer;
  for (;;) {
    ReceivedRequest request;
    const ReadResult read = ReadRequest(fd, buffer, request);
    if (read == ReadResult::kGarbage) {
      SendAll(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      break;
    }
    if (read == ReadResult::kClosed) break;
    request.connection = connection;
    const bool client_closes =
        absl::EqualsIgnoreCase(FindHeader(request.headers, "Connection"), "close");
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(request);
    }
    request_arrived_.notify_all();

    ScriptedReply reply = handler_(request);
    using Kind = ScriptedReply::Kind;
    if (reply.kind == Kind::kCloseWithoutReply) break;
    if (reply.kind == Kind::kHoldThenRespond && !WaitForRelease(fd)) break;
    if (reply.kind == Kind::kCloseMidBody) {
      reply.headers.emplace_back("Content-Length", absl::StrCat(reply.body.size()));
      SendAll(fd, absl::StrCat(Head(reply), "\r\n", reply.body.substr(0, reply.body.size() / 2)));
      break;
    }
    if (reply.close_delimited) {
      reply.headers.emplace_back("Connection", "close");
    } else if (!HasHeader(reply.headers, "Content-Length")) {
      reply.headers.emplace_back("Content-Length", absl::StrCat(reply.body.size()));
    }
    const bool sent = SendAll(fd, absl::StrCat(Head(reply), "\r\n", reply.body));
    if (!sent || reply.close_delimited || client_closes) break;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    open_fds_.erase(fd);
  }
  close(fd);
}

}  // namespace userpilot::gateway::testing
