#include "tests/emulator/request_log.h"

#include <algorithm>

namespace userpilot::gateway::testing {

absl::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kAnswered:
      return "answered";
    case Outcome::kInjectedError:
      return "injected_error";
    case Outcome::kDropped:
      return "dropped";
    case Outcome::kHung:
      return "hung";
    case Outcome::kPending:
    default:
      return "pending";
  }
}

absl::string_view RecordedRequest::Header(absl::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key == name) return value;
  }
  return "";
}

std::shared_ptr<const RecordedRequest> RequestLog::Record(RecordedRequest request) {
  auto shared = std::make_shared<RecordedRequest>(std::move(request));
  absl::MutexLock lock(&mu_);
  shared->seq = ++last_seq_;
  ++stats_.requests;
  if (capacity_ == 0) {
    ++evicted_;
    return shared;
  }
  Slot slot;
  slot.request = shared;
  if (ring_.size() < capacity_) {
    ring_.push_back(std::move(slot));
  } else {
    if (ring_[next_].request != nullptr) ++evicted_;
    ring_[next_] = std::move(slot);  // The old record is freed here, under the lock, cheaply.
  }
  next_ = (next_ + 1) % capacity_;
  size_ = std::min(size_ + 1, capacity_);
  return shared;
}

void RequestLog::Finish(uint64_t seq, absl::string_view endpoint, Outcome outcome, int status,
                        bool rate_limited) {
  absl::MutexLock lock(&mu_);
  auto it = stats_.by_endpoint.find(std::string(endpoint));
  if (it == stats_.by_endpoint.end()) {
    stats_.by_endpoint.emplace(std::string(endpoint), 1);
  } else {
    ++it->second;
  }
  if (status != 0) ++stats_.by_status[status];
  if (rate_limited) ++stats_.rate_limited;
  switch (outcome) {
    case Outcome::kInjectedError:
      ++stats_.injected_errors;
      break;
    case Outcome::kDropped:
      ++stats_.dropped;
      break;
    case Outcome::kHung:
      ++stats_.hung;
      break;
    default:
      break;
  }
  // The slot of `seq`, if it is still retained.
  if (capacity_ == 0 || seq == 0 || seq > last_seq_ || last_seq_ - seq >= size_) return;
  const size_t back = static_cast<size_t>(last_seq_ - seq) + 1;  // 1 = the newest record.
  Slot& slot = ring_[(next_ + capacity_ - back) % capacity_];
  if (slot.request == nullptr || slot.request->seq != seq) return;
  slot.status = status;
  slot.outcome = outcome;
}

std::vector<RecordedRequest> RequestLog::Requests(size_t limit) const {
  absl::MutexLock lock(&mu_);
  const size_t n = limit > 0 ? std::min(limit, size_) : size_;
  std::vector<RecordedRequest> out;
  out.reserve(n);
  for (size_t back = n; back >= 1; --back) {
    const Slot& slot = ring_[(next_ + capacity_ - back) % capacity_];
    RecordedRequest copy = *slot.request;
    copy.response_status = slot.status;
    copy.outcome = slot.outcome;
    out.push_back(std::move(copy));
  }
  return out;
}

void RequestLog::Clear() {
  absl::MutexLock lock(&mu_);
  ring_.clear();
  next_ = 0;
  size_ = 0;
  evicted_ = 0;
}

int64_t RequestLog::Evicted() const {
  absl::MutexLock lock(&mu_);
  return evicted_;
}

EmulatorStats RequestLog::Stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void RequestLog::ResetStats() {
  absl::MutexLock lock(&mu_);
  stats_ = EmulatorStats();
}

}  // namespace userpilot::gateway::testing
