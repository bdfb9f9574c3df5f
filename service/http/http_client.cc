#include "service/http/http_client.h"

#include "absl/strings/match.h"

namespace userpilot::gateway {

absl::string_view HttpResponse::Header(absl::string_view name) const {
  for (const auto& [header_name, value] : headers) {
    if (absl::EqualsIgnoreCase(header_name, name)) return value;
  }
  return "";
}

}  // namespace userpilot::gateway
