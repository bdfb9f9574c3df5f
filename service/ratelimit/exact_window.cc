#include "service/ratelimit/exact_window.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace userpilot::gateway {
namespace {

// Invariants are CHECKed (style.md): a violated one is a programming error, not input.
void Require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "ExactWindow: invariant violated: %s\n", what);
  std::abort();
}

}  // namespace

absl::Duration ExactWindow::IntervalFor(absl::Duration window, int64_t limit) {
  Require(window > absl::ZeroDuration() && window < absl::InfiniteDuration(), "0 < window < inf");
  Require(limit >= 1, "limit >= 1");
  absl::Duration interval = window / limit;  // Truncates to absl's resolution (1/4 ns).
  // Round up: `limit` paced grants must span at least the window.
  while (interval * limit < window) interval += absl::Nanoseconds(1);
  return interval;
}

ExactWindow::ExactWindow(int64_t limit, absl::Duration window, absl::Duration slack)
    : limit_(limit), window_(window), interval_(IntervalFor(window, limit)), slack_(slack) {
  Require(slack >= absl::ZeroDuration() && slack < absl::InfiniteDuration(), "0 <= slack < inf");
}

size_t ExactWindow::FirstInWindow(absl::Time t) const {
  return static_cast<size_t>(std::upper_bound(sends_.begin(), sends_.end(), t - window_) -
                             sends_.begin());
}

TakeResult ExactWindow::Take(absl::Time now, TakeKind kind) {
  // Decide at the time the grant would be recorded, so recorded times never go backwards.
  const absl::Time at = std::max(now, last_send_);
  while (!sends_.empty() && sends_.front() <= at - window_) sends_.pop_front();
  if (kind == TakeKind::kImmediate) {
    // Credit: whole intervals in which nobody asked, at most limit - 1.
    const absl::Duration idle =
        last_ask_ == absl::InfinitePast() ? absl::InfiniteDuration() : at - last_ask_;
    if (idle >= interval_ * (limit_ - 1)) {
      credit_ = limit_ - 1;
    } else {
      absl::Duration remainder;
      credit_ = std::max<int64_t>(0, absl::IDivDuration(idle, interval_, &remainder));
    }
  }
  last_ask_ = std::max(last_ask_, at);

  absl::Time blocked = absl::InfinitePast();
  if (static_cast<int64_t>(sends_.size()) >= limit_) blocked = sends_.front() + window_;
  bool credit_funded = false;
  if (kind == TakeKind::kPaced && at < next_paced_ - slack_) {
    if (credit_ > 0) {
      credit_funded = true;
    } else {
      blocked = std::max(blocked, next_paced_ - slack_);
    }
  }
  TakeResult result;
  if (at < blocked) {
    result.retry_at = blocked;
    return result;
  }
  sends_.push_back(at);
  last_send_ = at;
  if (kind == TakeKind::kPaced) {
    if (credit_funded) {
      --credit_;
    } else {
      next_paced_ = std::max(next_paced_, at) + interval_;
    }
  }
  result.granted = 1;
  // When one more of the same kind could go.
  absl::Time next = absl::InfinitePast();
  if (static_cast<int64_t>(sends_.size()) >= limit_) next = sends_.front() + window_;
  if (kind == TakeKind::kPaced && credit_ == 0) next = std::max(next, next_paced_ - slack_);
  result.retry_at = next > at ? next : absl::InfinitePast();
  return result;
}

int64_t ExactWindow::Room(absl::Time now) const {
  const absl::Time at = std::max(now, last_send_);
  return limit_ - static_cast<int64_t>(sends_.size() - FirstInWindow(at));
}

void ExactWindow::Plan(absl::Time now, int64_t count, absl::Time start, absl::Duration min_spacing,
                       std::vector<absl::Time>* times) const {
  times->clear();
  if (count <= 0) return;
  times->reserve(static_cast<size_t>(count));
  const absl::Time at = std::max(now, last_send_);
  const size_t first = FirstInWindow(at);
  const int64_t in_window = static_cast<int64_t>(sends_.size() - first);
  const int64_t room = limit_ - in_window;
  absl::Time next = next_paced_;
  int64_t credit = credit_;
  absl::Time previous = absl::InfinitePast();
  for (int64_t j = 1; j <= count; ++j) {
    absl::Time t = std::max(start, at);
    if (previous != absl::InfinitePast()) t = std::max({t, previous, previous + min_spacing});
    // The window: the (j - room)-th oldest of the sends in it, then of the planned ones, must
    // have left it.
    const int64_t leaving = j - room;
    if (leaving >= 1) {
      const absl::Time sent = leaving <= in_window
                                  ? sends_[first + static_cast<size_t>(leaving - 1)]
                                  : (*times)[static_cast<size_t>(leaving - in_window - 1)];
      t = std::max(t, sent + window_);
    }
    // The pace, or the credit (as Take(kPaced) decides).
    if (t < next - slack_ && credit > 0) {
      --credit;
    } else {
      t = std::max(t, next - slack_);
      next = std::max(next, t) + interval_;
    }
    times->push_back(t);
    previous = t;
  }
}

}  // namespace userpilot::gateway
