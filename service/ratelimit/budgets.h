// The gateway's upstream budgets, one FairLimiter per Userpilot limit, and their options.
// Which calls spend which budget is the Budget column of upstream/upstream_rpcs.h (BudgetId);
// the defaults here are Userpilot's documented limits:
//
//   budget     default (Userpilot's documented limit)
//   identify   600 / 1 min (user and company identify share it: Userpilot does not say company
//              identify is separate)
//   track      600 / 1 min
//   delete     1 / 2 s ("one request every 2 seconds")
//   job_read   120 / 1 min (Userpilot documents none; a guard, so pollers cannot flood)
//
// BudgetId::kBulk and kImports have no budget here: Userpilot documents no rate for them, only
// one bulk identify job (users or companies) and one import job at a time, which the job lanes
// keep (job_lane.h). Budgets::For gives null for them, and RateLimitedStub lets them through.
//
// Each budget admits by ExactWindow's rule (exact_window.h): at most `limit` requests in any
// window, a burst that fits the window goes at once, calls that wait are paced at
// window / limit.
//
// spacing_margin: each budget enforces `limit` per (window + spacing_margin), so admissions
// keep at least `spacing_margin` of slack against network jitter between the gateway and
// Userpilot's window (two requests sent exactly one window apart can arrive less than a window
// apart). 100 ms costs 0.17% of a 600/min budget and 5% of the delete budget. Tests with
// scaled-down windows (say 20 per second) should lower it (to a few ms) or utilisation drops.
// The pace's timer slack (RateSpec::tolerance) is kPacingSlack, at most a quarter of the pace:
// it lets a late timer keep the schedule and never loosens the window.
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
#include "service/ratelimit/rate_limit_options.h"
#include "service/ratelimit/token_source.h"
#include "service/upstream/upstream_rpcs.h"

namespace userpilot::gateway {

// Makes the TokenSource of one budget; `spec` already includes spacing_margin in its window.
using TokenSourceFactory = std::function<std::unique_ptr<TokenSource>(const RateSpec& spec)>;

// In-process sources (one replica): LocalTokenSource.
TokenSourceFactory LocalTokenSources();

// The four limiters. Shared so that RateLimitedStub's in-flight completions can report to a
// budget without outliving it (they hold weak references).
struct Budgets {
  std::shared_ptr<FairLimiter> identify;
  std::shared_ptr<FairLimiter> track;
  std::shared_ptr<FairLimiter> deletes;
  std::shared_ptr<FairLimiter> job_reads;

  // All four, in the order above (for metrics).
  std::vector<std::shared_ptr<FairLimiter>> All() const;
  // The limiter of `budget` (upstream_rpcs.h names each call's); null for kBulk and kImports,
  // which are job lanes, not rates.
  const std::shared_ptr<FairLimiter>& For(BudgetId budget) const {
    static const std::shared_ptr<FairLimiter> kNone;
    switch (budget) {
      case BudgetId::kIdentify:
        return identify;
      case BudgetId::kTrack:
        return track;
      case BudgetId::kDelete:
        return deletes;
      case BudgetId::kJobRead:
        return job_reads;
      case BudgetId::kBulk:
      case BudgetId::kImports:
        break;
    }
    return kNone;
  }
  // Shuts every budget down: waiting calls are answered UNAVAILABLE ("gateway shutting down").
  void Shutdown() const;
};

// Builds the budgets on `scheduler` (which must outlive them) with sources from
// `source_factory` (LocalTokenSources() when null). `observer`, when not null, is told of every
// budget's admissions and refusals (FairLimiterOptions::observer; it replaces any observer in
// options.limiter) and must outlive the budgets: the composition root passes BudgetMetrics.
// `logger`, when not null, gets the budgets' warnings (a capped upstream pause; it replaces
// options.limiter.logger) and must outlive them.
// InvalidArgument for invalid options, or Internal when the factory returns null.
absl::StatusOr<Budgets> MakeBudgets(const RateLimitOptions& options, Scheduler& scheduler,
                                    TokenSourceFactory source_factory = nullptr,
                                    BudgetObserver* observer = nullptr, Logger* logger = nullptr);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RATELIMIT_BUDGETS_H_
