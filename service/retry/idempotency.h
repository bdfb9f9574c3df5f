// Which Userpilot calls may be sent twice: the idempotency policy of the retry layer.
//
// One of the three separate retry policies (google-cloud-cpp style; see retrying_stub.h): the
// retry policy decides how long to keep trying, the backoff policy how long to wait between
// attempts, and this one whether a failed attempt may be repeated at all when the request may
// have reached Userpilot.
//
//   method                  idempotency      why
//   IdentifyUser            idempotent       sets the user's properties to the sent values
//   IdentifyCompany         idempotent       sets the company's properties to the sent values
//   BulkIdentifyUsers       idempotent       same rows, same end state; a repeat while the first
//   BulkIdentifyCompanies   idempotent         job runs is refused with 409 JOB_IN_PROGRESS
//                                              (FAILED_PRECONDITION, never retried)
//   ListJobs, GetJob        idempotent       reads
//   DeleteUsers             idempotent       deleting twice leaves the same state
//   DeleteCompanies         idempotent
//   TrackEvent              NOT idempotent   every accepted request records one more event;
//                                              Userpilot takes no idempotency key
//   ImportFile              NOT idempotent   every accepted upload starts one more job
//
// Thread-safety: pure functions over values.
#ifndef USERPILOT_GATEWAY_SERVICE_RETRY_IDEMPOTENCY_H_
#define USERPILOT_GATEWAY_SERVICE_RETRY_IDEMPOTENCY_H_

#include "absl/strings/string_view.h"

namespace userpilot::gateway {

// One value per UserpilotStub method.
enum class UpstreamMethod {
  kIdentifyUser,
  kIdentifyCompany,
  kBulkIdentifyUsers,
  kBulkIdentifyCompanies,
  kTrackEvent,
  kListJobs,
  kGetJob,
  kDeleteUsers,
  kDeleteCompanies,
  kImportFile,
};

inline constexpr UpstreamMethod kAllUpstreamMethods[] = {
    UpstreamMethod::kIdentifyUser,
    UpstreamMethod::kIdentifyCompany,
    UpstreamMethod::kBulkIdentifyUsers,
    UpstreamMethod::kBulkIdentifyCompanies,
    UpstreamMethod::kTrackEvent,
    UpstreamMethod::kListJobs,
    UpstreamMethod::kGetJob,
    UpstreamMethod::kDeleteUsers,
    UpstreamMethod::kDeleteCompanies,
    UpstreamMethod::kImportFile,
};

// The method's name as in UserpilotStub ("IdentifyUser"), for messages and metric labels.
absl::string_view UpstreamMethodName(UpstreamMethod method);

enum class Idempotency {
  // Sending the request twice has the same effect as sending it once: retry on any
  // retryable failure.
  kIdempotent,
  // Every request that reaches Userpilot has an effect: retry only when it certainly did not.
  kNonIdempotent,
};

// The table above.
Idempotency DefaultIdempotency(UpstreamMethod method);

// An idempotency policy: a plain function, so a test or a future Userpilot idempotency key can
// substitute its own. Must be thread-safe.
using IdempotencyPolicy = Idempotency (*)(UpstreamMethod method);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_RETRY_IDEMPOTENCY_H_
