// Bulk rows of queued identifies: what the dispatcher's coalescing (dispatcher.h) puts into one
// BulkIdentifyUsers or BulkIdentifyCompanies request instead of sending each call on its own.
//
// A queued call becomes a row only when the row says exactly what the single call would send:
//   IdentifyUserRequest {user_id, metadata, company {company_id}}  -> BulkUser {user_id,
//       metadata, company_id}; a call whose `company` carries metadata is NOT a row (BulkUser
//       has no place for company properties), nor is one naming an empty company_id.
//   IdentifyCompanyRequest {company_id, metadata}                  -> BulkCompany {company_id,
//       metadata}; always a row.
// Metadata is copied as is (null values, which remove a property, included).
//
// BulkRequestBuilder keeps the request within the bounds the gateway's own validator applies to
// a bulk request (ValidationLimits: max_bulk_rows rows, max_bulk_request_bytes serialized) and
// never puts one id in it twice.
//
// Thread-safety: pure functions; a builder is a plain value (one thread at a time).
#ifndef USERPILOT_GATEWAY_SERVICE_DELIVERY_BULK_ROWS_H_
#define USERPILOT_GATEWAY_SERVICE_DELIVERY_BULK_ROWS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {

// The record kinds (EnqueueRequest's oneof field numbers) that coalescing serves.
inline constexpr uint32_t kIdentifyUserKind = v1::EnqueueRequest::kIdentifyUser;
inline constexpr uint32_t kIdentifyCompanyKind = v1::EnqueueRequest::kIdentifyCompany;

// The row carrying exactly what `call` would send on its own; nullopt when no row can.
std::optional<v1::BulkUser> BulkRowOf(const v1::IdentifyUserRequest& call);
v1::BulkCompany BulkRowOf(const v1::IdentifyCompanyRequest& call);

class BulkRequestBuilder {
 public:
  enum class Added {
    kAdded,
    kNotARow,    // Not of the builder's kind, or a call no row can express (BulkRowOf).
    kDuplicate,  // Its id is in the request already.
    kFull,       // max_rows rows already, or the row would take the request over max_bytes.
  };

  // `kind`: kIdentifyUserKind or kIdentifyCompanyKind. `max_rows` >= 1, `max_bytes` >= 1.
  BulkRequestBuilder(uint32_t kind, size_t max_rows, size_t max_bytes);

  Added Add(const v1::EnqueueRequest& request);

  uint32_t kind() const { return kind_; }
  size_t rows() const;
  // The serialized size of the request so far (what the validator bounds).
  size_t bytes() const { return bytes_; }
  // The request (users or companies, by kind).
  const v1::BulkIdentifyUsersRequest& users() const { return users_; }
  const v1::BulkIdentifyCompaniesRequest& companies() const { return companies_; }

 private:
  bool Fits(size_t row_bytes) const;

  const uint32_t kind_;
  const size_t max_rows_;
  const size_t max_bytes_;
  size_t bytes_ = 0;
  absl::flat_hash_set<std::string> ids_;
  v1::BulkIdentifyUsersRequest users_;
  v1::BulkIdentifyCompaniesRequest companies_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_DELIVERY_BULK_ROWS_H_
