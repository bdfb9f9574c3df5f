#include "tests/emulator/emulator.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "tests/emulator/admin_api.h"
#include "tests/emulator/answer_shapes.h"
#include "tests/emulator/http_util.h"
#include "tests/emulator/userpilot_api.h"

namespace userpilot::gateway::testing {
namespace {

std::string RandomAlnum(int n) {
  static constexpr char kChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  absl::BitGen gen;
  std::string out;
  for (int i = 0; i < n; ++i) out.push_back(kChars[absl::Uniform(gen, 0u, sizeof(kChars) - 1)]);
  return out;
}

std::string RandomHex(int n) {
  absl::BitGen gen;
  std::string out;
  for (int i = 0; i < n; ++i) out.push_back("0123456789abcdef"[absl::Uniform(gen, 0, 16)]);
  return out;
}

// Reads the whole request body (civetweb undoes chunked transfer coding).
std::string ReadBody(mg_connection* conn, long long content_length) {
  std::string body;
  if (content_length > 0) {
    body.resize(static_cast<size_t>(content_length));
    size_t got = 0;
    while (got < body.size()) {
      const int n = mg_read(conn, body.data() + got, body.size() - got);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    body.resize(got);
    return body;
  }
  char buf[16384];
  int n;
  while ((n = mg_read(conn, buf, sizeof(buf))) > 0) body.append(buf, static_cast<size_t>(n));
  return body;
}

// The answer of a status chosen by fault injection: Userpilot's error body (its message and
// details carrying `echo` when there is one), or the rule's own body or nest.
ApiResponse InjectedAnswer(const FaultDecision& fault, const Route& route, absl::string_view echo) {
  ApiResponse r;
  r.status = fault.status;
  if (fault.nest_depth > 0) {
    const std::string nest = NestedArrays(fault.nest_depth, fault.nest_bytes);
    r.body = fault.status < 300 ? DeepJobBody(route.job_id.empty() ? "deep" : route.job_id, nest)
                                : DeepErrorBody(nest);
  } else if (fault.body) {
    r.body = absl::StrReplaceAll(*fault.body, {{"{{echo}}", echo}});
  } else if (fault.status == 429) {
    r.body = ErrorBody("too_many_requests", "rate_limit_exceeded",
                       echo.empty() ? "Too many requests: rate limit exceeded" : echo,
                       echo.empty() ? "injected by the emulator" : echo);
  } else {
    std::string error = absl::AsciiStrToLower(ReasonPhrase(fault.status));
    std::replace(error.begin(), error.end(), ' ', '_');
    r.body = ErrorBody(error, error,
                       echo.empty() ? absl::StrCat(fault.status, " ", ReasonPhrase(fault.status))
                                    : std::string(echo),
                       echo.empty() ? "injected by the emulator" : echo);
  }
  if (fault.retry_after_seconds) {
    r.headers.emplace_back("Retry-After", absl::StrCat(*fault.retry_after_seconds));
  }
  r.headers.insert(r.headers.end(), fault.headers.begin(), fault.headers.end());
  r.content_type = fault.content_type;
  r.status_line = fault.status_line;
  return r;
}

// Closes the connection without an answer: nothing is written and civetweb closes the socket
// once the handler returns.
int DropConnection(mg_connection* conn) {
  mg_disable_connection_keep_alive(conn);
  return 1;
}

// Half-closes (SHUT_RD) every accepted TCP connection of the server listening on `port`, so
// civetweb workers waiting for the next keep-alive request wake at once instead of at the end
// of civetweb's 2 s poll quantum. Used only while stopping. Accepted sockets are told apart
// from everything else in the process by their local port and by not listening; a client
// socket connected *to* the port has a different local port.
void WakeIdleConnections(int port) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return;
  const int dir_fd = dirfd(dir);
  while (dirent* entry = readdir(dir)) {
    int fd;
    if (!absl::SimpleAtoi(entry->d_name, &fd) || fd == dir_fd) continue;
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) continue;
    int local_port = -1;
    if (addr.ss_family == AF_INET) {
      local_port = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    } else if (addr.ss_family == AF_INET6) {
      local_port = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    }
    if (local_port != port) continue;
    int listening = 0;
    socklen_t opt_len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &opt_len) != 0 || listening) {
      continue;
    }
    shutdown(fd, SHUT_RD);
  }
  closedir(dir);
}

// Opens and closes one connection to 127.0.0.1:port: wakes civetweb's master thread from its
// poll so that it notices the stop flag at once.
void PokeListener(const std::string& host, int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  }
  connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  close(fd);
}

}  // namespace

Emulator::Emulator(EmulatorOptions options)
    : options_(std::move(options)),
      clock_(options_.clock ? options_.clock : [] { return absl::Now(); }),
      request_id_prefix_(RandomAlnum(8)),
      log_(options_.request_log_capacity),
      faults_(options_.faults),
      limiter_(options_.limits),
      jobs_(clock_, options_.job_step, RandomHex(8)),
      profiles_(&jobs_, clock_) {
  api_ = std::make_unique<UserpilotApi>(ApiOptions{options_.api_key, options_.empty_accepted_body},
                                        &limiter_, &jobs_, &profiles_);
  admin_ = std::make_unique<AdminApi>(this);
}

absl::StatusOr<std::unique_ptr<Emulator>> Emulator::Start(EmulatorOptions options) {
  if (options.threads < 1) return absl::InvalidArgumentError("threads must be at least 1");
  if (options.keep_alive_timeout < absl::Milliseconds(1)) {
    return absl::InvalidArgumentError("keep_alive_timeout must be at least 1 ms");
  }
  if (auto s = ValidateFaults(options.faults); !s.ok()) return s;
  if (options.api_key.empty()) return absl::InvalidArgumentError("api_key must not be empty");
  if (options.listen.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address '", options.listen, "' is not HOST:PORT"));
  }
  static std::once_flag init_once;
  std::call_once(init_once, [] { mg_init_library(0); });

  std::unique_ptr<Emulator> emulator(new Emulator(std::move(options)));
  const EmulatorOptions& o = emulator->options_;
  const std::string threads = absl::StrCat(o.threads);
  const std::string queue = absl::StrCat(std::max(64, o.threads * 4));
  const std::string keep_alive_ms = absl::StrCat(absl::ToInt64Milliseconds(o.keep_alive_timeout));
  const char* config[] = {"listening_ports", o.listen.c_str(), "num_threads", threads.c_str(),
                          "connection_queue", queue.c_str(), "listen_backlog", "1024",
                          "enable_keep_alive", "yes", "keep_alive_timeout_ms",
                          keep_alive_ms.c_str(), "request_timeout_ms", "30000", "tcp_nodelay", "1",
                          // Paths reach the handler still percent-encoded (raw_path).
                          "decode_url", "no", "enable_directory_listing", "no", nullptr};
  mg_callbacks callbacks{};
  callbacks.begin_request = &Emulator::OnBeginRequest;
  callbacks.log_message = &Emulator::OnLogMessage;
  mg_init_data init{};
  init.callbacks = &callbacks;
  init.user_data = emulator.get();
  init.configuration_options = config;
  char error_text[256] = {0};
  unsigned error_code = 0;
  mg_error_data error{};
  error.code = &error_code;
  error.text = error_text;
  error.text_buffer_size = sizeof(error_text);
  emulator->ctx_ = mg_start2(&init, &error);
  if (emulator->ctx_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot start the emulator on ", o.listen, ": ", error_text));
  }
  mg_server_port ports[4];
  const int n = mg_get_server_ports(emulator->ctx_, 4, ports);
  if (n < 1) return absl::InternalError("civetweb reports no listening port");
  emulator->port_ = ports[0].port;
  std::string host = o.listen.substr(0, o.listen.rfind(':'));
  if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
  emulator->host_ = host;
  return emulator;
}

Emulator::~Emulator() { Stop(); }

void Emulator::Stop() {
  if (ctx_ == nullptr) return;
  {
    absl::MutexLock lock(&stop_mu_);
    stopping_ = true;  // Releases hung and delayed requests.
  }
  // civetweb's master thread and idle keep-alive workers each sleep in poll() for up to 2 s
  // between looks at the stop flag; wake them until mg_stop returns.
  std::atomic<bool> stopped{false};
  std::thread waker([this, &stopped] {
    while (!stopped.load()) {
      WakeIdleConnections(port_);
      PokeListener(host_, port_);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  mg_stop(ctx_);
  stopped.store(true);
  waker.join();
  ctx_ = nullptr;
}

std::string Emulator::base_url() const { return absl::StrCat("http://", host_, ":", port_); }

int Emulator::OnLogMessage(const mg_connection*, const char*) { return 1; }  // Quiet.

int Emulator::OnBeginRequest(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  return static_cast<Emulator*>(info->user_data)->Serve(conn);
}

bool Emulator::SleepUnlessStopping(absl::Duration d) {
  if (d <= absl::ZeroDuration()) return true;
  stop_mu_.LockWhenWithTimeout(absl::Condition(&stopping_), d);
  const bool stopping = stopping_;
  stop_mu_.Unlock();
  return !stopping;
}

int Emulator::Serve(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  RecordedRequest request;
  request.received_at = clock_();
  request.method = info->request_method != nullptr ? info->request_method : "";
  request.raw_path = info->request_uri != nullptr ? info->request_uri : "";
  absl::StatusOr<std::string> decoded = PercentDecode(request.raw_path);
  request.path = decoded.ok() ? *std::move(decoded) : request.raw_path;
  request.query = info->query_string != nullptr ? info->query_string : "";
  request.headers.reserve(static_cast<size_t>(info->num_headers));
  for (int i = 0; i < info->num_headers; ++i) {
    request.headers.emplace_back(absl::AsciiStrToLower(info->http_headers[i].name),
                                 info->http_headers[i].value);
  }
  request.body = ReadBody(conn, info->content_length);

  if (absl::StartsWith(request.raw_path, "/_emulator/")) {
    return Respond(conn, admin_->Handle(request));
  }
  return ServeUserpilot(conn, std::move(request));
}

int Emulator::ServeUserpilot(mg_connection* conn, RecordedRequest request) {
  const std::shared_ptr<const RecordedRequest> r = log_.Record(std::move(request));
  const Route route = Classify(r->method, r->raw_path);
  const absl::string_view endpoint = EndpointName(route.endpoint);

  // Faults apply to Userpilot's /v1/ paths only.
  FaultDecision fault;
  if (absl::StartsWith(r->raw_path, "/v1/")) fault = faults_.Decide(r->path);
  if (fault.latency > absl::ZeroDuration()) SleepUnlessStopping(fault.latency);
  switch (fault.action) {
    case FaultAction::kDrop:
      log_.Finish(r->seq, endpoint, Outcome::kDropped, 0, false);
      return DropConnection(conn);
    case FaultAction::kHang:
      log_.Finish(r->seq, endpoint, Outcome::kHung, 0, false);
      SleepUnlessStopping(fault.max_hang);  // Bounded, and cut short by Stop().
      return DropConnection(conn);
    case FaultAction::kStatus: {
      const ApiResponse response =
          InjectedAnswer(fault, route, KeyEcho(options_.api_key, fault.echo_key));
      log_.Finish(r->seq, endpoint, Outcome::kInjectedError, response.status, false);
      return Respond(conn, response);
    }
    case FaultAction::kPass:
    case FaultAction::kNone:
    default:
      break;
  }
  ApiResponse response = api_->Handle(*r, route);
  if (fault.action == FaultAction::kPass) {
    if (!fault.echo_key.empty()) {
      response.body =
          InsertIntoStringMembers(response.body, KeyEcho(options_.api_key, fault.echo_key));
    }
    response.headers.insert(response.headers.end(), fault.headers.begin(), fault.headers.end());
  }
  // Counted before the answer leaves, so a client that reads the counters after its answer
  // always sees its own request.
  log_.Finish(r->seq, endpoint, Outcome::kAnswered, response.status, response.rate_limited);
  return Respond(conn, response);
}

int Emulator::Respond(mg_connection* conn, const ApiResponse& response) {
  const bool no_body = response.status == 204 || response.status == 304;
  std::string out;
  out.reserve(320 + response.body.size());
  if (response.status_line.empty()) {
    absl::StrAppend(&out, "HTTP/1.1 ", response.status, " ", ReasonPhrase(response.status));
  } else {
    out.append(response.status_line);
  }
  absl::StrAppend(
      &out, "\r\nContent-Type: ",
      response.content_type.empty() ? "application/json; charset=utf-8" : response.content_type,
      "\r\n");
  if (!no_body) absl::StrAppend(&out, "Content-Length: ", response.body.size(), "\r\n");
  absl::StrAppendFormat(&out, "x-request-id: %s%012x\r\n", request_id_prefix_,
                        request_counter_.fetch_add(1, std::memory_order_relaxed) + 1);
  absl::StrAppend(&out, "Date: ", FormatHttpDate(absl::Now()),
                  "\r\ncache-control: max-age=0, private, must-revalidate\r\n"
                  "server: userpilot-emulator\r\n");
  for (const auto& [name, value] : response.headers) {
    absl::StrAppend(&out, name, ": ", value, "\r\n");
  }
  out.append("\r\n");
  if (!no_body) out.append(response.body);
  mg_write(conn, out.data(), out.size());
  return response.status;
}

std::vector<RecordedRequest> Emulator::Requests() const { return log_.Requests(); }
void Emulator::ClearRequests() { log_.Clear(); }
BudgetWindows Emulator::Windows(absl::Duration window) const {
  BudgetWindows windows = AccountWindows(log_.Requests(), window);
  windows.evicted = log_.Evicted();
  return windows;
}
EmulatorStats Emulator::Stats() const { return log_.Stats(); }
void Emulator::ResetStats() { log_.ResetStats(); }

absl::Status Emulator::SetFaults(Faults faults) {
  if (auto s = ValidateFaults(faults); !s.ok()) return s;
  faults_.Set(std::move(faults));
  return absl::OkStatus();
}

Faults Emulator::GetFaults() const { return faults_.Get(); }

absl::Status Emulator::AddScriptedFault(ScriptedFault fault) {
  Faults check;
  check.script.push_back(fault);
  if (auto s = ValidateFaults(check); !s.ok()) return s;
  faults_.AddScripted(std::move(fault));
  return absl::OkStatus();
}

void Emulator::ClearFaults() { faults_.Set(Faults()); }
void Emulator::SetLimits(const RateLimits& limits) { limiter_.SetLimits(limits); }
RateLimits Emulator::GetLimits() const { return limiter_.limits(); }
void Emulator::ClearRateWindows() { limiter_.Clear(); }
absl::Status Emulator::FailJob(absl::string_view job_id) {
  return jobs_.ForceStatus(job_id, "failed");
}
absl::Status Emulator::ForceJobStatus(absl::string_view job_id, absl::string_view status) {
  return jobs_.ForceStatus(job_id, status);
}
absl::StatusOr<JobSnapshot> Emulator::GetJob(absl::string_view job_id) const {
  return jobs_.Get(job_id);
}
std::vector<JobSnapshot> Emulator::Jobs() const { return jobs_.List(); }
void Emulator::SetJobStep(absl::Duration step) { jobs_.SetStep(step); }
absl::Duration Emulator::GetJobStep() const { return jobs_.step(); }
void Emulator::ClearJobs() { jobs_.Clear(); }
std::optional<Profile> Emulator::GetProfile(EntityKind kind, absl::string_view id) {
  return profiles_.Get(kind, id);
}

void Emulator::Reset() {
  log_.Clear();
  log_.ResetStats();
  faults_.Set(Faults());
  limiter_.Clear();
  jobs_.Clear();
  profiles_.Clear();
}

}  // namespace userpilot::gateway::testing
