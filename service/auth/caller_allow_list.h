// Which RPCs each authenticated caller may call: the parsed `--caller_allow`.
//
//   --caller_allow='gdpr-service=DeleteUsers|DeleteCompanies,billing=IdentifyUser|TrackEvent,
//                   *=IdentifyUser|IdentifyCompany|TrackEvent|GetJob|ListJobs|WatchJob'
//
// Entries are separated by commas, each `CALLER=RPC|RPC|...`. CALLER is a caller name
// (caller_name.h) or `*`, which stands for every authenticated caller; RPC is a method name of
// the service (userpilot.gateway.v1.UserpilotGateway), checked against its descriptor. A caller
// may call the RPCs of its own entry and those of the `*` entry. A caller that has no entry,
// when there is no `*` entry, may call nothing. An empty specification allows every RPC to
// every authenticated caller (the default).
//
// Thread-safety: immutable after construction; Allows() from any thread.
#ifndef USERPILOT_GATEWAY_SERVICE_AUTH_CALLER_ALLOW_LIST_H_
#define USERPILOT_GATEWAY_SERVICE_AUTH_CALLER_ALLOW_LIST_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace google::protobuf {
class ServiceDescriptor;
}

namespace userpilot::gateway {

class CallerAllowList {
 public:
  // Every caller may call every RPC.
  CallerAllowList() = default;

  // Parses `spec` (see above) against the methods of `service`. Empty or blank: every caller
  // may call every RPC. Errors: INVALID_ARGUMENT listing every bad entry, each quoted with its
  // position ("entry 2 'billing=IdentifyUsr': 'IdentifyUsr' is not an RPC of ...").
  static absl::StatusOr<CallerAllowList> Parse(absl::string_view spec,
                                               const google::protobuf::ServiceDescriptor& service);

  // True when `caller` may call `rpc` (a method name such as "DeleteUsers").
  bool Allows(absl::string_view caller, absl::string_view rpc) const;

  // True when no specification was given: everything is allowed.
  bool allows_everything() const { return everything_; }

  // The caller names that have their own entry (not `*`), sorted.
  std::vector<std::string> Callers() const;

  // The normalized specification (entries sorted, `*` last), or "(all RPCs for every caller)".
  std::string DebugString() const;

 private:
  bool everything_ = true;
  std::map<std::string, std::set<std::string, std::less<>>, std::less<>> by_caller_;
  std::set<std::string, std::less<>> any_caller_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_AUTH_CALLER_ALLOW_LIST_H_
