// What an Enqueue call carries, read generically: the one upstream RPC of the table
// (upstream/upstream_rpcs.h) whose request type the EnqueueRequest's `call` oneof holds, the
// call's ordering keys, its validation and its record in the DeliveryStore.
//
// Nothing here names an upstream RPC: the oneof's message type is matched against each row's
// request type through the descriptors, so a call type added to the oneof is delivered by the
// row that serves its request, and validated by that request's own Validate() overload (exactly
// as the synchronous RPC validates it).
//
// A stored record: payload = the serialized EnqueueRequest; kind = the oneof's field number
// (stable across versions: the contract never renumbers); ordering keys "user:<user_id>" and
// "company:<company_id>" from the call's top-level `user_id` / `company_id` fields, so calls
// for one user (one company) are delivered one at a time, in the order they were acknowledged.
//
// Thread-safety: pure functions.
#ifndef USERPILOT_GATEWAY_SERVICE_DELIVERY_ENQUEUED_CALL_H_
#define USERPILOT_GATEWAY_SERVICE_DELIVERY_ENQUEUED_CALL_H_

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "service/common/call_result.h"
#include "service/delivery/delivery_store.h"
#include "service/upstream/upstream_rpcs.h"
#include "service/validation/request_validator.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {

// The message the request's `call` oneof holds; null when none is set.
const google::protobuf::Message* EnqueuedMessage(const v1::EnqueueRequest& request);

namespace enqueued_call_internal {
template <typename Rpc, typename F>
void TryRow(const google::protobuf::Message& message, bool& found, F& visit) {
  using Request = typename Rpc::Request;
  if constexpr (std::is_base_of_v<google::protobuf::Message, Request>) {
    if (!found && message.GetDescriptor() == Request::descriptor()) {
      found = true;
      visit(Rpc{}, static_cast<const Request&>(message));
    }
  }
}
}  // namespace enqueued_call_internal

// Calls `visit(Rpc{}, request)` with the trait struct of the upstream RPC whose request type
// the oneof holds, and that request. False (and no call) when the oneof is empty or holds a
// type no row serves. `visit` must accept every row (a generic lambda).
template <typename F>
bool VisitEnqueuedCall(const v1::EnqueueRequest& request, F&& visit) {
  const google::protobuf::Message* message = EnqueuedMessage(request);
  if (message == nullptr) return false;
  bool found = false;
#define UPGW_TRY_ROW(Name, ...) enqueued_call_internal::TryRow<Name##Rpc>(*message, found, visit);
  USERPILOT_UPSTREAM_RPCS(UPGW_TRY_ROW)
#undef UPGW_TRY_ROW
  return found;
}

// The name of the oneof field of `kind` (a record's kind): "identify_user", ...; "unknown" for
// a number the contract does not have.
std::string CallTypeName(uint32_t kind);

// The ordering keys of the call: "user:<user_id>", "company:<company_id>" (each when the call
// has that top-level field, non-empty), each cut to kMaxOrderingKeyBytes.
std::vector<std::string> OrderingKeysOf(const google::protobuf::Message& call);

// Validates `request` as its synchronous RPC would (the validator's overload for the call's
// request type), every violation named from the EnqueueRequest (`track_event.event_name`),
// plus the EnqueueRequest's own fields: the oneof set, idempotency_key at most
// kMaxIdempotencyKeyBytes. `prefix`, when not empty, goes before every path (`calls[2]`).
CallStatus ValidateEnqueueRequest(const RequestValidator& validator,
                                  const v1::EnqueueRequest& request, absl::string_view prefix = "");

// The store record of a validated `request`.
NewDelivery ToNewDelivery(const v1::EnqueueRequest& request);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_DELIVERY_ENQUEUED_CALL_H_
