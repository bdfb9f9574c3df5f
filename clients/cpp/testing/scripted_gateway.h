// A scripted in-process userpilot-gateway for unit tests of the client library and of
// userpilotctl: each RPC answers with the next status its script holds (OK when the script is
// empty), each watch plays the next scripted stream, and every call is recorded (method,
// x-caller, authorization, the peer's certificate identity, deadline) so tests can check what
// the client sent. It serves plaintext, or TLS with the server credentials it is given.
//
// Thread-safety: the scripts and records are guarded by a mutex; tests may script and read
// while calls run on gRPC's threads.
#ifndef USERPILOT_GATEWAY_CLIENTS_CPP_TESTING_SCRIPTED_GATEWAY_H_
#define USERPILOT_GATEWAY_CLIENTS_CPP_TESTING_SCRIPTED_GATEWAY_H_

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "google/protobuf/message.h"
#include "google/rpc/error_details.pb.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/support/status.h"
#include "userpilot/gateway/v1/gateway.grpc.pb.h"

namespace userpilot::gateway::client::testing {

namespace v1 = ::userpilot::gateway::v1;

// A status with google.rpc details, as the gateway sends them.
grpc::Status WithDetails(grpc::StatusCode code, const std::string& message,
                         std::vector<google::protobuf::Message*> details);

// The gateway's ErrorInfo for `reason`; `may_have_been_sent` ("true", "false", or "" for none)
// becomes the request_may_have_been_sent metadata.
google::rpc::ErrorInfo Info(const std::string& reason, const std::string& may_have_been_sent);

// A RetryInfo asking to wait `delay`.
google::rpc::RetryInfo Retry(std::chrono::milliseconds delay);

// Job "bulk:jobs:1" in `status`, `elapsed` seconds old.
v1::Job MakeJob(v1::JobStatus status, int64_t elapsed);

class ScriptedGateway final : public v1::UserpilotGateway::Service {
 public:
  struct Seen {
    std::string method;
    std::string caller;
    std::string authorization;  // the `authorization` metadata, "" when absent
    // The client certificate's identity (its SANs, else its CN, as gRPC's auth context gives
    // them), "" without one.
    std::string peer_identity;
    double deadline_seconds;  // from when the call arrived
  };

  // The next calls of `method` end with `statuses`, in order.
  void Script(const std::string& method, std::vector<grpc::Status> statuses);
  // Each WatchJob attempt sends `jobs`, then ends with `end`.
  void ScriptWatch(std::vector<v1::Job> jobs, grpc::Status end);
  // The same for WatchJobs.
  void ScriptWatchJobs(std::vector<v1::Job> jobs, grpc::Status end);

  std::vector<Seen> seen();
  int calls(const std::string& method);
  std::vector<v1::ImportDataRequest> imported();

  grpc::Status IdentifyUser(grpc::ServerContext* c, const v1::IdentifyUserRequest*,
                            v1::IdentifyUserResponse* r) override;
  grpc::Status TrackEvent(grpc::ServerContext* c, const v1::TrackEventRequest*,
                          v1::TrackEventResponse* r) override;
  grpc::Status BulkIdentifyUsers(grpc::ServerContext* c, const v1::BulkIdentifyUsersRequest*,
                                 v1::Job* job) override;
  grpc::Status ListJobs(grpc::ServerContext* c, const v1::ListJobsRequest*,
                        v1::ListJobsResponse* r) override;
  grpc::Status GetJob(grpc::ServerContext* c, const v1::GetJobRequest* request,
                      v1::Job* job) override;
  grpc::Status WatchJob(grpc::ServerContext* c, const v1::WatchJobRequest*,
                        grpc::ServerWriter<v1::Job>* writer) override;
  grpc::Status WatchJobs(grpc::ServerContext* c, const v1::WatchJobsRequest*,
                         grpc::ServerWriter<v1::Job>* writer) override;
  grpc::Status ImportData(grpc::ServerContext* c, grpc::ServerReader<v1::ImportDataRequest>* reader,
                          v1::Job* job) override;

 private:
  using WatchScript = std::deque<std::pair<std::vector<v1::Job>, grpc::Status>>;

  // Plays the next scripted stream of `script`.
  grpc::Status Replay(WatchScript& script, grpc::ServerWriter<v1::Job>* writer);
  void Record(const std::string& method, grpc::ServerContext* c);
  grpc::Status Next(const std::string& method, grpc::ServerContext* c);

  std::mutex mu_;
  std::map<std::string, std::deque<grpc::Status>> script_;
  WatchScript watches_;
  WatchScript watch_jobs_;
  std::vector<Seen> seen_;
  std::vector<v1::ImportDataRequest> imported_;
};

// A ScriptedGateway served on 127.0.0.1 at a free port while this object lives: plaintext, or
// over `credentials` (grpc::SslServerCredentials for TLS tests).
class ScriptedGatewayServer {
 public:
  explicit ScriptedGatewayServer(std::shared_ptr<grpc::ServerCredentials> credentials = nullptr);
  ~ScriptedGatewayServer();

  ScriptedGateway& gateway() { return gateway_; }
  // "127.0.0.1:PORT".
  const std::string& target() const { return target_; }

 private:
  ScriptedGateway gateway_;
  std::unique_ptr<grpc::Server> server_;
  std::string target_;
};

}  // namespace userpilot::gateway::client::testing

#endif  // USERPILOT_GATEWAY_CLIENTS_CPP_TESTING_SCRIPTED_GATEWAY_H_
