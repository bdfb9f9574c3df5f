// MockUserpilotStub: a gMock of the UserpilotStub interface, for testing the layers above the
// upstream (the gRPC service, decorators, the job poller) without HTTP.
//
// Callbacks are move-only and must be invoked as rvalues, exactly once, and - to keep the
// interface's contract - not inside the call itself when the code under test depends on it.
// The simplest action answers at once:
//
//   MockUserpilotStub stub;
//   EXPECT_CALL(stub, GetJob(_, _, _))
//       .WillOnce([](const CallOptions&, const v1::GetJobRequest& request,
//                    StubCallback<v1::Job> done) {
//         v1::Job job;
//         job.set_job_id(request.job_id());
//         std::move(done)(job);
//       });
//
// To answer later (or from another thread), move `done` somewhere the test controls.
//
// Thread-safety: as gMock's; expectations must be set before calls arrive from other threads.
#ifndef USERPILOT_GATEWAY_TESTS_MOCKS_MOCK_USERPILOT_STUB_H_
#define USERPILOT_GATEWAY_TESTS_MOCKS_MOCK_USERPILOT_STUB_H_

#include "gmock/gmock.h"
#include "service/upstream/userpilot_stub.h"

namespace userpilot::gateway {

// One MOCK_METHOD per row of USERPILOT_UPSTREAM_RPCS.
class MockUserpilotStub : public UserpilotStub {
 public:
#define UPGW_MOCK_RPC(Name, Request, Response, ...) \
  MOCK_METHOD(void, Name, (const CallOptions&, const Request&, StubCallback<Response>), (override));
  USERPILOT_UPSTREAM_RPCS(UPGW_MOCK_RPC)
#undef UPGW_MOCK_RPC
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_TESTS_MOCKS_MOCK_USERPILOT_STUB_H_
