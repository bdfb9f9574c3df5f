// CallStatus and Result<T>: an absl::Status (code and message) or absl::StatusOr<T> (the
// answer), with the CallFacts (call_facts.h) behind it travelling beside it.
//
// Why two plain parts rather than the facts inside the status: absl::Status can carry extra
// data only as serialized payloads, which every layer would have to encode and parse again (the
// gateway did exactly that with google.rpc details once); a struct beside it is read as fields,
// costs no parsing, and leaves the wire form to the edge (server/error_details.h). Why facts on
// success too: the access log and metrics want the HTTP status, request id, attempts and budget
// wait of every call, not only of failures, and one channel carries them (no side trace).
//
// Both convert implicitly from what they wrap (an absl::Status, a T, an absl::StatusOr<T>), so
// code that has no facts to add - a test answering a mock, a layer refusing with a bare
// UNAVAILABLE - writes what it wrote before; the facts are then empty (reason kNone). They never
// convert back implicitly: a layer that wants only the status says `.status()`, so dropping the
// facts is visible in the code.
//
// Thread-safety: values.
#ifndef USERPILOT_GATEWAY_SERVICE_COMMON_CALL_RESULT_H_
#define USERPILOT_GATEWAY_SERVICE_COMMON_CALL_RESULT_H_

#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/common/call_facts.h"

namespace userpilot::gateway {

// A status with its facts: what a call that yields no value (an admission, a validation, a
// refusal) answers.
class CallStatus {
 public:
  // OK, no facts.
  CallStatus() = default;
  // NOLINTNEXTLINE(google-explicit-constructor): a bare status is a CallStatus without facts.
  CallStatus(absl::Status status, CallFacts facts = {})
      : status_(std::move(status)), facts_(std::move(facts)) {}

  bool ok() const { return status_.ok(); }
  absl::StatusCode code() const { return status_.code(); }
  absl::string_view message() const { return status_.message(); }
  std::string ToString() const { return status_.ToString(); }

  const absl::Status& status() const& { return status_; }
  absl::Status&& status() && { return std::move(status_); }
  const CallFacts& facts() const& { return facts_; }
  CallFacts& facts() & { return facts_; }
  CallFacts&& facts() && { return std::move(facts_); }

  // Replaces the message, keeping the code and the facts.
  void set_message(absl::string_view message) { status_ = absl::Status(status_.code(), message); }

 private:
  absl::Status status_;
  CallFacts facts_;
};

inline std::ostream& operator<<(std::ostream& os, const CallStatus& status) {
  return os << status.status();
}

// An answer or an error, with the facts of the call either way (a StatusOr<T> that also
// carries CallFacts). The API mirrors absl::StatusOr where the two meet.
template <typename T>
class Result {
 public:
  // NOLINTBEGIN(google-explicit-constructor): see the file comment.
  Result(T value, CallFacts facts = {}) : value_(std::move(value)), facts_(std::move(facts)) {}
  // `status` must not be OK (absl::StatusOr's rule).
  Result(absl::Status status, CallFacts facts = {})
      : value_(std::move(status)), facts_(std::move(facts)) {}
  Result(absl::StatusOr<T> value, CallFacts facts = {})
      : value_(std::move(value)), facts_(std::move(facts)) {}
  // `error` must not be OK.
  Result(CallStatus error) : value_(std::move(error).status()), facts_(std::move(error).facts()) {}
  // NOLINTEND(google-explicit-constructor)

  bool ok() const { return value_.ok(); }
  const absl::Status& status() const { return value_.status(); }
  const CallFacts& facts() const& { return facts_; }
  CallFacts& facts() & { return facts_; }

  // The value; only when ok().
  const T& value() const& { return *value_; }
  T& value() & { return *value_; }
  T&& value() && { return *std::move(value_); }
  const T& operator*() const& { return *value_; }
  T& operator*() & { return *value_; }
  T&& operator*() && { return *std::move(value_); }
  const T* operator->() const { return &*value_; }
  T* operator->() { return &*value_; }

  // The status and facts without the value (for an error, everything there is).
  CallStatus error() const& { return CallStatus(value_.status(), facts_); }
  CallStatus error() && { return CallStatus(std::move(value_).status(), std::move(facts_)); }

 private:
  absl::StatusOr<T> value_;
  CallFacts facts_;
};

// INVALID_ARGUMENT naming every violation ("invalid request: users[3].user_id: required; ..."),
// with the violations as facts (the edge makes them a google.rpc.BadRequest).
CallStatus InvalidArgumentError(std::vector<FieldViolation> violations);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_COMMON_CALL_RESULT_H_
