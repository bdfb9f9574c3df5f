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

class MockUserpilotStub : public UserpilotStub {
 public:
  MOCK_METHOD(void, IdentifyUser,
              (const CallOptions&, const v1::IdentifyUserRequest&,
               StubCallback<v1::IdentifyUserResponse>),
              (override));
  MOCK_METHOD(void, IdentifyCompany,
              (const CallOptions&, const v1::IdentifyCompanyRequest&,
               StubCallback<v1::IdentifyCompanyResponse>),
              (override));
  MOCK_METHOD(void, BulkIdentifyUsers,
              (const CallOptions&, const v1::BulkIdentifyUsersRequest&, StubCallback<v1::Job>),
              (override));
  MOCK_METHOD(void, BulkIdentifyCompanies,
              (const CallOptions&, const v1::BulkIdentifyCompaniesRequest&, StubCallback<v1::Job>),
              (override));
  MOCK_METHOD(void, TrackEvent,
              (const CallOptions&, const v1::TrackEventRequest&,
               StubCallback<v1::TrackEventResponse>),
              (override));
  MOCK_METHOD(void, ListJobs,
              (const CallOptions&, const v1::ListJobsRequest&, StubCallback<v1::ListJobsResponse>),
              (override));
  MOCK_METHOD(void, GetJob, (const CallOptions&, const v1::GetJobRequest&, StubCallback<v1::Job>),
              (override));
  MOCK_METHOD(void, DeleteUsers,
              (const CallOptions&, const v1::DeleteUsersRequest&,
               StubCallback<v1::DeleteUsersResponse>),
              (override));
  MOCK_METHOD(void, DeleteCompanies,
              (const CallOptions&, const v1::DeleteCompaniesRequest&,
               StubCallback<v1::DeleteCompaniesResponse>),
              (override));
  MOCK_METHOD(void, ImportFile,
              (const CallOptions&, const ImportFileRequest&, StubCallback<v1::Job>), (override));
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_TESTS_MOCKS_MOCK_USERPILOT_STUB_H_
