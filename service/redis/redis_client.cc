#include "service/redis/redis_client.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <iterator>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

// Locking note: std::mutex, not absl::Mutex. Debian's Abseil is built without ThreadSanitizer
// annotations, so TSan cannot see absl::Mutex's synchronisation; it does see std::mutex.
// hiredis state (the context, the sent list, deadlines, SHAs) is touched only by the event
// thread and needs no lock.

namespace userpilot::gateway {
namespace {

// Longest poll() wait when nothing is due; every event that matters wakes the loop anyway.
constexpr absl::Duration kMaxPollWait = absl::Seconds(1);

RedisReply Convert(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = RedisReply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = RedisReply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = RedisReply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(Convert(r->element[i]));
      break;
    default:
      out.type = RedisReply::Type::kNil;
      break;
  }
  return out;
}

absl::Status ValidateOptions(const RedisClientOptions& o) {
  auto bad = [](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("RedisClientOptions: ", what));
  };
  auto positive = [](absl::Duration d) {
    return d > absl::ZeroDuration() && d != absl::InfiniteDuration();
  };
  if (o.endpoint.host.empty()) return bad("endpoint.host is empty");
  if (o.endpoint.port < 1 || o.endpoint.port > 65535) return bad("endpoint.port out of range");
  if (o.endpoint.db < 0) return bad("endpoint.db is negative");
  if (!positive(o.command_timeout)) return bad("command_timeout must be positive and finite");
  if (o.max_in_flight < 1) return bad("max_in_flight must be at least 1");
  if (!positive(o.connect_timeout)) return bad("connect_timeout must be positive and finite");
  if (!positive(o.stall_timeout) || o.stall_timeout < o.command_timeout) {
    return bad("stall_timeout must be finite and at least command_timeout");
  }
  if (!positive(o.reconnect_initial_backoff) || !positive(o.reconnect_max_backoff) ||
      o.reconnect_initial_backoff > o.reconnect_max_backoff) {
    return bad("reconnect backoffs must be positive, finite, and initial <= max");
  }
  return absl::OkStatus();
}

}  // namespace

class RedisClient::Impl {
 public:
  explicit Impl(RedisClientOptions options)
      : options_(std::move(options)), rng_(std::random_device{}()) {}

  ~Impl() {
    if (std::this_thread::get_id() == thread_id_.load()) {
      std::fprintf(stderr, "RedisClient destroyed from its own event thread\n");
      std::abort();
    }
    Shutdown();
    if (wake_fd_ >= 0) ::close(wake_fd_);
  }

  absl::Status Start() {
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) {
      return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
    }
    thread_ = std::thread([this] { Run(); });
    thread_id_.store(thread_.get_id());
    return absl::OkStatus();
  }

  // ---- Any thread ----

  void Submit(std::vector<std::string> argv, ScriptId script, std::vector<std::string> keys,
              absl::Time deadline, ReplyCallback done) {
    auto op = std::make_unique<Op>();
    op->argv = std::move(argv);
    op->script = script;
    op->keys = std::move(keys);
    op->deadline = deadline;
    op->done = done ? std::move(done) : ReplyCallback([](absl::StatusOr<RedisReply>) {});
    Enqueue(std::move(op));
  }

  ScriptId RegisterScript(std::string body) {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < scripts_.size(); ++i) {
      if (scripts_[i] == body) return static_cast<ScriptId>(i);
    }
    scripts_.push_back(std::move(body));
    return static_cast<ScriptId>(scripts_.size() - 1);
  }

  bool ValidScript(ScriptId id) {
    std::lock_guard<std::mutex> lock(mu_);
    return id >= 0 && static_cast<size_t>(id) < scripts_.size();
  }

  void Post(absl::AnyInvocable<void() &&> fn) {
    std::unique_lock<std::mutex> lock(mu_);
    if (exited_) {
      lock.unlock();
      std::move(fn)();
      return;
    }
    posted_.push_back(std::move(fn));
    WakeLocked(lock);
  }

  bool healthy() const { return healthy_.load(std::memory_order_acquire); }

  bool WaitUntilConnected(absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return connected_cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [this] {
      return connected_.load() || exited_;
    }) && connected_.load();
  }

  RedisClientStats Stats() const {
    RedisClientStats s;
    s.connected = connected_.load();
    s.healthy = healthy_.load();
    s.connects = connects_.load();
    s.connect_failures = connect_failures_.load();
    s.disconnects = disconnects_.load();
    s.commands = commands_.load();
    s.timeouts = timeouts_.load();
    s.rejected_not_connected = rejected_not_connected_.load();
    s.noscript_retries = noscript_retries_.load();
    std::lock_guard<std::mutex> lock(mu_);
    s.in_flight = in_flight_;
    s.rejected_in_flight = rejected_in_flight_;
    s.last_error = last_error_;
    return s;
  }

  const RedisClientOptions& options() const { return options_; }

  void Shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    Wake();
    if (std::this_thread::get_id() == thread_id_.load()) return;  // The destructor finishes it.
    std::lock_guard<std::mutex> join_lock(join_mu_);
    if (thread_.joinable()) thread_.join();
  }

 private:
  enum class State { kDisconnected, kConnecting, kReady };

  struct Op {
    std::vector<std::string> argv;  // The command, or for a script its args (after the keys).
    ScriptId script = -1;           // >= 0: EVALSHA/EVAL of that script.
    std::vector<std::string> keys;  // Script keys.
    absl::Time deadline = absl::InfiniteFuture();
    ReplyCallback done;     // Empty once completed.
    bool internal = false;  // Handshake or SCRIPT LOAD: takes no in-flight slot.
    bool rejected = false;  // Refused at submission (in-flight bound): complete, never send.
    bool sent_as_evalsha = false;
    bool force_eval = false;  // Resend after NOSCRIPT: EVAL with the body.
    absl::Time sent_time;
    std::list<Op*>::iterator sent_pos;
    std::multimap<absl::Time, Op*>::iterator deadline_pos;
    bool has_deadline_pos = false;
  };

  // ---- Submission ----

  void Enqueue(std::unique_ptr<Op> op) {
    std::unique_lock<std::mutex> lock(mu_);
    if (exited_) {
      lock.unlock();
      if (op->done) std::move(op->done)(absl::CancelledError("redis client is shut down"));
      return;
    }
    if (!op->internal) {
      if (in_flight_ >= options_.max_in_flight) {
        ++rejected_in_flight_;
        op->rejected = true;
      } else {
        ++in_flight_;
      }
    }
    queue_.push_back(std::move(op));
    WakeLocked(lock);
  }

  void WakeLocked(std::unique_lock<std::mutex>& lock) {
    const bool need = !wake_pending_;
    wake_pending_ = true;
    lock.unlock();
    if (need) Wake();
  }

  void Wake() {
    const uint64_t one = 1;
    // EAGAIN means the counter is already non-zero: the loop wakes anyway.
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
  }

  // ---- Event thread ----

  void Run() {
    // hiredis writes with write(2), not send(MSG_NOSIGNAL): writing to a connection the server
    // reset raises SIGPIPE, whose default action kills the process. Block it on this thread;
    // the write then fails with EPIPE, and OnCleanup() consumes the pending signal.
    sigset_t sigpipe;
    sigemptyset(&sigpipe);
    sigaddset(&sigpipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &sigpipe, nullptr);
    while (true) {
      uint64_t drained;
      while (::read(wake_fd_, &drained, sizeof(drained)) > 0) {
      }
      std::vector<std::unique_ptr<Op>> queue;
      std::vector<absl::AnyInvocable<void() &&>> posted;
      {
        std::lock_guard<std::mutex> lock(mu_);
        wake_pending_ = false;
        if (stopping_) break;
        queue.swap(queue_);
        posted.swap(posted_);
      }
      for (auto& op : queue) Dispatch(std::move(op));
      for (auto& fn : posted) std::move(fn)();

      const absl::Time now = absl::Now();
      ExpireDeadlines(now);
      CheckConnection(now);
      if (teardown_reason_.has_value()) Teardown();
      Poll(now);
    }
    Stop();
  }

  void Dispatch(std::unique_ptr<Op> op) {
    if (op->rejected) {
      std::move(op->done)(absl::UnavailableError(
          absl::StrCat("redis: ", options_.max_in_flight, " commands already in flight")));
      return;  // Took no slot.
    }
    if (state_ != State::kReady) {
      ++rejected_not_connected_;
      Finish(std::move(op), absl::UnavailableError(absl::StrCat("redis ", options_.endpoint.ToUrl(),
                                                                " not connected: ", LastError())));
      return;
    }
    if (absl::Now() >= op->deadline) {
      ++timeouts_;
      Finish(std::move(op), absl::UnavailableError("redis command deadline passed before sending"));
      return;
    }
    Op* raw = op.release();
    if (!Write(raw)) {
      Finish(std::unique_ptr<Op>(raw), absl::UnavailableError("redis connection is closing"));
    }
  }

  // Hands `op` to hiredis; on success hiredis holds it until OnReply. False: not written, the
  // caller still owns it.
  bool Write(Op* op) {
    if (ac_ == nullptr) return false;
    std::vector<std::string> script_head;
    if (op->script >= 0) {
      const size_t id = static_cast<size_t>(op->script);
      if (shas_.size() <= id) {
        shas_.resize(id + 1);
        sha_loading_.resize(id + 1, false);
      }
      op->sent_as_evalsha = !shas_[id].empty() && !op->force_eval;
      if (op->sent_as_evalsha) {
        script_head = {"EVALSHA", shas_[id]};
      } else {
        std::string body;
        {
          std::lock_guard<std::mutex> lock(mu_);
          body = scripts_[id];
        }
        if (shas_[id].empty() && !sha_loading_[id]) LoadScript(op->script, body);
        script_head = {"EVAL", std::move(body)};
      }
      script_head.push_back(std::to_string(op->keys.size()));
    }
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    auto add = [&](const std::vector<std::string>& v) {
      for (const std::string& s : v) {
        ptrs.push_back(s.data());
        lens.push_back(s.size());
      }
    };
    add(script_head);
    add(op->keys);
    add(op->argv);
    if (redisAsyncCommandArgv(ac_, &Impl::OnReplyThunk, op, static_cast<int>(ptrs.size()),
                              ptrs.data(), lens.data()) != REDIS_OK) {
      return false;
    }
    ++commands_;
    op->sent_time = absl::Now();
    sent_.push_back(op);
    op->sent_pos = std::prev(sent_.end());
    if (op->done && !op->has_deadline_pos && op->deadline != absl::InfiniteFuture()) {
      op->deadline_pos = deadlines_.emplace(op->deadline, op);
      op->has_deadline_pos = true;
    }
    return true;
  }

  // SCRIPT LOAD in the background, to learn the SHA1 for later EVALSHAs.
  void LoadScript(ScriptId id, const std::string& body) {
    sha_loading_[static_cast<size_t>(id)] = true;
    auto op = std::make_unique<Op>();
    op->internal = true;
    op->argv = {"SCRIPT", "LOAD", body};
    op->done = [this, id](absl::StatusOr<RedisReply> reply) {
      sha_loading_[static_cast<size_t>(id)] = false;
      if (reply.ok() && reply->type == RedisReply::Type::kString) {
        shas_[static_cast<size_t>(id)] = reply->str;
      }
    };
    Op* raw = op.release();
    if (!Write(raw)) {
      sha_loading_[static_cast<size_t>(id)] = false;
      delete raw;
    }
  }

  static void OnReplyThunk(redisAsyncContext* ac, void* reply, void* privdata) {
    static_cast<Impl*>(ac->data)->OnReply(static_cast<Op*>(privdata),
                                          static_cast<redisReply*>(reply));
  }

  void OnReply(Op* op, redisReply* reply) {
    sent_.erase(op->sent_pos);
    if (reply == nullptr) {  // The connection is gone (or being freed): no reply will come.
      Finish(std::unique_ptr<Op>(op),
             shutting_down_ ? absl::CancelledError("redis client is shut down")
                            : absl::UnavailableError(absl::StrCat(
                                  "redis connection lost before the reply: ", LastError())));
      return;
    }
    if (state_ == State::kReady) healthy_.store(true, std::memory_order_release);
    if (op->done && op->sent_as_evalsha && reply->type == REDIS_REPLY_ERROR &&
        absl::StartsWith(absl::string_view(reply->str, reply->len), "NOSCRIPT") &&
        absl::Now() < op->deadline) {
      ++noscript_retries_;
      op->force_eval = true;
      if (Write(op)) return;
    }
    Finish(std::unique_ptr<Op>(op), Convert(reply));
  }

  // Frees `op` and its in-flight slot, then runs its callback (if it has not run yet): a
  // caller that issues its next command from the callback finds the slot free again.
  void Finish(std::unique_ptr<Op> op, absl::StatusOr<RedisReply> result) {
    if (op->has_deadline_pos) {
      deadlines_.erase(op->deadline_pos);
      op->has_deadline_pos = false;
    }
    ReplyCallback done = std::move(op->done);
    op->done = nullptr;
    Release(std::move(op));
    if (done) std::move(done)(std::move(result));
  }

  // Runs the op's callback at its deadline; the op itself stays with hiredis.
  void Complete(Op* op, absl::StatusOr<RedisReply> result) {
    ReplyCallback done = std::move(op->done);
    op->done = nullptr;
    if (done) std::move(done)(std::move(result));
  }

  // Frees an op and its in-flight slot.
  void Release(std::unique_ptr<Op> op) {
    if (!op->internal && !op->rejected) {
      std::lock_guard<std::mutex> lock(mu_);
      --in_flight_;
    }
  }

  void ExpireDeadlines(absl::Time now) {
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      Op* op = deadlines_.begin()->second;
      deadlines_.erase(deadlines_.begin());
      op->has_deadline_pos = false;
      ++timeouts_;
      healthy_.store(false, std::memory_order_release);
      Complete(op, absl::UnavailableError(
                       absl::StrCat("redis ", options_.endpoint.ToUrl(), " did not answer within ",
                                    absl::FormatDuration(options_.command_timeout))));
      // The op stays with hiredis (still in sent_) until its reply or the connection goes.
    }
  }

  void CheckConnection(absl::Time now) {
    if (shutting_down_) return;
    switch (state_) {
      case State::kDisconnected:
        if (now >= reconnect_at_) Connect(now);
        break;
      case State::kConnecting:
        if (now >= connect_deadline_) {
          RequestTeardown(absl::StrCat("connect and handshake took over ",
                                       absl::FormatDuration(options_.connect_timeout)));
        }
        break;
      case State::kReady:
        if (!sent_.empty() && now - sent_.front()->sent_time >= options_.stall_timeout) {
          RequestTeardown(
              absl::StrCat("no reply for ", absl::FormatDuration(now - sent_.front()->sent_time)));
        }
        break;
    }
  }

  void Connect(absl::Time now) {
    const RedisEndpoint& ep = options_.endpoint;
    redisAsyncContext* ac = redisAsyncConnect(ep.host.c_str(), ep.port);
    if (ac == nullptr || ac->err != 0) {
      SetLastError(ac == nullptr ? "out of memory" : absl::StrCat("connect: ", ac->errstr));
      if (ac != nullptr) redisAsyncFree(ac);  // No hooks yet: nothing calls back.
      ConnectFailed(now);
      return;
    }
    ac->data = this;
    ac->ev.data = this;
    ac->ev.addRead = [](void* p) { static_cast<Impl*>(p)->want_read_ = true; };
    ac->ev.delRead = [](void* p) { static_cast<Impl*>(p)->want_read_ = false; };
    ac->ev.addWrite = [](void* p) { static_cast<Impl*>(p)->want_write_ = true; };
    ac->ev.delWrite = [](void* p) { static_cast<Impl*>(p)->want_write_ = false; };
    ac->ev.cleanup = [](void* p) { static_cast<Impl*>(p)->OnCleanup(); };
    ac_ = ac;
    want_read_ = want_write_ = false;
    state_ = State::kConnecting;
    connect_deadline_ = now + options_.connect_timeout;
    // TCP keep-alive (hiredis' default interval, 15 s) catches a peer that vanished while the
    // connection was idle; a busy connection is covered by stall_timeout.
    redisEnableKeepAlive(&ac->c);
    redisAsyncSetConnectCallback(ac, &Impl::OnConnectThunk);  // Arms the write event.
    redisAsyncSetDisconnectCallback(ac, &Impl::OnDisconnectThunk);

    // Handshake, pipelined behind the TCP connect: SELECT (when needed) then PING. The
    // connection is usable once PING is answered.
    if (ep.db != 0) {
      SendInternal({"SELECT", std::to_string(ep.db)}, [this](absl::StatusOr<RedisReply> r) {
        if (r.ok() && r->type == RedisReply::Type::kError) {
          RequestTeardown(absl::StrCat("SELECT ", options_.endpoint.db, ": ", r->str));
        }
      });
    }
    SendInternal({"PING"}, [this](absl::StatusOr<RedisReply> r) {
      if (!r.ok() || state_ != State::kConnecting || teardown_reason_.has_value()) return;
      if (r->type == RedisReply::Type::kError) {
        RequestTeardown(absl::StrCat("PING: ", r->str));  // E.g. NOAUTH: a password is set.
        return;
      }
      state_ = State::kReady;
      failures_ = 0;
      ++connects_;
      healthy_.store(true, std::memory_order_release);
      {
        std::lock_guard<std::mutex> lock(mu_);
        connected_.store(true);
      }
      connected_cv_.notify_all();
    });
  }

  void SendInternal(std::vector<std::string> argv, ReplyCallback done) {
    auto op = std::make_unique<Op>();
    op->internal = true;
    op->argv = std::move(argv);
    op->done = std::move(done);
    Op* raw = op.release();
    if (!Write(raw)) delete raw;
  }

  static void OnConnectThunk(const redisAsyncContext* ac, int status) {
    if (status != REDIS_OK) {
      static_cast<Impl*>(ac->data)->SetLastError(absl::StrCat("connect: ", ac->errstr));
    }
  }

  static void OnDisconnectThunk(const redisAsyncContext* ac, int status) {
    if (status != REDIS_OK) {
      static_cast<Impl*>(ac->data)->SetLastError(absl::StrCat("disconnected: ", ac->errstr));
    }
  }

  // hiredis is freeing the context (error, or our redisAsyncFree). May run twice per context
  // in some hiredis versions; the second call finds ac_ already cleared.
  void OnCleanup() {
    if (ac_ == nullptr) return;
    ac_ = nullptr;
    DrainSigpipe();
    want_read_ = want_write_ = false;
    const bool was_ready = state_ == State::kReady;
    state_ = State::kDisconnected;
    healthy_.store(false, std::memory_order_release);
    {
      std::lock_guard<std::mutex> lock(mu_);
      connected_.store(false);
    }
    if (was_ready) {
      ++disconnects_;
      // The first reconnect after losing a good connection is quick; failures back off.
      reconnect_at_ = absl::Now() + Backoff();
    } else {
      ConnectFailed(absl::Now());
    }
  }

  // Consumes a SIGPIPE left pending (blocked) on this thread by a write to a dead connection.
  static void DrainSigpipe() {
    sigset_t pending;
    sigemptyset(&pending);
    if (sigpending(&pending) != 0 || sigismember(&pending, SIGPIPE) != 1) return;
    sigset_t sigpipe;
    sigemptyset(&sigpipe);
    sigaddset(&sigpipe, SIGPIPE);
    const timespec zero{0, 0};
    while (sigtimedwait(&sigpipe, nullptr, &zero) == SIGPIPE) {
    }
  }

  void ConnectFailed(absl::Time now) {
    state_ = State::kDisconnected;
    ++connect_failures_;
    reconnect_at_ = now + Backoff();
    ++failures_;
  }

  absl::Duration Backoff() {
    absl::Duration d = options_.reconnect_initial_backoff;
    for (int i = 0; i < failures_ && d < options_.reconnect_max_backoff; ++i) d *= 2;
    d = std::min(d, options_.reconnect_max_backoff);
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    return d * jitter(rng_);
  }

  void RequestTeardown(std::string reason) {
    if (!teardown_reason_.has_value()) teardown_reason_ = std::move(reason);
  }

  // Drops the connection (not from inside a hiredis callback): every outstanding op completes
  // UNAVAILABLE, and the reconnect is scheduled by OnCleanup.
  void Teardown() {
    std::string reason = std::move(*teardown_reason_);
    teardown_reason_.reset();
    if (ac_ == nullptr) return;
    SetLastError(reason);
    redisAsyncFree(ac_);
    if (ac_ != nullptr) OnCleanup();  // In case this hiredis did not call the cleanup hook.
  }

  void Poll(absl::Time now) {
    absl::Time wake = now + kMaxPollWait;
    if (!deadlines_.empty()) wake = std::min(wake, deadlines_.begin()->first);
    switch (state_) {
      case State::kDisconnected:
        wake = std::min(wake, reconnect_at_);
        break;
      case State::kConnecting:
        wake = std::min(wake, connect_deadline_);
        break;
      case State::kReady:
        if (!sent_.empty())
          wake = std::min(wake, sent_.front()->sent_time + options_.stall_timeout);
        break;
    }
    pollfd fds[2];
    fds[0] = {wake_fd_, POLLIN, 0};
    nfds_t nfds = 1;
    if (ac_ != nullptr) {
      short events = 0;
      if (want_read_) events |= POLLIN;
      if (want_write_) events |= POLLOUT;
      fds[1] = {ac_->c.fd, events, 0};  // Errors and hang-ups are reported even with no events.
      nfds = 2;
    }
    const absl::Duration wait = std::max(absl::ZeroDuration(), wake - now);
    const timespec ts = absl::ToTimespec(wait);
    const int n = ::ppoll(fds, nfds, &ts, nullptr);
    if (n <= 0 || nfds < 2 || ac_ == nullptr) return;
    const short revents = fds[1].revents;
    if (revents & (POLLIN | POLLERR | POLLHUP)) redisAsyncHandleRead(ac_);
    if (ac_ != nullptr && (revents & POLLOUT)) redisAsyncHandleWrite(ac_);
  }

  void Stop() {
    shutting_down_ = true;
    teardown_reason_ = "shutting down";
    Teardown();  // Outstanding ops complete with CANCELLED.
    while (true) {
      std::vector<std::unique_ptr<Op>> queue;
      std::vector<absl::AnyInvocable<void() &&>> posted;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (queue_.empty() && posted_.empty()) {
          exited_ = true;
          break;
        }
        queue.swap(queue_);
        posted.swap(posted_);
      }
      for (auto& op : queue)
        Finish(std::move(op), absl::CancelledError("redis client is shut down"));
      for (auto& fn : posted) std::move(fn)();
    }
    connected_cv_.notify_all();
  }

  void SetLastError(std::string error) {
    std::lock_guard<std::mutex> lock(mu_);
    last_error_ = std::move(error);
  }

  std::string LastError() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_error_.empty() ? "not connected yet" : last_error_;
  }

  const RedisClientOptions options_;
  int wake_fd_ = -1;
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};
  std::mutex join_mu_;

  mutable std::mutex mu_;
  std::condition_variable connected_cv_;
  std::vector<std::unique_ptr<Op>> queue_;             // Guarded by mu_.
  std::vector<absl::AnyInvocable<void() &&>> posted_;  // Guarded by mu_.
  std::vector<std::string> scripts_;                   // Guarded by mu_; append-only.
  size_t in_flight_ = 0;                               // Guarded by mu_.
  uint64_t rejected_in_flight_ = 0;                    // Guarded by mu_.
  std::string last_error_;                             // Guarded by mu_.
  bool wake_pending_ = false;                          // Guarded by mu_.
  bool stopping_ = false;                              // Guarded by mu_.
  bool exited_ = false;                                // Guarded by mu_.

  std::atomic<bool> connected_{false};
  std::atomic<bool> healthy_{false};
  std::atomic<uint64_t> connects_{0}, connect_failures_{0}, disconnects_{0}, commands_{0},
      timeouts_{0}, rejected_not_connected_{0}, noscript_retries_{0};

  // Event thread only.
  redisAsyncContext* ac_ = nullptr;
  State state_ = State::kDisconnected;
  bool want_read_ = false;
  bool want_write_ = false;
  bool shutting_down_ = false;
  std::optional<std::string> teardown_reason_;
  absl::Time connect_deadline_ = absl::InfinitePast();
  absl::Time reconnect_at_ = absl::InfinitePast();
  int failures_ = 0;
  std::list<Op*> sent_;  // Written, reply owed, oldest first (replies come in order).
  std::multimap<absl::Time, Op*> deadlines_;  // Sent ops whose callback has not run yet.
  std::vector<std::string> shas_;             // Per script id; empty: unknown.
  std::vector<bool> sha_loading_;
  std::mt19937 rng_;
};

absl::StatusOr<std::unique_ptr<RedisClient>> RedisClient::Create(RedisClientOptions options) {
  if (absl::Status s = ValidateOptions(options); !s.ok()) return s;
  auto impl = std::make_unique<Impl>(std::move(options));
  if (absl::Status s = impl->Start(); !s.ok()) return s;
  return std::unique_ptr<RedisClient>(new RedisClient(std::move(impl)));
}

RedisClient::RedisClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
// Shut down while impl_ is fully alive: reply callbacks run during the shutdown and may still
// call into this client (their commands complete with CANCELLED).
RedisClient::~RedisClient() { impl_->Shutdown(); }

void RedisClient::Command(std::vector<std::string> argv, ReplyCallback done) {
  Command(std::move(argv), absl::Now() + impl_->options().command_timeout, std::move(done));
}

void RedisClient::Command(std::vector<std::string> argv, absl::Time deadline, ReplyCallback done) {
  impl_->Submit(std::move(argv), -1, {}, deadline, std::move(done));
}

RedisClient::ScriptId RedisClient::RegisterScript(std::string body) {
  return impl_->RegisterScript(std::move(body));
}

void RedisClient::Eval(ScriptId script, std::vector<std::string> keys,
                       std::vector<std::string> args, ReplyCallback done) {
  if (!impl_->ValidScript(script)) {
    std::fprintf(stderr, "RedisClient::Eval: unregistered script id %d\n", script);
    std::abort();
  }
  impl_->Submit(std::move(args), script, std::move(keys),
                absl::Now() + impl_->options().command_timeout, std::move(done));
}

void RedisClient::Post(absl::AnyInvocable<void() &&> fn) { impl_->Post(std::move(fn)); }
bool RedisClient::healthy() const { return impl_->healthy(); }
bool RedisClient::WaitUntilConnected(absl::Duration timeout) {
  return impl_->WaitUntilConnected(timeout);
}
RedisClientStats RedisClient::Stats() const { return impl_->Stats(); }
const RedisClientOptions& RedisClient::options() const { return impl_->options(); }
void RedisClient::Shutdown() { impl_->Shutdown(); }

}  // namespace userpilot::gateway
