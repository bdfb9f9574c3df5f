#include "bench/loadgen/request_mix.h"

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace userpilot::gateway::bench {
namespace {

// Ids cycle through a fixed population, like a service that keeps updating its users.
std::string UserId(uint64_t seq) { return absl::StrCat("bench-user-", seq % 10000); }
std::string CompanyId(uint64_t seq) { return absl::StrCat("bench-company-", seq % 100); }

}  // namespace

const char* OpName(Op op) {
  switch (op) {
    case Op::kIdentify:
      return "identify";
    case Op::kIdentifyCompany:
      return "identify_company";
    case Op::kTrack:
      return "track";
    case Op::kRefused:
      return "refused";
  }
  return "?";
}

absl::StatusOr<RequestMix> RequestMix::Parse(const std::string& spec) {
  RequestMix mix;
  for (absl::string_view part : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, '=');
    Op op;
    if (kv.first == "identify") {
      op = Op::kIdentify;
    } else if (kv.first == "identify_company") {
      op = Op::kIdentifyCompany;
    } else if (kv.first == "track") {
      op = Op::kTrack;
    } else if (kv.first == "refused") {
      op = Op::kRefused;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("--mix: unknown op '", kv.first, "'"));
    }
    int weight = 1;
    if (!kv.second.empty() &&
        (!absl::SimpleAtoi(kv.second, &weight) || weight < 0 || weight > 100)) {
      return absl::InvalidArgumentError(absl::StrCat("--mix: bad weight in '", part, "'"));
    }
    if (weight == 0) continue;
    mix.ops_.push_back(op);
    mix.weights_.push_back(weight);
  }
  if (mix.ops_.empty()) return absl::InvalidArgumentError("--mix names no op with a weight");
  // Interleave rather than block: identify=2,track=1 -> identify, track, identify.
  int max_weight = 0;
  for (int w : mix.weights_) max_weight = std::max(max_weight, w);
  for (int round = 0; round < max_weight; ++round) {
    for (size_t i = 0; i < mix.ops_.size(); ++i) {
      if (round < mix.weights_[i]) mix.pattern_.push_back(mix.ops_[i]);
    }
  }
  return mix;
}

std::string RequestMix::ToString() const {
  std::vector<std::string> parts;
  for (size_t i = 0; i < ops_.size(); ++i)
    parts.push_back(absl::StrCat(OpName(ops_[i]), "=", weights_[i]));
  return absl::StrJoin(parts, ",");
}

void RequestMix::Fill(uint64_t seq, v1::IdentifyUserRequest* request) {
  request->set_user_id(UserId(seq));
  auto& fields = *request->mutable_metadata()->mutable_fields();
  fields["plan"].set_string_value("pro");
  fields["seats"].set_number_value(3);
  fields["trial"].set_bool_value(false);
  request->mutable_company()->set_company_id(CompanyId(seq));
  (*request->mutable_company()->mutable_metadata()->mutable_fields())["tier"].set_string_value("b");
}

void RequestMix::Fill(uint64_t seq, v1::IdentifyCompanyRequest* request) {
  request->set_company_id(CompanyId(seq));
  auto& fields = *request->mutable_metadata()->mutable_fields();
  fields["tier"].set_string_value("b");
  fields["employees"].set_number_value(120);
}

void RequestMix::Fill(uint64_t seq, v1::TrackEventRequest* request) {
  request->set_user_id(UserId(seq));
  request->set_event_name("bench_event");
  auto& fields = *request->mutable_metadata()->mutable_fields();
  fields["source"].set_string_value("bench");
  fields["value"].set_number_value(42);
}

const char* RequestMix::RestPath(Op op) {
  switch (op) {
    case Op::kIdentify:
    case Op::kRefused:
      return "/v1/identify";
    case Op::kIdentifyCompany:
      return "/v1/companies/identify";
    case Op::kTrack:
      return "/v1/track";
  }
  return "/";
}

std::string RequestMix::RestBody(Op op, uint64_t seq) {
  switch (op) {
    case Op::kIdentify:
      return absl::StrCat("{\"user_id\":\"", UserId(seq),
                          "\",\"metadata\":{\"plan\":\"pro\",\"seats\":3,\"trial\":false},"
                          "\"company\":{\"company_id\":\"",
                          CompanyId(seq), "\",\"tier\":\"b\"}}");
    case Op::kIdentifyCompany:
      return absl::StrCat("{\"company_id\":\"", CompanyId(seq),
                          "\",\"metadata\":{\"tier\":\"b\",\"employees\":120}}");
    case Op::kTrack:
      return absl::StrCat("{\"user_id\":\"", UserId(seq),
                          "\",\"event_name\":\"bench_event\",\"metadata\":{\"source\":\"bench\","
                          "\"value\":42}}");
    case Op::kRefused:
      return "{\"metadata\":{\"plan\":\"pro\"}}";
  }
  return "{}";
}

}  // namespace userpilot::gateway::bench
