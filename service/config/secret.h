// A string that must never be printed: the Userpilot API key.
//
// `Secret` holds the value and offers exactly one way to read it, `Reveal()`, so every place
// that uses the key is easy to find by grep. Streaming it (operator<<, and so gtest's printer
// and any logging built on streams) prints `[redacted]`. It has no implicit conversion to a
// string, so `absl::StrCat(secret)` does not compile.
//
// Thread-safety: an immutable value; safe to read from any thread.
#ifndef USERPILOT_GATEWAY_SERVICE_CONFIG_SECRET_H_
#define USERPILOT_GATEWAY_SERVICE_CONFIG_SECRET_H_

#include <ostream>
#include <string>
#include <utility>

namespace userpilot::gateway {

class Secret {
 public:
  // What every printed form of a Secret shows.
  static constexpr const char* kRedacted = "[redacted]";

  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}

  // The secret itself. Use it only where it is sent (the Authorization header), never in a
  // message, log line or metric.
  const std::string& Reveal() const { return value_; }

  bool empty() const { return value_.empty(); }

  // `[redacted]`, whatever the value.
  std::string DebugString() const { return kRedacted; }

  friend std::ostream& operator<<(std::ostream& os, const Secret&) { return os << kRedacted; }
  friend bool operator==(const Secret& a, const Secret& b) { return a.value_ == b.value_; }
  friend bool operator!=(const Secret& a, const Secret& b) { return !(a == b); }

 private:
  std::string value_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_CONFIG_SECRET_H_
