// The gRPC listening socket, owned by the gateway so that it can cap open connections.
//
// gRPC 1.51 has no connection limit (GRPC_ARG_MAX_ALLOWED_INCOMING_CONNECTIONS arrived in a
// later release; its ResourceQuota bounds memory and synchronous-server threads, not
// connections), and its accept loop is where CVE-2023-4785 (running out of file descriptors
// under a connection flood) lives. So the gateway accepts connections itself, on one thread,
// and hands each one to gRPC through ServerBuilder's ExternalConnectionAcceptor, where TLS and
// HTTP/2 proceed exactly as on a port gRPC opened itself.
//
// The cap: at most `max_connections` connections handed to gRPC are open at once. A connection
// over the cap is accepted and closed at once with a TCP reset (the client sees UNAVAILABLE,
// "connection reset", and tries again or another replica), counted, and reported to the
// observer. gRPC closes connections without telling anyone, so the listener remembers each
// one it handed over by file descriptor and socket cookie (SO_COOKIE, unique per socket for
// the kernel's lifetime): a descriptor that is closed, or now names another socket, is no
// longer counted. It re-checks them every `sweep_interval`, and at once when the cap is
// reached.
//
// accept() failing for lack of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM) is
// counted and the listener pauses accepting for `accept_error_backoff` instead of spinning.
//
// Thread-safety: Listen() and Start()/Stop() from one thread; stats() from any thread. The
// observer is called on the listener's thread.
#ifndef USERPILOT_GATEWAY_SERVICE_AUTH_CAPPED_LISTENER_H_
#define USERPILOT_GATEWAY_SERVICE_AUTH_CAPPED_LISTENER_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/server_builder.h"

namespace userpilot::gateway {

// What the listener reports as it happens (for logs and metrics).
class ConnectionObserver {
 public:
  virtual ~ConnectionObserver() = default;
  // A connection was refused: `reason` "limit" (the cap was reached; `open` connections) or
  // "accept_error" (accept() failed: `error` names the errno).
  virtual void OnConnectionRefused(absl::string_view reason, size_t open,
                                   absl::string_view error) = 0;
};

struct CappedListenerOptions {
  // host:port, as for gRPC: an IPv4 address, a bracketed IPv6 address ("[::]" listens on IPv4
  // and IPv6), or a name (every address it resolves to, one port for all). Port 0 picks one.
  std::string address = "0.0.0.0:50051";
  // Most connections open at once. At least 1.
  int max_connections = 1000;
  // How often closed connections are noticed when the cap is not reached (for stats()).
  absl::Duration sweep_interval = absl::Seconds(1);
  // Pause after accept() ran out of descriptors or memory.
  absl::Duration accept_error_backoff = absl::Milliseconds(100);
  // Told about every refused connection; may be null. Must outlive the listener.
  ConnectionObserver* observer = nullptr;
};

class CappedListener {
 public:
  struct Stats {
    size_t open = 0;             // Connections handed to gRPC and still open (last sweep).
    uint64_t accepted = 0;       // Connections handed to gRPC.
    uint64_t refused_limit = 0;  // Connections closed because the cap was reached.
    uint64_t accept_errors = 0;  // accept() failures (EMFILE, ENFILE, ENOBUFS, ENOMEM).
  };

  // Resolves the address and binds and listens on every address (without SO_REUSEPORT, so a
  // port in use is an error). Errors: INVALID_ARGUMENT (malformed address, bad options),
  // UNAVAILABLE (cannot resolve, bind or listen; the message names the address and errno).
  static absl::StatusOr<std::unique_ptr<CappedListener>> Listen(CappedListenerOptions options);

  // Stop().
  ~CappedListener();
  CappedListener(const CappedListener&) = delete;
  CappedListener& operator=(const CappedListener&) = delete;

  // The bound port.
  int port() const { return port_; }

  // Starts accepting, handing every connection within the cap to `acceptor` (from
  // ServerBuilder::experimental().AddExternalConnectionAcceptor, after BuildAndStart). The
  // acceptor must stay valid until Stop() returns.
  void Start(grpc::experimental::ExternalConnectionAcceptor* acceptor);

  // Closes the listening sockets (new connections are then refused by the kernel) and joins
  // the thread. Connections already handed over belong to gRPC. Idempotent.
  void Stop();

  Stats stats() const;

 private:
  struct Tracked {
    int fd;
    uint64_t cookie;
  };

  CappedListener(CappedListenerOptions options, std::vector<int> fds, int port, int wake_fd);
  void Run(grpc::experimental::ExternalConnectionAcceptor* acceptor);
  // Accepts every pending connection on `listen_fd`; false when accept() failed for lack of
  // resources (the caller backs off).
  bool AcceptAll(int listen_fd, grpc::experimental::ExternalConnectionAcceptor* acceptor);
  // Forgets connections gRPC has closed.
  void Sweep();

  const CappedListenerOptions options_;
  std::vector<int> listen_fds_;
  const int port_;
  const int wake_fd_;  // eventfd: Stop() wakes the thread.
  std::thread thread_;
  bool stopped_ = false;

  std::vector<Tracked> tracked_;  // Listener thread only.
  std::atomic<size_t> open_{0};
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> refused_limit_{0};
  std::atomic<uint64_t> accept_errors_{0};
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_AUTH_CAPPED_LISTENER_H_
