#include "service/jobs/watch/job_watch_options.h"

#include "absl/strings/str_cat.h"

namespace userpilot::gateway {

absl::Status JobWatchOptions::Validate() const {
  auto bad = [](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("JobWatchOptions: ", what));
  };
  if (min_poll_interval <= absl::ZeroDuration()) return bad("min_poll_interval must be positive");
  if (max_poll_interval < min_poll_interval || max_poll_interval == absl::InfiniteDuration()) {
    return bad("max_poll_interval must be finite and at least min_poll_interval");
  }
  if (!(poll_interval_growth >= 1.0 && poll_interval_growth <= 100.0)) {
    return bad("poll_interval_growth must be between 1 and 100");
  }
  if (poll_timeout <= absl::ZeroDuration() || poll_timeout == absl::InfiniteDuration()) {
    return bad("poll_timeout must be positive and finite");
  }
  if (unreadable_timeout <= absl::ZeroDuration()) {
    return bad("unreadable_timeout must be positive");
  }
  if (max_subscribers < 1) return bad("max_subscribers must be at least 1");
  if (max_watched_jobs < 1) return bad("max_watched_jobs must be at least 1");
  return absl::OkStatus();
}

}  // namespace userpilot::gateway
