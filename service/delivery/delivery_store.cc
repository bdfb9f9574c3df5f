#include "service/delivery/delivery_store.h"

#include "absl/strings/str_cat.h"

namespace userpilot::gateway {

absl::string_view DeliveryStateName(DeliveryState state) {
  switch (state) {
    case DeliveryState::kPending:
      return "pending";
    case DeliveryState::kDelivered:
      return "delivered";
    case DeliveryState::kDead:
      return "dead";
  }
  return "unknown";
}

absl::Status ValidateNewDelivery(const NewDelivery& d) {
  if (d.payload.empty()) return absl::InvalidArgumentError("payload: empty");
  if (d.payload.size() > kMaxDeliveryPayloadBytes) {
    return absl::InvalidArgumentError(absl::StrCat("payload: ", d.payload.size(),
                                                   " bytes, more than the ",
                                                   kMaxDeliveryPayloadBytes, " allowed"));
  }
  if (d.ordering_keys.size() > kMaxOrderingKeys) {
    return absl::InvalidArgumentError(absl::StrCat("ordering_keys: ", d.ordering_keys.size(),
                                                   " keys, more than the ", kMaxOrderingKeys,
                                                   " allowed"));
  }
  for (size_t i = 0; i < d.ordering_keys.size(); ++i) {
    const std::string& k = d.ordering_keys[i];
    if (k.empty() || k.size() > kMaxOrderingKeyBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("ordering_keys[", i, "]: must be 1..", kMaxOrderingKeyBytes, " bytes"));
    }
    for (size_t j = 0; j < i; ++j) {
      if (d.ordering_keys[j] == k) {
        return absl::InvalidArgumentError(
            absl::StrCat("ordering_keys[", i, "]: repeats ordering_keys[", j, "]"));
      }
    }
  }
  if (d.idempotency_key.size() > kMaxIdempotencyKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("idempotency_key: more than ", kMaxIdempotencyKeyBytes, " bytes"));
  }
  return absl::OkStatus();
}

}  // namespace userpilot::gateway
