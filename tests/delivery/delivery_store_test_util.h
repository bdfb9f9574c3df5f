// Blocking wrappers around the asynchronous DeliveryStore calls, a settable clock and a
// temporary folder: for the delivery stores' tests only (never in the gateway: they block).
#ifndef USERPILOT_GATEWAY_TESTS_DELIVERY_DELIVERY_STORE_TEST_UTIL_H_
#define USERPILOT_GATEWAY_TESTS_DELIVERY_DELIVERY_STORE_TEST_UTIL_H_

#include <stdlib.h>

#include <filesystem>
#include <future>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "service/delivery/delivery_store.h"

namespace userpilot::gateway::testing {

inline absl::StatusOr<AppendResult> AppendSync(DeliveryStore& store, NewDelivery d) {
  std::promise<absl::StatusOr<AppendResult>> p;
  auto f = p.get_future();
  store.Append(std::move(d), [&p](absl::StatusOr<AppendResult> r) { p.set_value(std::move(r)); });
  return f.get();
}

inline absl::StatusOr<std::vector<LeasedDelivery>> LeaseSync(DeliveryStore& store, size_t max,
                                                             std::vector<uint32_t> kinds = {}) {
  std::promise<absl::StatusOr<std::vector<LeasedDelivery>>> p;
  auto f = p.get_future();
  LeaseOptions o;
  o.max_records = max;
  o.kinds = std::move(kinds);
  store.Lease(std::move(o),
              [&p](absl::StatusOr<std::vector<LeasedDelivery>> r) { p.set_value(std::move(r)); });
  return f.get();
}

inline absl::Status CompleteSync(DeliveryStore& store, const std::string& id,
                                 DeliveryOutcome outcome) {
  std::promise<absl::Status> p;
  auto f = p.get_future();
  store.Complete(id, std::move(outcome), [&p](absl::Status s) { p.set_value(std::move(s)); });
  return f.get();
}

inline absl::StatusOr<DeliveryInfo> GetSync(DeliveryStore& store, const std::string& id) {
  std::promise<absl::StatusOr<DeliveryInfo>> p;
  auto f = p.get_future();
  store.Get(id, [&p](absl::StatusOr<DeliveryInfo> r) { p.set_value(std::move(r)); });
  return f.get();
}

inline absl::StatusOr<DeadLetterPage> ListDeadSync(DeliveryStore& store, size_t max,
                                                   const std::string& token = "") {
  std::promise<absl::StatusOr<DeadLetterPage>> p;
  auto f = p.get_future();
  store.ListDeadLetters(max, token,
                        [&p](absl::StatusOr<DeadLetterPage> r) { p.set_value(std::move(r)); });
  return f.get();
}

inline std::vector<absl::Status> RedriveSync(DeliveryStore& store, std::vector<std::string> ids) {
  std::promise<std::vector<absl::Status>> p;
  auto f = p.get_future();
  store.Redrive(std::move(ids), [&p](std::vector<absl::Status> r) { p.set_value(std::move(r)); });
  return f.get();
}

inline std::vector<absl::Status> RenewSync(DeliveryStore& store, std::vector<std::string> ids) {
  std::promise<std::vector<absl::Status>> p;
  auto f = p.get_future();
  store.Renew(std::move(ids), [&p](std::vector<absl::Status> r) { p.set_value(std::move(r)); });
  return f.get();
}

inline NewDelivery MakeDelivery(std::string payload, std::vector<std::string> keys = {},
                                std::string idempotency_key = "", uint32_t kind = 0) {
  NewDelivery d;
  d.payload = std::move(payload);
  d.ordering_keys = std::move(keys);
  d.idempotency_key = std::move(idempotency_key);
  d.kind = kind;
  return d;
}

// A clock the test moves; thread-safe.
class TestClock {
 public:
  absl::Time Now() const {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += d;
  }

 private:
  mutable std::mutex mu_;
  absl::Time now_ = absl::FromUnixSeconds(1800000000);
};

// A fresh folder under the test temporary directory, removed at destruction.
class TempFolder {
 public:
  TempFolder() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "upgw-delivery-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data()) ? tmpl : "";
  }
  ~TempFolder() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace userpilot::gateway::testing

#endif  // USERPILOT_GATEWAY_TESTS_DELIVERY_DELIVERY_STORE_TEST_UTIL_H_
