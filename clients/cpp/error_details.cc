#include "clients/cpp/error_details.h"

#include <sstream>

#include "absl/status/status.h"
#include "google/rpc/status.pb.h"

namespace userpilot::gateway::client {

ErrorDetails::ErrorDetails(const grpc::Status& status) {
  if (status.ok() || status.error_details().empty()) return;
  google::rpc::Status decoded;
  if (!decoded.ParseFromString(status.error_details())) {
    malformed_ = true;
    return;
  }
  all_.assign(decoded.details().begin(), decoded.details().end());
  for (const google::protobuf::Any& any : all_) {
    if (any.Is<google::rpc::BadRequest>()) {
      any.UnpackTo(&bad_request_.emplace());
    } else if (any.Is<google::rpc::ErrorInfo>()) {
      any.UnpackTo(&error_info_.emplace());
    } else if (any.Is<google::rpc::RetryInfo>()) {
      any.UnpackTo(&retry_info_.emplace());
    } else if (any.Is<google::rpc::QuotaFailure>()) {
      any.UnpackTo(&quota_failure_.emplace());
    }
  }
}

std::optional<std::chrono::nanoseconds> ErrorDetails::retry_delay() const {
  if (!retry_info_.has_value() || !retry_info_->has_retry_delay()) return std::nullopt;
  const google::protobuf::Duration& d = retry_info_->retry_delay();
  return std::chrono::seconds(d.seconds()) + std::chrono::nanoseconds(d.nanos());
}

std::string ErrorDetails::reason() const {
  return error_info_.has_value() ? error_info_->reason() : std::string();
}

std::string ErrorDetails::metadata(const std::string& key) const {
  if (!error_info_.has_value()) return std::string();
  auto it = error_info_->metadata().find(key);
  return it == error_info_->metadata().end() ? std::string() : it->second;
}

std::string StatusCodeName(grpc::StatusCode code) {
  // gRPC's codes and Abseil's are both google.rpc.Code: Abseil has the names.
  std::string name = absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
  return name.empty() ? "CODE_" + std::to_string(static_cast<int>(code)) : name;
}

std::string ErrorDetails::Describe(const grpc::Status& status) {
  std::ostringstream out;
  out << StatusCodeName(status.error_code()) << ": " << status.error_message();
  ErrorDetails details(status);
  std::ostringstream extra;
  if (const google::rpc::ErrorInfo* info = details.error_info()) {
    extra << " reason=" << info->reason();
    for (const char* key :
         {"endpoint", "http_status", "upstream_request_id", "request_may_have_been_sent"}) {
      auto it = info->metadata().find(key);
      if (it != info->metadata().end()) extra << " " << key << "=" << it->second;
    }
  }
  if (auto delay = details.retry_delay()) {
    extra << " retry_delay="
          << std::chrono::duration_cast<std::chrono::milliseconds>(*delay).count() << "ms";
  }
  if (const google::rpc::BadRequest* bad = details.bad_request()) {
    for (const auto& v : bad->field_violations()) {
      extra << " {" << v.field() << ": " << v.description() << "}";
    }
  }
  if (const google::rpc::QuotaFailure* quota = details.quota_failure()) {
    for (const auto& v : quota->violations()) {
      extra << " quota{" << v.subject() << ": " << v.description() << "}";
    }
  }
  std::string more = extra.str();
  if (!more.empty()) out << " [" << more.substr(1) << "]";
  return out.str();
}

}  // namespace userpilot::gateway::client
