// Target: where the load generator sends calls. Two implementations measured the same way:
// GrpcTarget (through the gateway) and HttpTarget (straight to the REST API with libcurl, the
// path a service takes without the gateway).
#pragma once

#include <functional>
#include <string>

#include "bench/loadgen/request_mix.h"

namespace userpilot::gateway::bench {

// How one call ended. `code` is the gRPC status code for GrpcTarget; for HttpTarget the HTTP
// status, or minus the CURLcode when no answer came (transport failure, timeout).
struct Outcome {
  int code = 0;
  bool ok = false;  // gRPC OK, or HTTP 2xx
};

using DoneCallback = std::function<void(Outcome)>;

class Target {
 public:
  virtual ~Target() = default;
  // "gateway" or "direct".
  virtual std::string name() const = 0;
  // Starts call `seq` of kind `op`; `done` runs exactly once, on a thread of the target's, when
  // it ends. Thread-safe and non-blocking; may be called from inside a `done`.
  virtual void Start(Op op, uint64_t seq, DoneCallback done) = 0;
  // A stable name for an Outcome::code ("OK", "RESOURCE_EXHAUSTED", "202", "curl_28").
  virtual std::string CodeName(int code) const = 0;
};

}  // namespace userpilot::gateway::bench
