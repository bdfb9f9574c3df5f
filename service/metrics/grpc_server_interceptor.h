// gRPC server metrics as a server interceptor: every RPC of a server built with it is counted
// in GrpcServerMetrics (grpc_server_started_total, _handled_total, _msg_received_total,
// _msg_sent_total, _handling_seconds), whatever its API (the callback API included: checked by
// grpc_server_interceptor_test against gRPC 1.51).
//
// What is measured, per call:
//   started         when gRPC matches the call to a method (the interceptor is created);
//   msg_received    each request message received (POST_RECV_MESSAGE with a message);
//   msg_sent        each response message sent (PRE_SEND_MESSAGE);
//   handled, time   when the status is sent (PRE_SEND_STATUS), with its code; a call that ends
//                   without sending one (the server shut down under it) counts as CANCELLED
//                   when gRPC destroys it.
//
// Usage (the composition root, before BuildAndStart):
//   GrpcServerMetrics& metrics = ...;   // with metrics.AddService(*v1::UserpilotGateway::...)
//   AddServerMetrics(builder, metrics);
// or, when the builder gets other interceptors too, put MakeServerMetricsInterceptorFactory()
// in the one vector given to SetInterceptorCreators (which replaces any earlier vector).
//
// Thread-safety: the factory and its interceptors are called by gRPC from any thread.
// `metrics` must outlive the server.
#ifndef USERPILOT_GATEWAY_SERVICE_METRICS_GRPC_SERVER_INTERCEPTOR_H_
#define USERPILOT_GATEWAY_SERVICE_METRICS_GRPC_SERVER_INTERCEPTOR_H_

#include <memory>

#include "grpcpp/server_builder.h"
#include "grpcpp/support/server_interceptor.h"
#include "service/metrics/gateway_metrics.h"

namespace userpilot::gateway {

// The interceptor factory that records into `metrics`.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeServerMetricsInterceptorFactory(GrpcServerMetrics& metrics);

// builder.experimental().SetInterceptorCreators() with that factory alone.
void AddServerMetrics(grpc::ServerBuilder& builder, GrpcServerMetrics& metrics);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_METRICS_GRPC_SERVER_INTERCEPTOR_H_
