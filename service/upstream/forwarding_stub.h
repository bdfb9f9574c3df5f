// ForwardingStub: the one base of every UserpilotStub decorator (rate limiting, retries,
// metrics). It holds the wrapped stub and, through RpcDispatcher, turns every method of the
// interface into one call of `Derived::Call<Rpc>(options, request, done)`; its own `Call` passes
// the call on unchanged. A decorator therefore writes its concern once, as a member template
// over the RPC's trait struct (upstream_rpcs.h), and reads what it needs from the row:
//
//   class MetricsStub final : public ForwardingStub<MetricsStub> {
//    public:
//     template <typename Rpc>
//     void Call(const CallOptions& options, const typename Rpc::Request& request,
//               StubCallback<typename Rpc::Response> done) {
//       const Route& route = Routing<Rpc>::For(request);
//       Forward<Rpc>(options, request, /* done, wrapped to count route.endpoint */);
//     }
//   };
//
// A decorator whose Call is defined in its .cc file declares
// `extern template class RpcDispatcher<Decorator>;` after the class and instantiates it in the
// .cc (`template class RpcDispatcher<Decorator>;`), which instantiates Call for every row.
//
// Lifetimes: the wrapped stub is shared, so calls in flight may keep it alive.
//
// Thread-safety: as UserpilotStub; the base itself holds only the immutable wrapped pointer.
#ifndef USERPILOT_GATEWAY_SERVICE_UPSTREAM_FORWARDING_STUB_H_
#define USERPILOT_GATEWAY_SERVICE_UPSTREAM_FORWARDING_STUB_H_

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <utility>

#include "service/upstream/userpilot_stub.h"

namespace userpilot::gateway {

template <typename Derived>
class ForwardingStub : public RpcDispatcher<Derived> {
 public:
  // The default for every RPC: pass it on unchanged. A decorator's own `Call` hides this one.
  template <typename Rpc>
  void Call(const CallOptions& options, const typename Rpc::Request& request,
            StubCallback<typename Rpc::Response> done) {
    Forward<Rpc>(options, request, std::move(done));
  }

 protected:
  // `inner` must not be null (the process aborts: a wiring error).
  explicit ForwardingStub(std::shared_ptr<UserpilotStub> inner) : inner_(std::move(inner)) {
    if (inner_ == nullptr) {
      std::fprintf(stderr, "ForwardingStub: null wrapped stub\n");
      std::abort();
    }
  }

  // Sends the call to the wrapped stub.
  template <typename Rpc>
  void Forward(const CallOptions& options, const typename Rpc::Request& request,
               StubCallback<typename Rpc::Response> done) const {
    InvokeRpc<Rpc>(*inner_, options, request, std::move(done));
  }

  // The wrapped stub, for decorators that call it later (after a wait or a backoff) and must
  // keep it alive until then.
  const std::shared_ptr<UserpilotStub>& inner() const { return inner_; }

 private:
  const std::shared_ptr<UserpilotStub> inner_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_UPSTREAM_FORWARDING_STUB_H_
