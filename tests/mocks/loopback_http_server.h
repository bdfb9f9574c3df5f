// A scripted HTTP/1.1 server on 127.0.0.1, for testing HTTP clients over real sockets.
//
// It listens on an ephemeral port, serves each connection on its own thread with keep-alive,
// records every request exactly as received (header names as sent, in order), counts accepted
// connections, and answers each request as the test's handler says: respond, hold until
// Release(), close without answering, close in the middle of the body, or respond with a
// close-delimited body. Bytes that do not start like an HTTP request (a TLS ClientHello, say)
// get a plain "400" and a close, so an https client fails its handshake at once.
//
// It is deliberately small and strict: requests must carry Content-Length when they have a
// body (libcurl does so for in-memory bodies); chunked requests are not supported.
//
// Thread-safety: all methods may be called from any thread. The handler runs on connection
// threads, possibly concurrently. Destruction stops the server and joins every thread; held
// replies are abandoned (their connections closed).
#ifndef USERPILOT_GATEWAY_TESTS_MOCKS_LOOPBACK_HTTP_SERVER_H_
#define USERPILOT_GATEWAY_TESTS_MOCKS_LOOPBACK_HTTP_SERVER_H_

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/http/http_client.h"

namespace userpilot::gateway::testing {

struct ReceivedRequest {
  std::string method;
  std::string target;   // Path and query, as on the request line.
  HttpHeaders headers;  // As received: names in their original case, in order.
  std::string body;
  int connection = 0;  // 1-based number of the connection it arrived on.
};

struct ScriptedReply {
  enum class Kind {
    kRespond,            // Send status, headers and body.
    kHoldThenRespond,    // Wait for Release() (or the client leaving, or Stop()), then respond.
    kCloseWithoutReply,  // Close the connection without a byte of response.
    kCloseMidBody,       // Announce body.size() bytes, send half of them, close.
  };
  Kind kind = Kind::kRespond;
  int status = 200;
  HttpHeaders headers;  // Content-Length is added unless present or close_delimited.
  std::string body;
  bool close_delimited = false;  // No Content-Length; the body ends when the server closes.
  // Sent instead of "HTTP/1.1 <status> <reason>" when set ("garbage", "HTTP/1.1 2OO OK").
  std::string status_line;
};

class LoopbackHttpServer {
 public:
  using Handler = std::function<ScriptedReply(const ReceivedRequest&)>;

  // Starts listening at once; aborts the test binary if it cannot.
  explicit LoopbackHttpServer(Handler handler);
  ~LoopbackHttpServer();

  LoopbackHttpServer(const LoopbackHttpServer&) = delete;
  LoopbackHttpServer& operator=(const LoopbackHttpServer&) = delete;

  int port() const { return port_; }
  // "http://127.0.0.1:<port>" followed by `path_and_query`.
  std::string Url(absl::string_view path_and_query) const;

  int connections_accepted() const;
  std::vector<ReceivedRequest> requests() const;

  // Blocks until at least `n` requests have arrived; false if `timeout` passed first.
  bool WaitForRequests(size_t n, absl::Duration timeout) const;

  // Lets every held reply (and every later one) proceed.
  void Release();

  // Stops listening, closes every connection and joins every thread. Idempotent.
  void Stop();

 private:
  void AcceptLoop();
  void Serve(int fd, int connection);
  // Waits until released (true), or the client left or the server stops (false).
  bool WaitForRelease(int fd);

  const Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  int wake_pipe_[2] = {-1, -1};  // Written by Release()/Stop(); never drained.
  std::thread acceptor_;

  mutable std::mutex mu_;
  mutable std::condition_variable request_arrived_;
  std::vector<ReceivedRequest> requests_;        // Guarded by mu_.
  std::vector<std::thread> connection_threads_;  // Guarded by mu_.
  std::set<int> open_fds_;                       // Guarded by mu_.
  int connections_ = 0;                          // Guarded by mu_.
  bool released_ = false;                        // Guarded by mu_.
  bool stopping_ = false;                        // Guarded by mu_.
  bool stopped_ = false;                         // Guarded by mu_.
};

}  // namespace userpilot::gateway::testing

#endif  // USERPILOT_GATEWAY_TESTS_MOCKS_LOOPBACK_HTTP_SERVER_H_
