// The Userpilot REST API as an asynchronous C++ interface: one method per row of the table of
// upstream RPCs (upstream_rpcs.h), which says what each calls.
//
// Requests and responses are the gateway's own proto messages (proto/userpilot/gateway/v1), so
// the gRPC layer hands a validated request straight through. Implementations:
//  - HttpUserpilotStub (http_userpilot_stub.h): maps to JSON and sends it over an HttpClient.
//  - decorators (retry, rate limit, metrics) that wrap another stub, each derived from
//    ForwardingStub (forwarding_stub.h); MakeUpstreamStack (app/upstream_stack.h) stacks them so
//    their order is visible in one place.
//  - test fakes and mocks (tests/mocks/).
//
// Every answer is a Result<T> (common/call_result.h): the response or an absl::Status coded by
// what the caller should do next (see README "Errors"), and, either way, the CallFacts of the
// call - HTTP status, request id, why it failed, attempts, budget wait - which each layer reads
// and adds to, and which become google.rpc details only at the gRPC edge.
//
// Lifetimes: `options` and `request` are valid only during the call; an implementation copies
// what it keeps (the JSON body, or the request itself for a retry).
//
// Thread-safety: every method may be called from any thread, concurrently. The callback runs
// exactly once, on an implementation-defined thread (usually an HTTP client completion
// thread), never inside the call itself; it must not block.
#ifndef USERPILOT_GATEWAY_SERVICE_UPSTREAM_USERPILOT_STUB_H_
#define USERPILOT_GATEWAY_SERVICE_UPSTREAM_USERPILOT_STUB_H_

#include <memory>
#include <string>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "service/common/call_result.h"
#include "service/common/trace_context.h"
#include "service/upstream/import_file_request.h"
#include "service/upstream/upstream_rpcs.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {

// Per-call context that every layer may use.
struct CallOptions {
  // When the caller stops waiting. No upstream request is sent, or retried, past it.
  absl::Time deadline = absl::InfiniteFuture();
  // Who is calling (the `x-caller` metadata); used for fairness and logs, never sent upstream.
  std::string caller;
  // The call's W3C trace context (common/trace_context.h): each HTTP attempt sends its trace id
  // upstream as `traceparent` with a span id of its own. Empty: no trace headers are sent.
  TraceContext trace;
  // What the caller's callback does is short and bounded: it answers one call (bookkeeping, a
  // log line, one gRPC answer), with no fan-out, no disk, nothing that waits. The HTTP client
  // may then run the whole answer path on its network thread (HttpRequest::short_callback),
  // saving a thread hand-off. The gateway's unary RPCs set it; leave it false otherwise.
  bool short_callback = false;
};

// Receives the one answer of a call.
template <typename T>
using StubCallback = absl::AnyInvocable<void(Result<T>) &&>;

// The interface: for each row (Name, Request, Response, ...) of USERPILOT_UPSTREAM_RPCS one
//   virtual void Name(const CallOptions& options, const Request& request,
//                     StubCallback<Response> done) = 0;
// calling the row's endpoint. A 409 arrives as FAILED_PRECONDITION / JOB_IN_PROGRESS.
class UserpilotStub {
 public:
  virtual ~UserpilotStub() = default;

#define UPGW_STUB_METHOD(Name, Request, Response, ...)                  \
  virtual void Name(const CallOptions& options, const Request& request, \
                    StubCallback<Response> done) = 0;
  USERPILOT_UPSTREAM_RPCS(UPGW_STUB_METHOD)
#undef UPGW_STUB_METHOD
};

// Calls the method of `Rpc` (a trait struct of upstream_rpcs.h) on `stub`: the typed way for
// templates to reach one method of the interface.
template <typename Rpc>
void InvokeRpc(UserpilotStub& stub, const CallOptions& options,
               const typename Rpc::Request& request, StubCallback<typename Rpc::Response> done);
#define UPGW_INVOKE_RPC(Name, ...)                                                   \
  template <>                                                                        \
  inline void InvokeRpc<Name##Rpc>(UserpilotStub & stub, const CallOptions& options, \
                                   const Name##Rpc::Request& request,                \
                                   StubCallback<Name##Rpc::Response> done) {         \
    stub.Name(options, request, std::move(done));                                    \
  }
USERPILOT_UPSTREAM_RPCS(UPGW_INVOKE_RPC)
#undef UPGW_INVOKE_RPC

// The base of every implementation: implements each method of the interface by calling
// `Derived::Call<Rpc>(options, request, done)`, one member template, so an implementation
// writes its logic once for every RPC (CRTP: no second virtual call). Derived::Call must be
// accessible to this class (public, or this class a friend). Decorators derive from
// ForwardingStub (forwarding_stub.h), which adds the wrapped stub.
template <typename Derived>
class RpcDispatcher : public UserpilotStub {
 public:
#define UPGW_DISPATCH_RPC(Name, ...)                                                          \
  void Name(const CallOptions& options, const Name##Rpc::Request& request,                    \
            StubCallback<Name##Rpc::Response> done) final {                                   \
    static_cast<Derived*>(this)->template Call<Name##Rpc>(options, request, std::move(done)); \
  }
  USERPILOT_UPSTREAM_RPCS(UPGW_DISPATCH_RPC)
#undef UPGW_DISPATCH_RPC
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_UPSTREAM_USERPILOT_STUB_H_
