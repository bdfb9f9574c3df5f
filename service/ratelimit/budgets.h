// The gateway's upstream budgets, one FairLimiter per Userpilot limit, and their options.
//
//   budget     methods                                  default (Userpilot's documented limit)
//   identify   IdentifyUser, IdentifyCompany            600 / 1 min (shared: Userpilot does not
//                                                       say company identify is separate)
//   track      TrackEvent                               600 / 1 min
//   delete     DeleteUsers, DeleteCompanies             1 / 2 s ("one request every 2 seconds")
//   job_read   GetJob, ListJobs                         120 / 1 min (Userpilot documents none;
//                                                       a guard, so pollers cannot flood)
//   bulk       BulkIdentifyUsers, BulkIdentifyCompanies 6 / 1 min (Userpilot runs one bulk job
//                                                       at a time and processes ~1,200 rows a
//                                                       minute; a rate cannot express "one at a
//                                                       time", so this only keeps submissions
//                                                       rare; a second job still gets 409,
//                                                       JOB_IN_PROGRESS, from Userpilot)
//              ImportFile to USERS_BULK / COMPANIES_BULK
//   imports    ImportFile to HISTORICAL_IMPORT          6 / 1 min (Userpilot documents no rate,
//                                                       only one import job at a time (409);
//                                                       same reasoning as bulk)
//
// spacing_margin: each budget enforces `limit` per (window + spacing_margin), so admissions
// keep at least `spacing_margin` of slack against network jitter between the gateway and
// Userpilot's sliding window (two requests sent exactly one window apart can arrive less than a
// window apart). 100 ms costs 0.17% of a 600/min budget and 5% of the delete budget. Tests with
// scaled-down windows (say 20 per second) should lower it (to a few ms) or utilisation drops.
// Part of it, min(spacing_margin / 2, kMaxTimerTolerance), becomes the sources' timer slack
// (RateSpec::tolerance), so late timer wake-ups do not waste budget; the rest stays for the
// network.
//
// Thread-safety: options are values; Budgets holds thread-safe limiters.
#ifndef USERPILOT_GATEWAY_SERVICE_RATELIMIT_BUDGETS_H_
#define USERPILOT_GATEWAY_SERVICE_RATELIMIT_BUDGETS_H_

#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "service/common/scheduler.h"
#include "service/ratelimit/fair_limiter.h"
#include "service/ratelimit/local_token_source.h"
#include "service/ratelimit/token_source.h"

namespace userpilot::gateway {

// The gateway's fairness/feedback defaults: FairLimiterOptions' own, except that a call must be
// admitted at least kDefaultAdmissionHeadroom before its deadline. A call admitted at the very
// end of its deadline would be sent to Userpilot just as its caller gives up: the request
// spends budget and may take effect (a TrackEvent recorded) while the caller sees
// DEADLINE_EXCEEDED from its own timer. 100 ms covers a typical Userpilot answer; a call that
// cannot be admitted that early is refused at once, or answered DEADLINE_EXCEEDED by the gateway
// 100 ms before its deadline, while the caller still listens.
inline constexpr absl::Duration kDefaultAdmissionHeadroom = absl::Milliseconds(100);
inline FairLimiterOptions DefaultBudgetLimiterOptions() {
  FairLimiterOptions options;
  options.admission_headroom = kDefaultAdmissionHeadroom;
  return options;
}

// The most timer slack a budget takes from its spacing margin: above the stalls a loaded 2-core
// host gives a timer thread (usually well under 1 ms, now and then several), far below the
// margin's default, which keeps 90 ms for the network.
inline constexpr absl::Duration kMaxTimerTolerance = absl::Milliseconds(10);

// One budget: its rate and how many calls may wait for it.
struct BudgetOptions {
  RateSpec rate;
  size_t max_queue = 1000;
};

struct RateLimitOptions {
  // Requests per window, and the queue bound. Queue bounds also bound memory: each waiting
  // call holds a copy of its request (a bulk request may be megabytes, hence 4).
  BudgetOptions identify = {{"identify", 600, absl::Minutes(1)}, 1000};
  BudgetOptions track = {{"track", 600, absl::Minutes(1)}, 1000};
  BudgetOptions deletes = {{"delete", 1, absl::Seconds(2)}, 30};
  BudgetOptions job_reads = {{"job_read", 120, absl::Minutes(1)}, 240};
  BudgetOptions bulk = {{"bulk", 6, absl::Minutes(1)}, 4};
  BudgetOptions imports = {{"imports", 6, absl::Minutes(1)}, 4};

  // Slack added to every window (see the file comment); >= 0.
  absl::Duration spacing_margin = absl::Milliseconds(100);

  // Fairness, caller weights and caps, 429 backoff, adaptive rate, admission headroom: the
  // same for every budget. Its max_queue is ignored: each BudgetOptions has its own.
  FairLimiterOptions limiter = DefaultBudgetLimiterOptions();

  // InvalidArgument naming the first bad field.
  absl::Status Validate() const;
};

// Makes the TokenSource of one budget; `spec` already includes spacing_margin in its window.
using TokenSourceFactory = std::function<std::unique_ptr<TokenSource>(const RateSpec& spec)>;

// In-process GCRA sources (one replica). `burst` (default 1: none) is clamped to each budget's
// limit; see local_token_source.h for what a burst costs.
TokenSourceFactory LocalTokenSources(int64_t burst = 1);

// The six limiters. Shared so that RateLimitedStub's in-flight completions can report to a
// budget without outliving it (they hold weak references).
struct Budgets {
  std::shared_ptr<FairLimiter> identify;
  std::shared_ptr<FairLimiter> track;
  std::shared_ptr<FairLimiter> deletes;
  std::shared_ptr<FairLimiter> job_reads;
  std::shared_ptr<FairLimiter> bulk;
  std::shared_ptr<FairLimiter> imports;

  // All six, in the order above (for metrics).
  std::vector<std::shared_ptr<FairLimiter>> All() const;
  // Shuts every budget down: waiting calls are answered UNAVAILABLE ("gateway shutting down").
  void Shutdown() const;
};

// Builds the budgets on `scheduler` (which must outlive them) with sources from
// `source_factory` (LocalTokenSources() when null). `observer`, when not null, is told of every
// budget's admissions and refusals (FairLimiterOptions::observer; it replaces any observer in
// options.limiter) and must outlive the budgets: the composition root passes BudgetMetrics.
// InvalidArgument for invalid options, or Internal when the factory returns null.
absl::StatusOr<Budgets> MakeBudgets(const RateLimitOptions& options, Scheduler& scheduler,
                                    TokenSourceFactory source_factory = nullptr,
                                    BudgetObserver* observer = nullptr);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RATELIMIT_BUDGETS_H_
