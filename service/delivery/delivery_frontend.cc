#include "service/delivery/delivery_frontend.h"

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"
#include "service/delivery/enqueued_call.h"

namespace userpilot::gateway {
namespace {

google::protobuf::Timestamp ToTimestamp(absl::Time time) {
  return google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(time));
}

v1::DeliveryState ToStateProto(DeliveryState state) {
  switch (state) {
    case DeliveryState::kPending:
      return v1::DELIVERY_STATE_PENDING;
    case DeliveryState::kDelivered:
      return v1::DELIVERY_STATE_DELIVERED;
    case DeliveryState::kDead:
      return v1::DELIVERY_STATE_DEAD;
  }
  return v1::DELIVERY_STATE_UNSPECIFIED;
}

CallStatus Invalid(std::string field, std::string description) {
  return InvalidArgumentError({FieldViolation{std::move(field), std::move(description)}});
}

}  // namespace

v1::Delivery ToDeliveryProto(const DeliveryInfo& info) {
  v1::Delivery out;
  out.set_delivery_id(info.delivery_id);
  out.set_state(ToStateProto(info.state));
  out.set_call_type(CallTypeName(info.kind));
  out.set_attempts(static_cast<int32_t>(info.attempts));
  out.set_last_error(info.last_error);
  if (info.enqueue_time != absl::InfinitePast()) {
    *out.mutable_enqueue_time() = ToTimestamp(info.enqueue_time);
  }
  if (info.finish_time != absl::InfinitePast()) {
    *out.mutable_finish_time() = ToTimestamp(info.finish_time);
  }
  out.set_idempotency_key(info.idempotency_key);
  return out;
}

DeliveryFrontend::DeliveryFrontend(DeliveryStore& store, const RequestValidator& validator,
                                   DeliveryFrontendHooks hooks)
    : store_(store), validator_(validator), hooks_(std::move(hooks)) {}

void DeliveryFrontend::Append(NewDelivery delivery, DeliveryStore::AppendCallback done) {
  if (hooks_.on_append == nullptr) {
    store_.Append(std::move(delivery), std::move(done));
    return;
  }
  store_.Append(std::move(delivery), [this, start = absl::Now(), done = std::move(done)](
                                         absl::StatusOr<AppendResult> appended) mutable {
    hooks_.on_append(absl::Now() - start);
    std::move(done)(std::move(appended));
  });
}

void DeliveryFrontend::Enqueue(const v1::EnqueueRequest& request, Done<v1::EnqueueResponse> done) {
  if (CallStatus valid = ValidateEnqueueRequest(validator_, request); !valid.ok()) {
    std::move(done)(std::move(valid));
    return;
  }
  Append(ToNewDelivery(request),
         [this, done = std::move(done)](absl::StatusOr<AppendResult> appended) mutable {
           if (!appended.ok()) {
             std::move(done)(appended.status());
             return;
           }
           v1::EnqueueResponse response;
           response.set_delivery_id(appended->delivery_id);
           response.set_duplicate(appended->duplicate);
           if (hooks_.on_enqueued != nullptr && !appended->duplicate) hooks_.on_enqueued();
           std::move(done)(std::move(response));
         });
}

void DeliveryFrontend::EnqueueBatch(const v1::EnqueueBatchRequest& request,
                                    Done<v1::EnqueueBatchResponse> done) {
  const int n = request.calls_size();
  if (n < 1 || n > kMaxEnqueueBatchCalls) {
    std::move(done)(Invalid(
        "calls", absl::StrCat("must hold 1 to ", kMaxEnqueueBatchCalls, " calls (got ", n, ")")));
    return;
  }
  // The answer is sent when the last item's append answers; items refused by validation are
  // answered at once. Appends are issued in item order, so items for one user keep it.
  struct Batch {
    std::mutex mu;
    v1::EnqueueBatchResponse response;
    int remaining = 0;
    Done<v1::EnqueueBatchResponse> done;
    bool any_stored = false;
  };
  auto batch = std::make_shared<Batch>();
  batch->done = std::move(done);
  batch->remaining = n + 1;  // +1: held until every append was issued.
  for (int i = 0; i < n; ++i) batch->response.add_outcomes();
  auto finish_one = [this, batch]() {
    Done<v1::EnqueueBatchResponse> done;
    v1::EnqueueBatchResponse response;
    bool wake = false;
    {
      std::lock_guard<std::mutex> lock(batch->mu);
      if (--batch->remaining > 0) return;
      done = std::move(batch->done);
      response = std::move(batch->response);
      wake = batch->any_stored;
    }
    if (wake && hooks_.on_enqueued != nullptr) hooks_.on_enqueued();
    std::move(done)(std::move(response));
  };
  for (int i = 0; i < n; ++i) {
    const v1::EnqueueRequest& call = request.calls(i);
    CallStatus valid = ValidateEnqueueRequest(validator_, call, absl::StrCat("calls[", i, "]"));
    if (!valid.ok()) {
      {
        std::lock_guard<std::mutex> lock(batch->mu);
        v1::EnqueueOutcome& outcome = *batch->response.mutable_outcomes(i);
        outcome.set_code(static_cast<int32_t>(valid.status().code()));
        outcome.set_message(std::string(valid.status().message()));
      }
      finish_one();
      continue;
    }
    Append(ToNewDelivery(call),
           [batch, i, finish_one](absl::StatusOr<AppendResult> appended) mutable {
             {
               std::lock_guard<std::mutex> lock(batch->mu);
               v1::EnqueueOutcome& outcome = *batch->response.mutable_outcomes(i);
               if (appended.ok()) {
                 outcome.set_delivery_id(appended->delivery_id);
                 outcome.set_duplicate(appended->duplicate);
                 if (!appended->duplicate) batch->any_stored = true;
               } else {
                 outcome.set_code(static_cast<int32_t>(appended.status().code()));
                 outcome.set_message(std::string(appended.status().message()));
               }
             }
             finish_one();
           });
  }
  finish_one();
}

void DeliveryFrontend::GetDelivery(const v1::GetDeliveryRequest& request,
                                   Done<v1::GetDeliveryResponse> done) {
  if (request.delivery_id().empty()) {
    std::move(done)(Invalid("delivery_id", "required"));
    return;
  }
  store_.Get(request.delivery_id(),
             [done = std::move(done)](absl::StatusOr<DeliveryInfo> info) mutable {
               if (!info.ok()) {
                 std::move(done)(info.status());
                 return;
               }
               v1::GetDeliveryResponse response;
               *response.mutable_delivery() = ToDeliveryProto(*info);
               std::move(done)(std::move(response));
             });
}

void DeliveryFrontend::ListDeadLetters(const v1::ListDeadLettersRequest& request,
                                       Done<v1::ListDeadLettersResponse> done) {
  const int page_size = request.page_size() == 0 ? kDefaultDeadLetterPage : request.page_size();
  if (page_size < 1 || page_size > kMaxDeadLetterPage) {
    std::move(done)(
        Invalid("page_size", absl::StrCat("must be 0 (100) or 1 to ", kMaxDeadLetterPage, " (got ",
                                          request.page_size(), ")")));
    return;
  }
  store_.ListDeadLetters(static_cast<size_t>(page_size), request.page_token(),
                         [done = std::move(done)](absl::StatusOr<DeadLetterPage> page) mutable {
                           if (!page.ok()) {
                             std::move(done)(page.status());
                             return;
                           }
                           v1::ListDeadLettersResponse response;
                           for (const DeliveryInfo& info : page->dead) {
                             *response.add_dead_letters() = ToDeliveryProto(info);
                           }
                           response.set_next_page_token(page->next_page_token);
                           std::move(done)(std::move(response));
                         });
}

void DeliveryFrontend::RedriveDeadLetters(const v1::RedriveDeadLettersRequest& request,
                                          Done<v1::RedriveDeadLettersResponse> done) {
  const int n = request.delivery_ids_size();
  if (n < 1 || n > kMaxRedriveIds) {
    std::move(done)(Invalid("delivery_ids",
                            absl::StrCat("must hold 1 to ", kMaxRedriveIds, " ids (got ", n, ")")));
    return;
  }
  std::vector<std::string> ids(request.delivery_ids().begin(), request.delivery_ids().end());
  store_.Redrive(
      ids, [this, ids, done = std::move(done)](std::vector<absl::Status> statuses) mutable {
        v1::RedriveDeadLettersResponse response;
        bool any = false;
        for (size_t i = 0; i < ids.size(); ++i) {
          v1::RedriveOutcome& outcome = *response.add_outcomes();
          outcome.set_delivery_id(ids[i]);
          const absl::Status status =
              i < statuses.size() ? statuses[i] : absl::InternalError("no answer from the queue");
          outcome.set_code(static_cast<int32_t>(status.code()));
          outcome.set_message(std::string(status.message()));
          any = any || status.ok();
        }
        if (any && hooks_.on_enqueued != nullptr) hooks_.on_enqueued();
        std::move(done)(std::move(response));
      });
}

}  // namespace userpilot::gateway
