// The one description of every upstream RPC: each row of USERPILOT_UPSTREAM_RPCS names a
// UserpilotStub method, its request and response types, the gateway.proto RPC whose contract
// it serves, the Userpilot endpoint it calls and the budget that endpoint spends. Everything
// else per RPC is derived from this table (style.md 13: one list, many expansions):
//
//   derived                                    where
//   the UserpilotStub interface                userpilot_stub.h (one pure virtual per row)
//   the decorators' methods                    forwarding_stub.h (RpcDispatcher/ForwardingStub:
//                                              every method calls one `Call<Rpc>` template)
//   HTTP method, path and the endpoint label   Route below; HttpUserpilotStub, metrics labels
//   which budget a call spends                 Route::budget; RateLimitedStub, flag help
//   whether a call may be repeated             IdempotencyOf(): the proto's `idempotency_level`
//                                              of the row's gateway.proto RPC, read from the
//                                              descriptors (not restated here); RetryingStub
//   names in messages, metrics and --help      Rpc::kName, AllRpcs()
//   the mock                                   tests/mocks/mock_userpilot_stub.h
//
// Adding an RPC: its proto (with `option idempotency_level` when it may be repeated), a row
// here, its validation (service/validation), its HTTP form (upstream/json_mapping: request
// body, path parameter, response parsing) and its gRPC handler (server/gateway_service), plus
// their tests. Nothing else names it.
//
// Columns:
//   Name      the UserpilotStub method, and the prefix of its trait struct (`NameRpc`)
//   Request   the request type (a gateway.proto message, or ImportFileRequest)
//   Response  the response type
//   Proto     the gateway.proto RPC whose idempotency_level applies (usually Name itself;
//             ImportFile serves ImportData)
//   Http      the HTTP method, as a bare word (POST, GET, DELETE)
//   Path      the path template; at most one `{parameter}`, which json_mapping's
//             HttpFormOf(request).path_parameter fills (percent-encoded as one segment)
//   Budget    the BudgetId the endpoint spends (Userpilot's limits are per endpoint)
//
// A row has one route. An RPC whose endpoint depends on the request says so with a Routing<>
// specialization below (ImportFile: the bulk targets go to the bulk identify endpoints, and
// spend their budget, because Userpilot counts them there).
//
// The one upstream endpoint that is not an RPC, the key check's, is described once below the
// table (KeyCheckEndpoint); nothing else names it either.
//
// Thread-safety: constants and pure functions; IdempotencyOf() reads the (immutable) generated
// descriptor pool once, thread-safely.
#ifndef USERPILOT_GATEWAY_SERVICE_UPSTREAM_UPSTREAM_RPCS_H_
#define USERPILOT_GATEWAY_SERVICE_UPSTREAM_UPSTREAM_RPCS_H_

#include <cstddef>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "service/upstream/import_file_request.h"
#include "userpilot/gateway/v1/gateway.pb.h"

// clang-format off
//  Name                   Request                           Response                     Proto                  Http    Path                            Budget
#define USERPILOT_UPSTREAM_RPCS(X)                                                                                                                                  \
  X(IdentifyUser,          v1::IdentifyUserRequest,          v1::IdentifyUserResponse,    IdentifyUser,          POST,   "/v1/identify",                 kIdentify) \
  X(IdentifyCompany,       v1::IdentifyCompanyRequest,       v1::IdentifyCompanyResponse, IdentifyCompany,       POST,   "/v1/companies/identify",       kIdentify) \
  X(BulkIdentifyUsers,     v1::BulkIdentifyUsersRequest,     v1::Job,                     BulkIdentifyUsers,     POST,   "/v1/users/bulk_identify",      kBulk)     \
  X(BulkIdentifyCompanies, v1::BulkIdentifyCompaniesRequest, v1::Job,                     BulkIdentifyCompanies, POST,   "/v1/companies/bulk_identify",  kBulk)     \
  X(TrackEvent,            v1::TrackEventRequest,            v1::TrackEventResponse,      TrackEvent,            POST,   "/v1/track",                    kTrack)    \
  X(ListJobs,              v1::ListJobsRequest,              v1::ListJobsResponse,        ListJobs,              GET,    "/v1/background_jobs",          kJobRead)  \
  X(GetJob,                v1::GetJobRequest,                v1::Job,                     GetJob,                GET,    "/v1/background_jobs/{job_id}", kJobRead)  \
  X(DeleteUsers,           v1::DeleteUsersRequest,           v1::DeleteUsersResponse,     DeleteUsers,           DELETE, "/v1/users",                    kDelete)   \
  X(DeleteCompanies,       v1::DeleteCompaniesRequest,       v1::DeleteCompaniesResponse, DeleteCompanies,       DELETE, "/v1/companies",                kDelete)   \
  X(ImportFile,            ImportFileRequest,                v1::Job,                     ImportData,            POST,   "/v1/imports",                  kImports)
// clang-format on

namespace userpilot::gateway {

// The gateway's upstream budgets, one per Userpilot limit (ratelimit/budgets.h holds their
// rates and limiters).
enum class BudgetId { kIdentify, kTrack, kDelete, kJobRead, kBulk, kImports };
inline constexpr size_t kBudgetCount = 6;
// The budget's name in configuration, metrics and errors: "identify", "track", "delete",
// "job_read", "bulk", "imports".
absl::string_view BudgetName(BudgetId budget);

// Where one call goes upstream.
struct Route {
  absl::string_view method;    // "POST"
  absl::string_view path;      // "/v1/background_jobs/{job_id}"
  absl::string_view endpoint;  // "GET /v1/background_jobs/{job_id}": metric label, messages
  BudgetId budget;
};

// One value per row, in table order.
enum class RpcId {
#define UPGW_RPC_ID(Name, ...) k##Name,
  USERPILOT_UPSTREAM_RPCS(UPGW_RPC_ID)
#undef UPGW_RPC_ID
};

// One trait struct per row, `IdentifyUserRpc` and so on: the row's facts as types and
// constants, for templates (`Call<Rpc>`).
#define UPGW_RPC_TRAITS(Name, RequestType, ResponseType, Proto, Http, Path, Budget)  \
  struct Name##Rpc {                                                                 \
    using Request = RequestType;                                                     \
    using Response = ResponseType;                                                   \
    static constexpr RpcId kId = RpcId::k##Name;                                     \
    static constexpr absl::string_view kName = #Name;                                \
    static constexpr absl::string_view kProtoMethod = #Proto;                        \
    static constexpr Route kRoute = {#Http, Path, #Http " " Path, BudgetId::Budget}; \
  };
USERPILOT_UPSTREAM_RPCS(UPGW_RPC_TRAITS)
#undef UPGW_RPC_TRAITS

// Which of its routes a request takes: the row's own, for every RPC but those specialized
// below. `kRoutes` lists every route the RPC may take (for metrics and --help).
template <typename Rpc>
struct Routing {
  static constexpr Route kRoutes[] = {Rpc::kRoute};
  static const Route& For(const typename Rpc::Request&) { return kRoutes[0]; }
};

// ImportFile: a historical import (and an unset target, which the HTTP layer refuses without
// sending) goes to its own row's route; a bulk file goes to the endpoint of the bulk identify
// it performs, and spends that endpoint's budget.
template <>
struct Routing<ImportFileRpc> {
  static constexpr Route kRoutes[] = {ImportFileRpc::kRoute, BulkIdentifyUsersRpc::kRoute,
                                      BulkIdentifyCompaniesRpc::kRoute};
  static const Route& For(const ImportFileRequest& request) {
    switch (request.target) {
      case v1::IMPORT_TARGET_USERS_BULK:
        return kRoutes[1];
      case v1::IMPORT_TARGET_COMPANIES_BULK:
        return kRoutes[2];
      default:
        return kRoutes[0];
    }
  }
};

// The key check's endpoint (upstream/key_checker.h), the one upstream endpoint that is not an
// RPC: `GET /v1/validate`, what Segment's Userpilot destination tests a key with. No body is
// sent, and the answer's body is not read (its status alone is the verdict). It has no budget:
// Userpilot documents no limit for it (the API notes' limits table names identify, track,
// bulk, imports and delete), and the gateway sends it once every --key_check_interval.
struct KeyCheckEndpoint {
  static constexpr absl::string_view kMethod = "GET";
  static constexpr absl::string_view kPath = "/v1/validate";
  // The metrics' `endpoint` label and the name in messages.
  static constexpr absl::string_view kEndpoint = "GET /v1/validate";
};

// The row of an RPC, as data.
struct RpcInfo {
  RpcId id;
  absl::string_view name;          // "IdentifyUser"
  absl::string_view proto_method;  // "IdentifyUser"; "ImportData" for ImportFile
  absl::Span<const Route> routes;  // Routing<Rpc>::kRoutes
};

// Every row, in table order.
absl::Span<const RpcInfo> AllRpcs();
const RpcInfo& RpcInfoOf(RpcId id);

// Every distinct endpoint label of every route, in table order (the metrics' `endpoint`
// values).
absl::Span<const absl::string_view> AllEndpoints();

// Whether a call may be sent again: google.protobuf.MethodOptions.IdempotencyLevel of the
// row's gateway.proto RPC.
enum class Idempotency {
  kDefault,        // IDEMPOTENCY_UNKNOWN (no option): every request that reaches Userpilot
                   // may have an effect; repeat only when it certainly never did, or when
                   // Userpilot refused it with 429.
  kNoSideEffects,  // NO_SIDE_EFFECTS: a read; may be repeated.
  kIdempotent,     // IDEMPOTENT: repeating leaves the same state; may be repeated.
};
// True for kNoSideEffects and kIdempotent.
inline bool MayRepeat(Idempotency idempotency) { return idempotency != Idempotency::kDefault; }

// The level declared in gateway.proto for `id`'s RPC. Read from the descriptors once; aborts
// the process if a row names an RPC that gateway.proto does not declare (a test checks every
// row).
Idempotency IdempotencyOf(RpcId id);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_UPSTREAM_UPSTREAM_RPCS_H_
