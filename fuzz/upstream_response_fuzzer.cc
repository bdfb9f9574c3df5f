// Fuzz target: reading Userpilot's answers (upstream/json_mapping.h: RapidJSON's bounded
// reader behind ParseJob, ParseJobList, ParseResponse and ParseErrorBody). Whatever Userpilot,
// or a proxy in front of it, sends is untrusted input.
//
// Input: the first byte picks the parser (its value mod 4: a job, a job list, a job as
// ParseResponse takes it, an error body); the rest is the HTTP body.
//
// Properties, besides the sanitizers':
//  - a job or job list is either read or INVALID_ARGUMENT, never another code;
//  - everything read is valid UTF-8 in every string field (the Job goes back to the caller as
//    proto3, whose strings must be UTF-8, and a client's parser refuses them otherwise),
//    raw_status maps to the status ParseJobStatus gives, and every Timestamp is within
//    Timestamp's range;
//  - the Job or list serializes and parses back unchanged;
//  - an error body never fails, and each of its parts is valid UTF-8.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "fuzz/fuzz_check.h"
#include "google/protobuf/util/message_differencer.h"
#include "service/upstream/json_mapping.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {
namespace {

void CheckJob(const v1::Job& job) {
  for (const std::string* text :
       {&job.job_id(), &job.raw_status(), &job.type(), &job.filename(), &job.start_time(),
        &job.end_time(), &job.links(), &job.submitted_at()}) {
    FUZZ_CHECK(fuzz::IsUtf8(*text), "a Job string field is not UTF-8");
  }
  FUZZ_CHECK(ParseJobStatus(job.raw_status()) == job.status(), "status is not raw_status's");
  // Timestamp's range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
  for (const google::protobuf::Timestamp* t :
       {&job.start_timestamp(), &job.end_timestamp(), &job.submitted_timestamp()}) {
    FUZZ_CHECK(t->seconds() >= -62135596800 && t->seconds() <= 253402300799 && t->nanos() >= 0 &&
                   t->nanos() < 1000000000,
               "a Timestamp out of range: " + t->ShortDebugString());
  }
  std::string wire;
  FUZZ_CHECK(job.SerializeToString(&wire), "Job does not serialize");
  v1::Job back;
  FUZZ_CHECK(back.ParseFromString(wire), "Job does not parse back");
  FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(job, back), "Job round trip");
}

void CheckRefusal(const absl::Status& status, absl::string_view what) {
  FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument,
             std::string(what) + ": " + status.ToString());
}

}  // namespace
}  // namespace userpilot::gateway

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace userpilot::gateway;  // NOLINT(build/namespaces): one entry point.
  if (size == 0) return 0;
  const absl::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      absl::StatusOr<v1::Job> job = ParseJob(body);
      if (job.ok()) {
        CheckJob(*job);
      } else {
        CheckRefusal(job.status(), "ParseJob");
      }
      break;
    }
    case 1: {
      absl::StatusOr<v1::ListJobsResponse> list = ParseJobList(body);
      if (!list.ok()) {
        CheckRefusal(list.status(), "ParseJobList");
        break;
      }
      for (const v1::Job& job : list->jobs()) CheckJob(job);
      break;
    }
    case 2: {
      v1::Job job;
      absl::Status status = ParseResponse(body, "req-1", &job);
      if (status.ok()) {
        FUZZ_CHECK(!job.job_id().empty() || !job.raw_status().empty(), "{} taken for a job");
        CheckJob(job);
      } else {
        CheckRefusal(status, "ParseResponse");
      }
      break;
    }
    default:
      for (const UpstreamError& e : ParseErrorBody(body)) {
        for (const std::string* text : {&e.error, &e.error_code, &e.message, &e.details}) {
          FUZZ_CHECK(fuzz::IsUtf8(*text), "an error body part is not UTF-8");
        }
      }
      break;
  }
  return 0;
}
