#include "service/delivery/bulk_rows.h"

#include <utility>

#include "google/protobuf/io/coded_stream.h"

namespace userpilot::gateway {
namespace {

// What one element of a repeated message field adds to the serialized request: its tag (field
// 1: one byte), its length as a varint, and its bytes.
size_t ElementBytes(size_t row_bytes) {
  return 1 + google::protobuf::io::CodedOutputStream::VarintSize64(row_bytes) + row_bytes;
}

}  // namespace

std::optional<v1::BulkUser> BulkRowOf(const v1::IdentifyUserRequest& call) {
  v1::BulkUser row;
  if (call.has_company()) {
    // Company properties travel only in a single call's `company` object.
    if (call.company().metadata().fields_size() > 0) return std::nullopt;
    if (call.company().company_id().empty()) return std::nullopt;
    row.set_company_id(call.company().company_id());
  }
  row.set_user_id(call.user_id());
  if (call.has_metadata()) *row.mutable_metadata() = call.metadata();
  return row;
}

v1::BulkCompany BulkRowOf(const v1::IdentifyCompanyRequest& call) {
  v1::BulkCompany row;
  row.set_company_id(call.company_id());
  if (call.has_metadata()) *row.mutable_metadata() = call.metadata();
  return row;
}

BulkRequestBuilder::BulkRequestBuilder(uint32_t kind, size_t max_rows, size_t max_bytes)
    : kind_(kind), max_rows_(max_rows), max_bytes_(max_bytes) {}

size_t BulkRequestBuilder::rows() const {
  return kind_ == kIdentifyUserKind ? static_cast<size_t>(users_.users_size())
                                    : static_cast<size_t>(companies_.companies_size());
}

bool BulkRequestBuilder::Fits(size_t row_bytes) const {
  return rows() < max_rows_ && bytes_ + ElementBytes(row_bytes) <= max_bytes_;
}

BulkRequestBuilder::Added BulkRequestBuilder::Add(const v1::EnqueueRequest& request) {
  if (kind_ == kIdentifyUserKind && request.has_identify_user()) {
    std::optional<v1::BulkUser> row = BulkRowOf(request.identify_user());
    if (!row.has_value()) return Added::kNotARow;
    if (ids_.contains(row->user_id())) return Added::kDuplicate;
    const size_t row_bytes = row->ByteSizeLong();
    if (!Fits(row_bytes)) return Added::kFull;
    bytes_ += ElementBytes(row_bytes);
    ids_.insert(row->user_id());
    *users_.add_users() = std::move(*row);
    return Added::kAdded;
  }
  if (kind_ == kIdentifyCompanyKind && request.has_identify_company()) {
    v1::BulkCompany row = BulkRowOf(request.identify_company());
    if (ids_.contains(row.company_id())) return Added::kDuplicate;
    const size_t row_bytes = row.ByteSizeLong();
    if (!Fits(row_bytes)) return Added::kFull;
    bytes_ += ElementBytes(row_bytes);
    ids_.insert(row.company_id());
    *companies_.add_companies() = std::move(row);
    return Added::kAdded;
  }
  return Added::kNotARow;
}

}  // namespace userpilot::gateway
