#include "service/http/curl_http_client.h"

#include <curl/curl.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/http/curl_errors.h"
#include "service/http/curl_transfer.h"
#include "service/http/latency_estimate.h"

// Locking note: this file uses std::mutex, not absl::Mutex. Debian's libabsl is built without
// ThreadSanitizer, so TSan cannot see absl::Mutex's synchronisation and reports false races on
// every field it guards; std::mutex goes through pthreads, which TSan intercepts. Guarded fields
// are marked "Guarded by mu_" in comments, since GCC does not check ABSL_GUARDED_BY anyway.

namespace userpilot::gateway {
namespace {

using http_internal::Transfer;
using TransferPtr = std::unique_ptr<Transfer>;

// How long past its deadline a transfer may stay with libcurl before the client ends it itself.
// libcurl's own timeout normally fires first (and explains more). The backstop covers transfers
// that libcurl parks while they wait for a free connection: 7.88 checks no timeout there.
constexpr absl::Duration kDeadlineGrace = absl::Milliseconds(20);

// Longest wait of the event loop when nothing is due. Every event that matters wakes the loop
// (curl_multi_wakeup, socket activity, libcurl's timers, our deadlines); this only bounds the
// cost of a wakeup that was somehow missed.
constexpr absl::Duration kMaxPollWait = absl::Seconds(1);

std::string Where(const HttpRequest& request) {
  return absl::StrCat(request.method, " ", http_internal::OriginOf(request.url));
}

absl::Status GlobalInitOnce() {
  static std::once_flag once;
  static CURLcode result = CURLE_OK;
  std::call_once(once, [] { result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (result != CURLE_OK) {
    return absl::InternalError(
        absl::StrCat("curl_global_init failed: ", curl_easy_strerror(result)));
  }
  return absl::OkStatus();
}

bool HasLineBreak(absl::string_view s) {
  return s.find_first_of(absl::string_view("\r\n\0", 3)) != absl::string_view::npos;
}

absl::Status ValidateOptions(const CurlHttpClientOptions& o) {
  auto bad = [](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("CurlHttpClientOptions: ", what));
  };
  if (o.max_in_flight < 1) return bad("max_in_flight must be at least 1");
  if (o.max_queued < 1) return bad("max_queued must be at least 1");
  if (o.completion_threads < 1) return bad("completion_threads must be at least 1");
  if (o.max_response_bytes < 1) return bad("max_response_bytes must be at least 1");
  if (o.connect_timeout <= absl::ZeroDuration() || o.connect_timeout == absl::InfiniteDuration()) {
    return bad("connect_timeout must be positive and finite");
  }
  if (o.max_idle_connection_age < absl::Seconds(1) ||
      o.max_idle_connection_age == absl::InfiniteDuration()) {
    return bad("max_idle_connection_age must be at least 1 s and finite");
  }
  if (!o.ca_file.empty()) {
    std::FILE* file = std::fopen(o.ca_file.c_str(), "rb");
    if (file == nullptr) return bad(absl::StrCat("ca_file '", o.ca_file, "' cannot be read"));
    std::fclose(file);
  }
  if (HasLineBreak(o.user_agent)) return bad("user_agent holds CR, LF or NUL");
  if (HasLineBreak(o.proxy)) return bad("proxy holds CR, LF or NUL");
  return absl::OkStatus();
}

}  // namespace

// All the state. The public class only forwards, so that its header stays free of curl.
class CurlHttpClient::Impl {
 public:
  Impl(CurlHttpClientOptions options, CURLM* multi) : options_(std::move(options)), multi_(multi) {}

  ~Impl() {
    if (OnOwnThread()) {
      std::fprintf(stderr, "CurlHttpClient destroyed from its own completion callback\n");
      std::abort();
    }
    Shutdown();
    for (CURL* easy : idle_easy_) curl_easy_cleanup(easy);
    curl_multi_cleanup(multi_);  // Closes the idle keep-alive connections.
  }

  void Start() {
    for (size_t i = 0; i < options_.completion_threads; ++i) {
      workers_.emplace_back([this] { RunCompletions(); });
      worker_ids_.push_back(workers_.back().get_id());
    }
    thread_ = std::thread([this] { Run(); });
    event_thread_id_ = thread_.get_id();
  }

  void Send(HttpRequest request, Callback done) {
    auto t = std::make_unique<Transfer>();
    t->send_time = absl::Now();
    t->request = std::move(request);
    t->done = done ? std::move(done) : Callback([](HttpResult) {});
    absl::Status invalid = http_internal::ValidateRequest(t->request);

    std::unique_lock<std::mutex> lock(mu_);
    if (exited_) {
      // No event thread any more (documented exception): complete here.
      lock.unlock();
      http_internal::FinishUnsent(*t, absl::CancelledError(absl::StrCat(Where(t->request),
                                                                        ": the HTTP client is shut "
                                                                        "down; not sent")));
      t->result.elapsed = absl::Now() - t->send_time;
      std::move(t->done)(std::move(t->result));
      return;
    }
    if (stopping_) {
      t->decided = absl::CancelledError(
          absl::StrCat(Where(t->request), ": the HTTP client is shutting down; not sent"));
    } else if (!invalid.ok()) {
      t->decided = absl::InvalidArgumentError(
          absl::StrCat(Where(t->request), ": ", invalid.message(), "; not sent"));
    } else if (t->request.deadline <= t->send_time) {
      t->decided = absl::DeadlineExceededError(
          absl::StrCat(Where(t->request), ": the deadline passed before the request was sent"));
    } else if (queued_ + in_flight_ >= options_.max_queued + options_.max_in_flight) {
      ++rejected_;
      t->decided = absl::ResourceExhaustedError(absl::StrCat(
          Where(t->request), ": the HTTP client is overloaded (", in_flight_, " in flight, ",
          queued_, " queued, max_queued ", options_.max_queued, "); not sent"));
    } else {
      ++queued_;
    }
    t->seq = next_seq_++;
    // The event thread takes the whole batch at once, so only the first of a batch must wake it.
    const bool wake = submitted_.empty();
    submitted_.push_back(std::move(t));
    if (wake) curl_multi_wakeup(multi_);
  }

  void Shutdown() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!stopping_) {
        stopping_ = true;
        curl_multi_wakeup(multi_);
      }
    }
    if (OnOwnThread()) return;  // Cannot join itself: the destructor joins.
    std::call_once(join_once_, [this] {
      thread_.join();
      // Every completion is queued by now (the event thread delivers all before it exits).
      {
        std::lock_guard<std::mutex> lock(completions_mu_);
        completions_closed_ = true;
      }
      completions_ready_.notify_all();
      for (std::thread& worker : workers_) worker.join();
    });
  }

  CurlHttpClientStats Stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    CurlHttpClientStats stats;
    stats.queued = queued_;
    stats.in_flight = in_flight_;
    stats.rejected_queue_full = rejected_;
    stats.refused_too_late = published_refused_too_late_;
    stats.typical_latency = published_typical_latency_;
    std::lock_guard<std::mutex> completions_lock(completions_mu_);
    stats.completions_waiting = completions_.size();
    stats.completed_inline = completed_inline_.load(std::memory_order_relaxed);
    return stats;
  }

 private:
  struct Running {
    CURL* easy;
    TransferPtr transfer;
  };

  void Run() {
    pthread_setname_np(pthread_self(), "upgw-http");
    std::vector<TransferPtr> incoming;
    for (;;) {
      bool stopping = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        incoming.swap(submitted_);
        stopping = stopping_;
      }
      Accept(incoming, stopping);
      if (stopping) break;
      const absl::Time now = absl::Now();
      ExpireRunning(now);
      StartQueued(now);
      // Whatever is still queued has found every slot busy.
      waiting_below_seq_ = queued_end_seq_;
      ExpireQueued(now);
      int still_running = 0;
      curl_multi_perform(multi_, &still_running);
      CollectFinished();
      PublishCounts();
      if (!finished_.empty()) {
        Deliver();
        continue;  // Callbacks may have sent more, and slots were freed: look again at once.
      }
      curl_multi_poll(multi_, nullptr, 0, PollTimeoutMs(absl::Now()), nullptr);
    }
    CancelAll();
    PublishCounts();
    Deliver();
    // Requests sent while stopping (their callbacks may send more) were decided CANCELLED in
    // Send(); deliver them until none is left, then refuse further ones in Send() itself.
    for (;;) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (submitted_.empty()) {
          exited_ = true;
          return;
        }
        incoming.swap(submitted_);
      }
      Accept(incoming, /*stopping=*/true);
      PublishCounts();
      Deliver();
    }
  }

  // Takes Send()'s batch: decided ones go straight to delivery, the rest join the queue.
  void Accept(std::vector<TransferPtr>& incoming, bool stopping) {
    for (TransferPtr& t : incoming) {
      if (!t->decided.ok()) {
        http_internal::FinishUnsent(*t, std::move(t->decided));
        finished_.push_back(std::move(t));
      } else if (stopping) {
        ++left_queue_;
        CancelUnsent(std::move(t));
      } else {
        queue_deadlines_.emplace(t->request.deadline, t->seq);
        const uint64_t seq = t->seq;
        queued_end_seq_ = seq + 1;
        queue_.emplace(seq, std::move(t));
      }
    }
    incoming.clear();
  }

  // The queued transfer to start next: the oldest while the queue keeps up; the newest once it
  // is backed up, i.e. its oldest transfer has waited longer than the upstream's typical answer
  // time (a backlog of more than one round of slots). Under sustained overload, oldest-first
  // would start every transfer with just about the typical answer time left (everything older
  // having expired), so each one would finish at the edge of its deadline and many would miss
  // it; newest-first starts transfers with most of their deadline left, and the oldest ones
  // expire from the queue, never sent (adaptive LIFO). O(1): the queue is ordered by arrival.
  std::map<uint64_t, TransferPtr>::iterator NextToStart(absl::Time now) {
    const absl::Duration typical = latency_.typical();
    const auto oldest = queue_.begin();
    if (typical > absl::ZeroDuration() && now - oldest->second->send_time > typical) {
      return std::prev(queue_.end());
    }
    return oldest;
  }

  // True when `t`, about to leave the queue at `now`, should not be sent: its deadline has
  // passed, or it has waited for a slot and no more of its deadline is left than the upstream
  // typically takes to answer (latency_estimate.h). O(1).
  bool TooLate(const Transfer& t, absl::Time now) const {
    const absl::Duration left = t.request.deadline - now;
    return left <= absl::ZeroDuration() ||
           (t.seq < waiting_below_seq_ && left <= latency_.typical());
  }

  // Answers `t` DEADLINE_EXCEEDED, not sent, saying why TooLate() held.
  void RefuseTooLate(TransferPtr t, absl::Time now) {
    ++refused_too_late_;
    const absl::Duration left = t->request.deadline - now;
    const auto ms = [](absl::Duration d) {
      return absl::StrCat(absl::ToInt64Milliseconds(d), " ms");
    };
    std::string why =
        left <= absl::ZeroDuration()
            ? std::string(": the deadline passed while waiting in the HTTP client's queue")
            : absl::StrCat(": ", ms(left), " of the deadline left after waiting ",
                           ms(now - t->send_time), " in the HTTP client's queue, not more ",
                           "than the upstream's typical answer time of ", ms(latency_.typical()));
    absl::Status status = absl::DeadlineExceededError(absl::StrCat(
        Where(t->request), why, " (max_in_flight ", options_.max_in_flight, "); not sent"));
    FailUnsent(std::move(t), std::move(status));
  }

  // Answers the queued transfers that can no longer make their deadline, soonest deadline
  // first: O(log n) each. Runs after StartQueued, when every queued transfer has waited, so
  // "deadline - typical answer time <= now" is TooLate() for all of them.
  void ExpireQueued(absl::Time now) {
    const absl::Duration typical = latency_.typical();
    while (!queue_deadlines_.empty() && queue_deadlines_.begin()->first - typical <= now) {
      const auto node = queue_.find(queue_deadlines_.begin()->second);
      queue_deadlines_.erase(queue_deadlines_.begin());
      TransferPtr t = std::move(node->second);
      queue_.erase(node);
      ++left_queue_;
      RefuseTooLate(std::move(t), now);
    }
  }

  void ExpireRunning(absl::Time now) {
    while (!running_deadlines_.empty() &&
           running_deadlines_.begin()->first + kDeadlineGrace <= now) {
      Abandon(running_deadlines_.begin()->second, absl::StatusCode::kDeadlineExceeded,
              "deadline exceeded before the transfer completed");
    }
  }

  void StartQueued(absl::Time now) {
    while (running_.size() < options_.max_in_flight && !queue_.empty()) {
      const auto next = NextToStart(now);
      TransferPtr t = std::move(next->second);
      queue_.erase(next);
      queue_deadlines_.erase({t->request.deadline, t->seq});
      ++left_queue_;
      if (TooLate(*t, now)) {
        RefuseTooLate(std::move(t), now);
        continue;
      }
      CURL* easy = idle_easy_.empty() ? curl_easy_init() : idle_easy_.back();
      if (!idle_easy_.empty()) idle_easy_.pop_back();
      if (easy == nullptr) {
        FailUnsent(std::move(t), absl::InternalError("curl_easy_init failed"));
        continue;
      }
      absl::Status configured = http_internal::ConfigureEasy(easy, *t, options_, now);
      if (!configured.ok()) {
        ReleaseEasy(easy);
        FailUnsent(std::move(t), std::move(configured));
        continue;
      }
      const CURLMcode added = curl_multi_add_handle(multi_, easy);
      if (added != CURLM_OK) {
        ReleaseEasy(easy);
        FailUnsent(std::move(t), absl::InternalError(absl::StrCat("curl_multi_add_handle failed: ",
                                                                  curl_multi_strerror(added))));
        continue;
      }
      t->started = now;
      running_deadlines_.emplace(t->request.deadline, t.get());
      Transfer* key = t.get();
      running_.emplace(key, Running{easy, std::move(t)});
    }
  }

  void CollectFinished() {
    const absl::Time now = absl::Now();
    int pending = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &pending)) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL* const easy = msg->easy_handle;  // `msg` dies with curl_multi_remove_handle.
      const CURLcode code = msg->data.result;
      char* key = nullptr;
      curl_easy_getinfo(easy, CURLINFO_PRIVATE, &key);
      TransferPtr t = Detach(reinterpret_cast<Transfer*>(key));
      http_internal::FinishFromCurl(easy, *t, code);
      // An HTTP answer (any status) measures the upstream; an upload's time is its size's.
      if (code == CURLE_OK && t->request.body_source == nullptr) latency_.Add(now - t->started);
      ReleaseEasy(easy);
      finished_.push_back(std::move(t));
    }
  }

  void CancelAll() {
    while (!running_.empty()) {
      Abandon(running_.begin()->first, absl::StatusCode::kCancelled,
              "cancelled: the HTTP client is shutting down");
    }
    for (auto& [seq, t] : queue_) {
      ++left_queue_;
      CancelUnsent(std::move(t));
    }
    queue_.clear();
    queue_deadlines_.clear();
  }

  // Ends a transfer libcurl is still running.
  void Abandon(Transfer* key, absl::StatusCode code, absl::string_view why) {
    CURL* const easy = running_.at(key).easy;
    TransferPtr t = Detach(key);
    http_internal::FinishAbandoned(easy, *t, code, why);
    ReleaseEasy(easy);
    finished_.push_back(std::move(t));
  }

  // Takes a transfer away from libcurl and out of the running set.
  TransferPtr Detach(Transfer* key) {
    auto node = running_.find(key);
    curl_multi_remove_handle(multi_, node->second.easy);
    TransferPtr t = std::move(node->second.transfer);
    running_.erase(node);
    running_deadlines_.erase({t->request.deadline, key});
    return t;
  }

  void CancelUnsent(TransferPtr t) {
    absl::Status cancelled = absl::CancelledError(
        absl::StrCat(Where(t->request), ": the HTTP client is shutting down; not sent"));
    FailUnsent(std::move(t), std::move(cancelled));
  }

  void FailUnsent(TransferPtr t, absl::Status status) {
    http_internal::FinishUnsent(*t, std::move(status));
    finished_.push_back(std::move(t));
  }

  void ReleaseEasy(CURL* easy) {
    // Reset drops every pointer into the finished Transfer; connections and the DNS cache live
    // in the multi handle, so nothing of value is lost.
    curl_easy_reset(easy);
    if (idle_easy_.size() < options_.max_in_flight) {
      idle_easy_.push_back(easy);
    } else {
      curl_easy_cleanup(easy);
    }
  }

  void PublishCounts() {
    std::lock_guard<std::mutex> lock(mu_);
    queued_ -= left_queue_;
    left_queue_ = 0;
    in_flight_ = running_.size();
    published_refused_too_late_ = refused_too_late_;
    published_typical_latency_ = latency_.typical();
  }

  // Runs the callbacks of everything finished: a short callback with a small answer here, on
  // the event thread, with no lock held (it may call Send()); every other one is handed to the
  // completion threads, so parsing a large answer, or anything else a callback does, never
  // holds up the other transfers.
  void Deliver() {
    if (finished_.empty()) return;
    std::vector<TransferPtr> batch;
    batch.swap(finished_);
    const absl::Time now = absl::Now();
    bool handed_over = false;
    {
      std::lock_guard<std::mutex> lock(completions_mu_);
      for (TransferPtr& t : batch) {
        t->result.elapsed = now - t->send_time;
        if (RunsInline(*t)) continue;
        completions_.push_back(Completion{std::move(t->done), std::move(t->result)});
        t.reset();  // Free the request (body, headers) before user code runs.
        handed_over = true;
      }
    }
    if (handed_over) completions_ready_.notify_all();
    for (TransferPtr& t : batch) {
      if (t == nullptr) continue;
      Callback done = std::move(t->done);
      HttpResult result = std::move(t->result);
      t.reset();
      completed_inline_.fetch_add(1, std::memory_order_relaxed);
      std::move(done)(std::move(result));
    }
  }

  bool RunsInline(const Transfer& t) const {
    return t.request.short_callback &&
           t.result.response.body.size() <= options_.inline_completion_max_bytes &&
           options_.inline_completion_max_bytes > 0;
  }

  // A completion thread: runs callbacks in the order they finished, with no lock held (they
  // may call Send()), until Shutdown() closes the queue and it is empty.
  void RunCompletions() {
    pthread_setname_np(pthread_self(), "upgw-http-done");
    for (;;) {
      Completion next;
      {
        std::unique_lock<std::mutex> lock(completions_mu_);
        completions_ready_.wait(lock,
                                [this] { return completions_closed_ || !completions_.empty(); });
        if (completions_.empty()) return;
        next = std::move(completions_.front());
        completions_.pop_front();
      }
      std::move(next.done)(std::move(next.result));
    }
  }

  // True on the event thread or a completion thread (i.e. inside a callback).
  bool OnOwnThread() const {
    const std::thread::id self = std::this_thread::get_id();
    return self == event_thread_id_ ||
           std::find(worker_ids_.begin(), worker_ids_.end(), self) != worker_ids_.end();
  }

  int PollTimeoutMs(absl::Time now) const {
    absl::Duration wait = kMaxPollWait;
    if (!queue_deadlines_.empty()) {
      wait = std::min(wait, queue_deadlines_.begin()->first - latency_.typical() - now);
    }
    if (!running_deadlines_.empty()) {
      wait = std::min(wait, running_deadlines_.begin()->first + kDeadlineGrace - now);
    }
    if (wait <= absl::ZeroDuration()) return 0;
    return static_cast<int>(absl::ToInt64Milliseconds(absl::Ceil(wait, absl::Milliseconds(1))));
  }

  const CurlHttpClientOptions options_;
  CURLM* const multi_;  // curl_multi_wakeup is the only call made off the event thread.
  std::thread thread_;
  std::thread::id event_thread_id_;          // Set before the client is handed out; then constant.
  std::vector<std::thread> workers_;         // Completion threads.
  std::vector<std::thread::id> worker_ids_;  // Set before the client is handed out; then constant.
  std::once_flag join_once_;

  // Finished transfers whose callbacks wait for a completion thread. At most one per accepted
  // request, so bounded by what Send() accepts; Stats().completions_waiting shows it.
  struct Completion {
    Callback done;
    HttpResult result;
  };
  mutable std::mutex completions_mu_;
  std::condition_variable completions_ready_;
  std::deque<Completion> completions_;         // Guarded by completions_mu_.
  bool completions_closed_ = false;            // Guarded by completions_mu_.
  std::atomic<uint64_t> completed_inline_{0};  // Callbacks run on the event thread.

  mutable std::mutex mu_;
  std::vector<TransferPtr> submitted_;  // Guarded by mu_. Send()'s batch, not yet taken.
  size_t queued_ = 0;                   // Guarded by mu_. Accepted, not yet started or ended.
  size_t in_flight_ = 0;                // Guarded by mu_. Published copy of running_.size().
  uint64_t rejected_ = 0;               // Guarded by mu_.
  uint64_t next_seq_ = 0;               // Guarded by mu_.
  bool stopping_ = false;               // Guarded by mu_.
  bool exited_ = false;                 // Guarded by mu_. The event thread has finished.
  // Guarded by mu_. Published copies of refused_too_late_ and latency_.typical().
  uint64_t published_refused_too_late_ = 0;
  absl::Duration published_typical_latency_ = absl::ZeroDuration();

  // Event thread only.
  std::map<uint64_t, TransferPtr> queue_;  // By sequence number (arrival); see NextToStart().
  std::set<std::pair<absl::Time, uint64_t>> queue_deadlines_;
  std::unordered_map<Transfer*, Running> running_;
  std::set<std::pair<absl::Time, Transfer*>> running_deadlines_;
  std::vector<CURL*> idle_easy_;       // Reset handles, reused to save allocations.
  std::vector<TransferPtr> finished_;  // Result filled in, callback not yet run.
  size_t left_queue_ = 0;              // Left the queue since the last PublishCounts().
  http_internal::LatencyEstimate latency_;
  uint64_t refused_too_late_ = 0;
  // Queued transfers with a sequence number below waiting_below_seq_ have found every slot
  // busy (they were still queued after StartQueued filled the slots), so TooLate() may judge
  // them by the estimate; a transfer that finds a free slot is always sent. queued_end_seq_
  // is one past the last queued transfer's.
  uint64_t waiting_below_seq_ = 0;
  uint64_t queued_end_seq_ = 0;
};

absl::StatusOr<std::unique_ptr<CurlHttpClient>> CurlHttpClient::Create(
    CurlHttpClientOptions options) {
  if (absl::Status valid = ValidateOptions(options); !valid.ok()) return valid;
  if (absl::Status init = GlobalInitOnce(); !init.ok()) return init;
  CURLM* multi = curl_multi_init();
  if (multi == nullptr) return absl::InternalError("curl_multi_init failed");
  // HTTP/1.1 runs one request per connection at a time, so by default allow as many connections
  // as transfers, and keep them all for reuse.
  const long max_connections = static_cast<long>(  // NOLINT(runtime/int): curl's type.
      options.max_connections > 0 ? options.max_connections : options.max_in_flight);
  CURLMcode rc = curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_connections);
  if (rc == CURLM_OK) rc = curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_connections);
  if (rc == CURLM_OK) rc = curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, max_connections);
  if (rc == CURLM_OK) rc = curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_NOTHING);
  if (rc != CURLM_OK) {
    curl_multi_cleanup(multi);
    return absl::InternalError(absl::StrCat("curl_multi_setopt failed: ", curl_multi_strerror(rc)));
  }
  auto impl = std::make_unique<Impl>(std::move(options), multi);
  impl->Start();
  return std::unique_ptr<CurlHttpClient>(new CurlHttpClient(std::move(impl)));
}

CurlHttpClient::CurlHttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CurlHttpClient::~CurlHttpClient() = default;  // ~Impl shuts down and joins.

void CurlHttpClient::Send(HttpRequest request, Callback done) {
  impl_->Send(std::move(request), std::move(done));
}

void CurlHttpClient::Shutdown() { impl_->Shutdown(); }

CurlHttpClientStats CurlHttpClient::Stats() const { return impl_->Stats(); }

}  // namespace userpilot::gateway
