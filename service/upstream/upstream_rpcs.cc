#include "service/upstream/upstream_rpcs.h"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/algorithm/container.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"

namespace userpilot::gateway {
namespace {

constexpr RpcInfo kRpcs[] = {
#define UPGW_RPC_INFO(Name, ...) \
  {RpcId::k##Name, Name##Rpc::kName, Name##Rpc::kProtoMethod, Routing<Name##Rpc>::kRoutes},
    USERPILOT_UPSTREAM_RPCS(UPGW_RPC_INFO)
#undef UPGW_RPC_INFO
};
constexpr size_t kRpcCount = sizeof(kRpcs) / sizeof(kRpcs[0]);

Idempotency FromProto(google::protobuf::MethodOptions::IdempotencyLevel level) {
  switch (level) {
    case google::protobuf::MethodOptions::NO_SIDE_EFFECTS:
      return Idempotency::kNoSideEffects;
    case google::protobuf::MethodOptions::IDEMPOTENT:
      return Idempotency::kIdempotent;
    default:
      return Idempotency::kDefault;
  }
}

// Each row's level, from the service descriptor of gateway.proto.
std::array<Idempotency, kRpcCount> ReadIdempotency() {
  const google::protobuf::ServiceDescriptor* service =
      v1::Job::descriptor()->file()->FindServiceByName("UserpilotGateway");
  std::array<Idempotency, kRpcCount> levels{};
  for (size_t i = 0; i < kRpcCount; ++i) {
    const std::string method(kRpcs[i].proto_method);
    const google::protobuf::MethodDescriptor* descriptor =
        service == nullptr ? nullptr : service->FindMethodByName(method);
    if (descriptor == nullptr) {
      std::fprintf(stderr, "upstream_rpcs: row %s names RPC %s, which gateway.proto lacks\n",
                   std::string(kRpcs[i].name).c_str(), method.c_str());
      std::abort();
    }
    levels[i] = FromProto(descriptor->options().idempotency_level());
  }
  return levels;
}

}  // namespace

absl::string_view BudgetName(BudgetId budget) {
  switch (budget) {
    case BudgetId::kIdentify:
      return "identify";
    case BudgetId::kTrack:
      return "track";
    case BudgetId::kDelete:
      return "delete";
    case BudgetId::kJobRead:
      return "job_read";
    case BudgetId::kBulk:
      return "bulk";
    case BudgetId::kImports:
      return "imports";
  }
  return "unknown";
}

absl::Span<const RpcInfo> AllRpcs() { return kRpcs; }

const RpcInfo& RpcInfoOf(RpcId id) { return kRpcs[static_cast<size_t>(id)]; }

absl::Span<const absl::string_view> AllEndpoints() {
  static const auto* const kEndpoints = [] {
    auto* endpoints = new std::vector<absl::string_view>();
    for (const RpcInfo& rpc : kRpcs) {
      for (const Route& route : rpc.routes) {
        if (!absl::c_linear_search(*endpoints, route.endpoint)) {
          endpoints->push_back(route.endpoint);
        }
      }
    }
    return endpoints;
  }();
  return *kEndpoints;
}

Idempotency IdempotencyOf(RpcId id) {
  static const std::array<Idempotency, kRpcCount> kLevels = ReadIdempotency();
  return kLevels[static_cast<size_t>(id)];
}

}  // namespace userpilot::gateway
