#include "service/ratelimit/budgets.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace userpilot::gateway {
namespace {

std::vector<const BudgetOptions*> AllBudgets(const RateLimitOptions& options) {
  return {&options.identify, &options.track, &options.deletes, &options.job_reads};
}

// The spec a source enforces: the window widened by the margin, and the pace's timer slack.
RateSpec WithMargin(RateSpec spec, absl::Duration margin) {
  spec.window += margin;
  spec.tolerance = std::min(kPacingSlack, spec.interval() / 4);
  return spec;
}

}  // namespace

absl::Status RateLimitOptions::Validate() const {
  for (const BudgetOptions* budget : AllBudgets(*this)) {
    if (absl::Status status = LocalTokenSource::Validate(budget->rate); !status.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("rate limiting: ", status.message()));
    }
    if (budget->max_queue < 1) {
      return absl::InvalidArgumentError(absl::StrCat("rate limiting: budget '", budget->rate.name,
                                                     "': max_queue must be at least 1"));
    }
  }
  if (spacing_margin < absl::ZeroDuration() || spacing_margin == absl::InfiniteDuration()) {
    return absl::InvalidArgumentError(
        "rate limiting: spacing_margin must be finite and not negative");
  }
  if (absl::Status status = job_lanes.Validate(); !status.ok()) return status;
  FairLimiterOptions shared = limiter;
  shared.max_queue = 1;  // Ignored here; each budget's is checked above.
  return shared.Validate();
}

TokenSourceFactory LocalTokenSources() {
  return [](const RateSpec& spec) { return std::make_unique<LocalTokenSource>(spec); };
}

std::vector<std::shared_ptr<FairLimiter>> Budgets::All() const {
  return {identify, track, deletes, job_reads};
}

void Budgets::Shutdown() const {
  for (const auto& budget : All()) {
    if (budget != nullptr) budget->Shutdown();
  }
}

absl::StatusOr<Budgets> MakeBudgets(const RateLimitOptions& options, Scheduler& scheduler,
                                    TokenSourceFactory source_factory, BudgetObserver* observer,
                                    Logger* logger) {
  if (absl::Status status = options.Validate(); !status.ok()) return status;
  if (source_factory == nullptr) source_factory = LocalTokenSources();
  absl::Status failure;
  auto make = [&](const BudgetOptions& budget) -> std::shared_ptr<FairLimiter> {
    std::unique_ptr<TokenSource> source =
        source_factory(WithMargin(budget.rate, options.spacing_margin));
    if (source == nullptr) {
      failure = absl::InternalError(
          absl::StrCat("rate limiting: no token source for budget '", budget.rate.name, "'"));
      return nullptr;
    }
    FairLimiterOptions limiter = options.limiter;
    limiter.max_queue = budget.max_queue;
    if (observer != nullptr) limiter.observer = observer;
    if (logger != nullptr) limiter.logger = logger;
    return std::make_shared<FairLimiter>(std::move(source), scheduler, std::move(limiter));
  };
  Budgets budgets;
  budgets.identify = make(options.identify);
  budgets.track = make(options.track);
  budgets.deletes = make(options.deletes);
  budgets.job_reads = make(options.job_reads);
  if (!failure.ok()) return failure;
  return budgets;
}

}  // namespace userpilot::gateway
