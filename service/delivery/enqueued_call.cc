#include "service/delivery/enqueued_call.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"

namespace userpilot::gateway {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

const google::protobuf::OneofDescriptor& CallOneof() {
  static const google::protobuf::OneofDescriptor* const oneof =
      v1::EnqueueRequest::descriptor()->FindOneofByName("call");
  return *oneof;
}

std::string Prefixed(absl::string_view prefix, absl::string_view field) {
  if (prefix.empty()) return std::string(field);
  if (field.empty()) return std::string(prefix);
  return absl::StrCat(prefix, ".", field);
}

}  // namespace

const Message* EnqueuedMessage(const v1::EnqueueRequest& request) {
  const FieldDescriptor* field =
      request.GetReflection()->GetOneofFieldDescriptor(request, &CallOneof());
  if (field == nullptr) return nullptr;
  return &request.GetReflection()->GetMessage(request, field);
}

std::string CallTypeName(uint32_t kind) {
  const FieldDescriptor* field =
      v1::EnqueueRequest::descriptor()->FindFieldByNumber(static_cast<int>(kind));
  if (field == nullptr || field->containing_oneof() != &CallOneof()) return "unknown";
  return field->name();
}

std::vector<std::string> OrderingKeysOf(const Message& call) {
  std::vector<std::string> keys;
  const google::protobuf::Descriptor* type = call.GetDescriptor();
  for (const auto& [field_name, key_prefix] :
       {std::pair<const char*, const char*>{"user_id", "user:"}, {"company_id", "company:"}}) {
    const FieldDescriptor* field = type->FindFieldByName(field_name);
    if (field == nullptr || field->type() != FieldDescriptor::TYPE_STRING || field->is_repeated()) {
      continue;
    }
    std::string value = call.GetReflection()->GetString(call, field);
    if (value.empty()) continue;
    std::string key = absl::StrCat(key_prefix, value);
    // Ids longer than the store's key bound (--max_id_bytes allows up to 4096) are cut: two
    // ids sharing the kept prefix then share a key, which only serializes their calls more.
    if (key.size() > kMaxOrderingKeyBytes) key.resize(kMaxOrderingKeyBytes);
    keys.push_back(std::move(key));
  }
  return keys;
}

CallStatus ValidateEnqueueRequest(const RequestValidator& validator,
                                  const v1::EnqueueRequest& request, absl::string_view prefix) {
  std::vector<FieldViolation> violations;
  if (request.idempotency_key().size() > kMaxIdempotencyKeyBytes) {
    violations.push_back({Prefixed(prefix, "idempotency_key"),
                          absl::StrCat("must be at most ", kMaxIdempotencyKeyBytes, " bytes (got ",
                                       request.idempotency_key().size(), ")")});
  }
  const Message* message = EnqueuedMessage(request);
  if (message == nullptr) {
    violations.push_back({Prefixed(prefix, "call"),
                          "required: set one of identify_user, identify_company, track_event"});
  } else {
    const FieldDescriptor* field =
        request.GetReflection()->GetOneofFieldDescriptor(request, &CallOneof());
    const std::string call_prefix = Prefixed(prefix, field->name());
    CallStatus valid;
    const bool served = VisitEnqueuedCall(
        request, [&](auto, const auto& call) { valid = validator.Validate(call); });
    if (!served) {
      violations.push_back({call_prefix, "cannot be delivered by this gateway"});
    } else if (!valid.ok()) {
      for (const FieldViolation& v : valid.facts().violations) {
        violations.push_back({Prefixed(call_prefix, v.field), v.description});
      }
      if (valid.facts().violations.empty()) {
        violations.push_back({call_prefix, std::string(valid.status().message())});
      }
    }
  }
  if (violations.empty()) return CallStatus();
  return InvalidArgumentError(std::move(violations));
}

NewDelivery ToNewDelivery(const v1::EnqueueRequest& request) {
  NewDelivery delivery;
  delivery.payload = request.SerializeAsString();
  delivery.kind = static_cast<uint32_t>(request.call_case());
  if (const Message* message = EnqueuedMessage(request); message != nullptr) {
    delivery.ordering_keys = OrderingKeysOf(*message);
  }
  delivery.idempotency_key = request.idempotency_key();
  return delivery;
}

}  // namespace userpilot::gateway
