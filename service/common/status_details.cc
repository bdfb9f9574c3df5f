#include "service/common/status_details.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/duration.pb.h"

namespace userpilot::gateway {
namespace {
constexpr absl::string_view kTypeUrlPrefix = "type.googleapis.com/";
}  // namespace

void SetDetail(absl::Status& status, const google::protobuf::Message& detail) {
  if (status.ok()) return;
  status.SetPayload(absl::StrCat(kTypeUrlPrefix, detail.GetDescriptor()->full_name()),
                    absl::Cord(detail.SerializeAsString()));
}

std::vector<google::protobuf::Any> GetDetails(const absl::Status& status) {
  std::vector<google::protobuf::Any> details;
  status.ForEachPayload([&](absl::string_view type_url, const absl::Cord& payload) {
    if (!absl::StartsWith(type_url, kTypeUrlPrefix)) return;
    google::protobuf::Any any;
    any.set_type_url(std::string(type_url));
    any.set_value(std::string(payload));
    details.push_back(std::move(any));
  });
  std::sort(details.begin(), details.end(),
            [](const auto& a, const auto& b) { return a.type_url() < b.type_url(); });
  return details;
}

absl::Status InvalidArgumentError(const std::vector<FieldViolation>& violations) {
  google::rpc::BadRequest bad_request;
  std::vector<std::string> parts;
  for (const FieldViolation& v : violations) {
    auto* fv = bad_request.add_field_violations();
    fv->set_field(v.field);
    fv->set_description(v.description);
    parts.push_back(absl::StrCat(v.field, ": ", v.description));
  }
  absl::Status status = absl::InvalidArgumentError(
      absl::StrCat("invalid request: ", absl::StrJoin(parts, "; ")));
  SetDetail(status, bad_request);
  return status;
}

google::rpc::ErrorInfo MakeErrorInfo(absl::string_view reason,
                                     std::vector<std::pair<std::string, std::string>> metadata) {
  google::rpc::ErrorInfo info;
  info.set_reason(std::string(reason));
  info.set_domain(std::string(kErrorDomain));
  for (auto& [key, value] : metadata) (*info.mutable_metadata())[key] = std::move(value);
  return info;
}

google::rpc::RetryInfo MakeRetryInfo(absl::Duration delay) {
  google::rpc::RetryInfo info;
  if (delay < absl::ZeroDuration()) delay = absl::ZeroDuration();
  const int64_t nanos = absl::ToInt64Nanoseconds(delay);
  info.mutable_retry_delay()->set_seconds(nanos / 1000000000);
  info.mutable_retry_delay()->set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return info;
}

}  // namespace userpilot::gateway
