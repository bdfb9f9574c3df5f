#include "tests/mocks/fake_http_client.h"

#include "absl/strings/ascii.h"

namespace userpilot::gateway {

FakeHttpClient::FakeHttpClient() : completion_thread_([this] { RunCompletions(); }) {}

FakeHttpClient::~FakeHttpClient() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
  completion_thread_.join();  // Delivers every queued automatic answer first.
  std::deque<Callback> pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending.swap(pending_);
  }
  for (Callback& done : pending) {
    std::move(done)(TransportFailure(absl::CancelledError("client shut down")));
  }
}

HttpResult FakeHttpClient::Response(long status_code, std::string body,  // NOLINT(runtime/int)
                                    HttpHeaders headers) {
  HttpResult result;
  result.response.status_code = status_code;
  result.response.body = std::move(body);
  for (auto& [name, value] : headers) {
    result.response.headers.emplace_back(absl::AsciiStrToLower(name), std::move(value));
  }
  return result;
}

HttpResult FakeHttpClient::TransportFailure(absl::Status status, bool request_may_have_been_sent) {
  HttpResult result;
  result.transport_status = std::move(status);
  result.request_may_have_been_sent = request_may_have_been_sent;
  return result;
}

void FakeHttpClient::Send(HttpRequest request, Callback done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(request);
    if (handler_) {
      work_.push_back(Work{std::move(request), handler_, HttpResult(), std::move(done)});
    } else if (!script_.empty()) {
      work_.push_back(Work{HttpRequest(), nullptr, std::move(script_.front()), std::move(done)});
      script_.pop_front();
    } else {
      pending_.push_back(std::move(done));
    }
  }
  changed_.notify_all();
}

void FakeHttpClient::Enqueue(HttpResult result) {
  std::lock_guard<std::mutex> lock(mu_);
  script_.push_back(std::move(result));
}

void FakeHttpClient::EnqueueResponse(long status_code, std::string body,  // NOLINT(runtime/int)
                                     HttpHeaders headers) {
  Enqueue(Response(status_code, std::move(body), std::move(headers)));
}

void FakeHttpClient::SetHandler(Handler handler) {
  std::lock_guard<std::mutex> lock(mu_);
  handler_ = std::move(handler);
}

bool FakeHttpClient::CompleteNext(HttpResult result) {
  Callback done;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_.empty()) return false;
    done = std::move(pending_.front());
    pending_.pop_front();
  }
  std::move(done)(std::move(result));
  return true;
}

std::vector<HttpRequest> FakeHttpClient::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

size_t FakeHttpClient::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_.size();
}

bool FakeHttpClient::WaitForRequests(size_t count, absl::Duration timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                           [&] { return requests_.size() >= count; });
}

bool FakeHttpClient::WaitForIdle(absl::Duration timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                           [&] { return work_.empty() && running_ == 0; });
}

void FakeHttpClient::RunCompletions() {
  while (true) {
    Work work;
    {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait(lock, [&] { return stopping_ || !work_.empty(); });
      if (work_.empty()) return;  // Stopping, and everything queued was delivered.
      work = std::move(work_.front());
      work_.pop_front();
      ++running_;
    }
    HttpResult result = work.handler ? work.handler(work.request) : std::move(work.result);
    std::move(work.done)(std::move(result));
    {
      std::lock_guard<std::mutex> lock(mu_);
      --running_;
    }
    changed_.notify_all();
  }
}

}  // namespace userpilot::gateway
