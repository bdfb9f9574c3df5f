#include "service/auth/capped_listener.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57  // Linux >= 4.12.
#endif

namespace userpilot::gateway {
namespace {

std::string Errno(int err) { return std::strerror(err); }

int PollMillis(absl::Duration d) {
  return static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(d), 1, 60000));
}

// "host:port", "[v6]:port" -> host (brackets removed) and port.
absl::Status SplitAddress(absl::string_view address, std::string& host, std::string& port) {
  size_t colon;
  if (!address.empty() && address.front() == '[') {
    const size_t close = address.find(']');
    if (close == absl::string_view::npos || close + 1 >= address.size() ||
        address[close + 1] != ':') {
      return absl::InvalidArgumentError(
          absl::StrCat("'", address, "' is not host:port ([v6]:port for IPv6)"));
    }
    host = std::string(address.substr(1, close - 1));
    colon = close + 1;
  } else {
    colon = address.rfind(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("'", address, "' has no port"));
    }
    host = std::string(address.substr(0, colon));
  }
  port = std::string(address.substr(colon + 1));
  int number;
  if (!absl::SimpleAtoi(port, &number) || number < 0 || number > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("'", address, "' has no valid port"));
  }
  return absl::OkStatus();
}

bool IsIpv6Any(const sockaddr* addr) {
  if (addr->sa_family != AF_INET6) return false;
  const auto* v6 = reinterpret_cast<const sockaddr_in6*>(addr);
  return IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr);
}

bool IsIpv4Any(const sockaddr* addr) {
  return addr->sa_family == AF_INET &&
         reinterpret_cast<const sockaddr_in*>(addr)->sin_addr.s_addr == htonl(INADDR_ANY);
}

void SetPort(sockaddr* addr, int port) {
  if (addr->sa_family == AF_INET) {
    reinterpret_cast<sockaddr_in*>(addr)->sin_port = htons(static_cast<uint16_t>(port));
  } else if (addr->sa_family == AF_INET6) {
    reinterpret_cast<sockaddr_in6*>(addr)->sin6_port = htons(static_cast<uint16_t>(port));
  }
}

bool SocketCookie(int fd, uint64_t& cookie) {
  socklen_t len = sizeof cookie;
  return getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) == 0 && len == sizeof cookie;
}

// accept() errors that concern only the connection being accepted (accept(2), "Error
// handling"): take the next one.
bool IsConnectionError(int err) {
  switch (err) {
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
    case EPERM:
      return true;
    default:
      return false;
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<CappedListener>> CappedListener::Listen(
    CappedListenerOptions options) {
  if (options.max_connections < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_connections must be at least 1, not ", options.max_connections));
  }
  std::string host, port;
  if (absl::Status s = SplitAddress(options.address, host, port); !s.ok()) return s;

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
      rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve '", options.address, "': ", gai_strerror(rc)));
  }
  // IPv6 first, so that a dual-stack [::] is bound before a 0.0.0.0 it already covers.
  std::vector<const addrinfo*> addresses;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) addresses.push_back(a);
  std::stable_sort(addresses.begin(), addresses.end(), [](const addrinfo* a, const addrinfo* b) {
    return a->ai_family == AF_INET6 && b->ai_family != AF_INET6;
  });

  std::vector<int> fds;
  int bound_port = 0;
  bool dual_stack_any = false;
  std::string last_error;
  auto close_all = [&] {
    for (int fd : fds) close(fd);
  };
  for (const addrinfo* a : addresses) {
    if (dual_stack_any && IsIpv4Any(a->ai_addr)) continue;
    sockaddr_storage addr{};
    std::memcpy(&addr, a->ai_addr, a->ai_addrlen);
    if (bound_port != 0) SetPort(reinterpret_cast<sockaddr*>(&addr), bound_port);
    const int fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) {
      last_error = Errno(errno);
      continue;
    }
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const bool any6 = IsIpv6Any(a->ai_addr);
    if (a->ai_family == AF_INET6) {
      const int v6only = any6 ? 0 : 1;
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    }
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), a->ai_addrlen) != 0 ||
        listen(fd, SOMAXCONN) != 0) {
      const int err = errno;
      close(fd);
      if (err == EADDRINUSE || err == EACCES) {
        freeaddrinfo(found);
        close_all();
        return absl::UnavailableError(
            absl::StrCat("cannot listen on '", options.address, "': ", Errno(err)));
      }
      last_error = Errno(err);  // EADDRNOTAVAIL, EAFNOSUPPORT: this host lacks that family.
      continue;
    }
    if (bound_port == 0) {
      sockaddr_storage local{};
      socklen_t len = sizeof local;
      getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
      bound_port =
          ntohs(local.ss_family == AF_INET ? reinterpret_cast<sockaddr_in*>(&local)->sin_port
                                           : reinterpret_cast<sockaddr_in6*>(&local)->sin6_port);
    }
    dual_stack_any = dual_stack_any || any6;
    fds.push_back(fd);
  }
  freeaddrinfo(found);
  if (fds.empty()) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on '", options.address, "': ", last_error));
  }
  uint64_t cookie;
  if (!SocketCookie(fds.front(), cookie)) {
    close_all();
    return absl::UnavailableError(
        "the kernel does not report socket cookies (SO_COOKIE, Linux 4.12 and later), which the "
        "connection cap needs");
  }
  const int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    close_all();
    return absl::UnavailableError(absl::StrCat("eventfd: ", Errno(errno)));
  }
  return std::unique_ptr<CappedListener>(
      new CappedListener(std::move(options), std::move(fds), bound_port, wake_fd));
}

CappedListener::CappedListener(CappedListenerOptions options, std::vector<int> fds, int port,
                               int wake_fd)
    : options_(std::move(options)), listen_fds_(std::move(fds)), port_(port), wake_fd_(wake_fd) {}

CappedListener::~CappedListener() {
  Stop();
  close(wake_fd_);
}

void CappedListener::Start(grpc::experimental::ExternalConnectionAcceptor* acceptor) {
  thread_ = std::thread([this, acceptor] { Run(acceptor); });
}

void CappedListener::Stop() {
  if (stopped_) return;
  stopped_ = true;
  const uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  for (int fd : listen_fds_) close(fd);
  listen_fds_.clear();
}

CappedListener::Stats CappedListener::stats() const {
  Stats stats;
  stats.open = open_.load(std::memory_order_relaxed);
  stats.accepted = accepted_.load(std::memory_order_relaxed);
  stats.refused_limit = refused_limit_.load(std::memory_order_relaxed);
  stats.accept_errors = accept_errors_.load(std::memory_order_relaxed);
  return stats;
}

void CappedListener::Run(grpc::experimental::ExternalConnectionAcceptor* acceptor) {
  std::vector<pollfd> polled;
  polled.push_back({wake_fd_, POLLIN, 0});
  for (int fd : listen_fds_) polled.push_back({fd, POLLIN, 0});
  absl::Time next_sweep = absl::Now() + options_.sweep_interval;
  absl::Time paused_until = absl::InfinitePast();
  while (true) {
    const absl::Time now = absl::Now();
    const bool paused = now < paused_until;
    // While paused, only the wake-up descriptor is watched.
    const nfds_t count = paused ? 1 : polled.size();
    const absl::Time wake = paused ? std::min(paused_until, next_sweep) : next_sweep;
    const int rc = poll(polled.data(), count, PollMillis(wake - now));
    if (rc < 0 && errno != EINTR) break;  // Cannot happen with valid descriptors.
    if (rc > 0 && (polled[0].revents & POLLIN) != 0) break;
    for (nfds_t i = 1; rc > 0 && i < count; ++i) {
      if ((polled[i].revents & (POLLIN | POLLERR | POLLHUP)) == 0) continue;
      if (!AcceptAll(polled[i].fd, acceptor)) {
        paused_until = absl::Now() + options_.accept_error_backoff;
        break;
      }
    }
    if (absl::Now() >= next_sweep) {
      Sweep();
      next_sweep = absl::Now() + options_.sweep_interval;
    }
  }
}

bool CappedListener::AcceptAll(int listen_fd,
                               grpc::experimental::ExternalConnectionAcceptor* acceptor) {
  const size_t cap = static_cast<size_t>(options_.max_connections);
  while (true) {
    const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return true;
      if (IsConnectionError(err)) continue;
      accept_errors_.fetch_add(1, std::memory_order_relaxed);
      if (options_.observer != nullptr) {
        options_.observer->OnConnectionRefused("accept_error", tracked_.size(), Errno(err));
      }
      return false;  // EMFILE, ENFILE, ENOBUFS, ENOMEM: back off.
    }
    if (tracked_.size() >= cap) Sweep();
    if (tracked_.size() >= cap) {
      // A reset, not an orderly close: the client fails at once instead of waiting for a TLS
      // or HTTP/2 answer.
      const linger reset{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
      close(fd);
      refused_limit_.fetch_add(1, std::memory_order_relaxed);
      if (options_.observer != nullptr) {
        options_.observer->OnConnectionRefused("limit", tracked_.size(), "");
      }
      continue;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    uint64_t cookie = 0;
    SocketCookie(fd, cookie);
    // A descriptor number is unique among open descriptors: an entry with this number is a
    // connection gRPC has closed since the last sweep.
    tracked_.erase(std::remove_if(tracked_.begin(), tracked_.end(),
                                  [fd](const Tracked& t) { return t.fd == fd; }),
                   tracked_.end());
    tracked_.push_back({fd, cookie});
    open_.store(tracked_.size(), std::memory_order_relaxed);
    accepted_.fetch_add(1, std::memory_order_relaxed);
    grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters params;
    params.listener_fd = listen_fd;
    params.fd = fd;
    acceptor->HandleNewConnection(&params);
  }
}

void CappedListener::Sweep() {
  tracked_.erase(std::remove_if(tracked_.begin(), tracked_.end(),
                                [](const Tracked& t) {
                                  uint64_t cookie;
                                  return !SocketCookie(t.fd, cookie) || cookie != t.cookie;
                                }),
                 tracked_.end());
  open_.store(tracked_.size(), std::memory_order_relaxed);
}

}  // namespace userpilot::gateway
