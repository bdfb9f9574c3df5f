// DeliveryFrontend: the logic of the delivery RPCs (Enqueue, EnqueueBatch, GetDelivery,
// ListDeadLetters, RedriveDeadLetters) between the gRPC handlers (server/gateway_service.h) and
// a DeliveryStore, without gRPC.
//
// Enqueue validates the call exactly as its synchronous RPC would (enqueued_call.h), before
// anything is stored, then appends it; the answer comes from the store's callback, which runs
// only once the record is durable. A full store answers RESOURCE_EXHAUSTED, a failed one
// UNAVAILABLE: a call is never acknowledged without being stored, and never dropped silently.
// After each acknowledged append, hooks.on_enqueued runs (the dispatcher's wake-up), and every
// append's latency (until durable or refused) goes to hooks.on_append (a metric).
//
// Thread-safety: every method may be called concurrently from any thread; callbacks run on the
// store's threads (or on the calling thread for answers known at once) and must not block.
#ifndef USERPILOT_GATEWAY_SERVICE_DELIVERY_DELIVERY_FRONTEND_H_
#define USERPILOT_GATEWAY_SERVICE_DELIVERY_DELIVERY_FRONTEND_H_

#include <functional>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "service/common/call_result.h"
#include "service/delivery/delivery_store.h"
#include "service/validation/request_validator.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {

// Bounds of the delivery RPCs' repeated fields (gateway.proto states them).
inline constexpr int kMaxEnqueueBatchCalls = 1000;
inline constexpr int kMaxDeadLetterPage = 1000;
inline constexpr int kDefaultDeadLetterPage = 100;
inline constexpr int kMaxRedriveIds = 1000;

// The Delivery message of a store record.
v1::Delivery ToDeliveryProto(const DeliveryInfo& info);

// Every member may be empty; each must be thread-safe and short.
struct DeliveryFrontendHooks {
  std::function<void()> on_enqueued;
  std::function<void(absl::Duration latency)> on_append;
};

class DeliveryFrontend {
 public:
  template <typename T>
  using Done = absl::AnyInvocable<void(Result<T>) &&>;

  // `store` and `validator` must outlive the frontend and every call it started.
  DeliveryFrontend(DeliveryStore& store, const RequestValidator& validator,
                   DeliveryFrontendHooks hooks = {});

  void Enqueue(const v1::EnqueueRequest& request, Done<v1::EnqueueResponse> done);
  void EnqueueBatch(const v1::EnqueueBatchRequest& request, Done<v1::EnqueueBatchResponse> done);
  void GetDelivery(const v1::GetDeliveryRequest& request, Done<v1::GetDeliveryResponse> done);
  void ListDeadLetters(const v1::ListDeadLettersRequest& request,
                       Done<v1::ListDeadLettersResponse> done);
  void RedriveDeadLetters(const v1::RedriveDeadLettersRequest& request,
                          Done<v1::RedriveDeadLettersResponse> done);

 private:
  // Appends `delivery`, reporting its latency; `done` as DeliveryStore::Append's.
  void Append(NewDelivery delivery, DeliveryStore::AppendCallback done);

  DeliveryStore& store_;
  const RequestValidator& validator_;
  const DeliveryFrontendHooks hooks_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_DELIVERY_DELIVERY_FRONTEND_H_
