#include "bench/loadgen/http_target.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace userpilot::gateway::bench {
namespace {

size_t Discard(char*, size_t size, size_t count, void*) { return size * count; }

}  // namespace

absl::StatusOr<std::unique_ptr<HttpTarget>> HttpTarget::Create(HttpTargetOptions options) {
  static const CURLcode global = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (global != CURLE_OK) return absl::InternalError("curl_global_init failed");
  std::unique_ptr<HttpTarget> target(new HttpTarget(std::move(options)));
  if (target->multi_ == nullptr) return absl::InternalError("curl_multi_init failed");
  target->thread_ = std::thread([t = target.get()] { t->Loop(); });
  return target;
}

HttpTarget::HttpTarget(HttpTargetOptions options) : options_(std::move(options)) {
  multi_ = curl_multi_init();
  if (multi_ == nullptr) return;
  const long connections = std::max(1, options_.connections);
  curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, connections);
  curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS, connections);
  curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, connections);
  // The same headers the gateway sends upstream (service/upstream/http_userpilot_stub.cc).
  headers_ =
      curl_slist_append(headers_, absl::StrCat("Authorization: Token ", options_.api_key).c_str());
  headers_ = curl_slist_append(headers_, "X-API-Version: 2020-09-22");
  headers_ = curl_slist_append(headers_, "Accept: application/json");
  headers_ = curl_slist_append(headers_, "Content-Type: application/json");
  headers_ = curl_slist_append(headers_, "Expect:");
}

HttpTarget::~HttpTarget() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  if (multi_ != nullptr) curl_multi_wakeup(multi_);
  if (thread_.joinable()) thread_.join();
  for (auto& transfer : idle_) curl_easy_cleanup(transfer->easy);
  if (multi_ != nullptr) curl_multi_cleanup(multi_);
  curl_slist_free_all(headers_);
}

void HttpTarget::Start(Op op, uint64_t seq, DoneCallback done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    submitted_.push_back(Pending{op, seq, std::move(done)});
  }
  curl_multi_wakeup(multi_);
}

std::string HttpTarget::CodeName(int code) const {
  return code < 0 ? absl::StrCat("curl_", -code) : absl::StrCat(code);
}

void HttpTarget::AddTransfer(Pending pending) {
  std::unique_ptr<Transfer> transfer;
  if (!idle_.empty()) {
    transfer = std::move(idle_.back());
    idle_.pop_back();
  } else {
    transfer = std::make_unique<Transfer>();
    transfer->easy = curl_easy_init();
    CURL* e = transfer->easy;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Discard);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                     static_cast<long>(absl::ToInt64Milliseconds(options_.deadline)));
  }
  CURL* e = transfer->easy;
  const std::string url = absl::StrCat(options_.base_url, RequestMix::RestPath(pending.op));
  const std::string body = RequestMix::RestBody(pending.op, pending.seq);
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body.c_str());
  transfer->done = std::move(pending.done);
  curl_easy_setopt(e, CURLOPT_PRIVATE, transfer.get());
  if (curl_multi_add_handle(multi_, e) != CURLM_OK) {
    DoneCallback done = std::move(transfer->done);
    idle_.push_back(std::move(transfer));
    done(Outcome{-static_cast<int>(CURLE_FAILED_INIT), false});
    return;
  }
  active_.insert(transfer.release());  // Owned by the multi handle until FinishTransfers.
}

void HttpTarget::FinishTransfers() {
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL* e = msg->easy_handle;
    const CURLcode result = msg->data.result;
    Transfer* raw = nullptr;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, &raw);
    std::unique_ptr<Transfer> transfer(raw);
    active_.erase(raw);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(multi_, e);
    Outcome outcome;
    if (result != CURLE_OK) {
      outcome = Outcome{-static_cast<int>(result), false};
    } else {
      outcome = Outcome{static_cast<int>(status), status >= 200 && status < 300};
    }
    DoneCallback done = std::move(transfer->done);
    idle_.push_back(std::move(transfer));
    done(outcome);  // May call Start(): it only queues.
  }
}

void HttpTarget::Loop() {
  std::deque<Pending> batch;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) break;
      batch.swap(submitted_);
    }
    for (Pending& pending : batch) AddTransfer(std::move(pending));
    batch.clear();
    int running = 0;
    curl_multi_perform(multi_, &running);
    FinishTransfers();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!submitted_.empty()) continue;  // Completions started more calls: add them first.
    }
    curl_multi_poll(multi_, nullptr, 0, 100, nullptr);
  }
  // Calls still in flight are abandoned (their callbacks never run): only at destruction.
  for (Transfer* transfer : active_) {
    curl_multi_remove_handle(multi_, transfer->easy);
    curl_easy_cleanup(transfer->easy);
    delete transfer;
  }
  active_.clear();
}

}  // namespace userpilot::gateway::bench
