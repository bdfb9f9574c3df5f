#include "clients/cpp/testing/scripted_gateway.h"

#include <cstdlib>
#include <iostream>

#include "clients/cpp/error_details.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"

namespace userpilot::gateway::client::testing {

grpc::Status WithDetails(grpc::StatusCode code, const std::string& message,
                         std::vector<google::protobuf::Message*> details) {
  google::rpc::Status status;
  status.set_code(code);
  status.set_message(message);
  for (google::protobuf::Message* d : details) status.add_details()->PackFrom(*d);
  return grpc::Status(code, message, status.SerializeAsString());
}

google::rpc::ErrorInfo Info(const std::string& reason, const std::string& may_have_been_sent) {
  google::rpc::ErrorInfo info;
  info.set_reason(reason);
  info.set_domain(kErrorDomain);
  (*info.mutable_metadata())["endpoint"] = "POST /v1/track";
  if (!may_have_been_sent.empty()) {
    (*info.mutable_metadata())["request_may_have_been_sent"] = may_have_been_sent;
  }
  return info;
}

google::rpc::RetryInfo Retry(std::chrono::milliseconds delay) {
  google::rpc::RetryInfo retry;
  retry.mutable_retry_delay()->set_seconds(delay.count() / 1000);
  retry.mutable_retry_delay()->set_nanos(static_cast<int>(delay.count() % 1000) * 1000000);
  return retry;
}

v1::Job MakeJob(v1::JobStatus status, int64_t elapsed) {
  v1::Job job;
  job.set_job_id("bulk:jobs:1");
  job.set_status(status);
  job.set_elapsed_time(elapsed);
  return job;
}

void ScriptedGateway::Script(const std::string& method, std::vector<grpc::Status> statuses) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& s : statuses) script_[method].push_back(std::move(s));
}

void ScriptedGateway::ScriptWatch(std::vector<v1::Job> jobs, grpc::Status end) {
  std::lock_guard<std::mutex> lock(mu_);
  watches_.push_back({std::move(jobs), std::move(end)});
}

void ScriptedGateway::ScriptWatchJobs(std::vector<v1::Job> jobs, grpc::Status end) {
  std::lock_guard<std::mutex> lock(mu_);
  watch_jobs_.push_back({std::move(jobs), std::move(end)});
}

std::vector<ScriptedGateway::Seen> ScriptedGateway::seen() {
  std::lock_guard<std::mutex> lock(mu_);
  return seen_;
}

int ScriptedGateway::calls(const std::string& method) {
  std::lock_guard<std::mutex> lock(mu_);
  int n = 0;
  for (const Seen& s : seen_) n += s.method == method;
  return n;
}

std::vector<v1::ImportDataRequest> ScriptedGateway::imported() {
  std::lock_guard<std::mutex> lock(mu_);
  return imported_;
}

grpc::Status ScriptedGateway::IdentifyUser(grpc::ServerContext* c, const v1::IdentifyUserRequest*,
                                           v1::IdentifyUserResponse* r) {
  r->set_upstream_request_id("req-identify");
  return Next("IdentifyUser", c);
}

grpc::Status ScriptedGateway::TrackEvent(grpc::ServerContext* c, const v1::TrackEventRequest*,
                                         v1::TrackEventResponse* r) {
  r->set_upstream_request_id("req-track");
  return Next("TrackEvent", c);
}

grpc::Status ScriptedGateway::BulkIdentifyUsers(grpc::ServerContext* c,
                                                const v1::BulkIdentifyUsersRequest*, v1::Job* job) {
  job->set_job_id("bulk:jobs:1");
  return Next("BulkIdentifyUsers", c);
}

grpc::Status ScriptedGateway::ListJobs(grpc::ServerContext* c, const v1::ListJobsRequest*,
                                       v1::ListJobsResponse* r) {
  *r->add_jobs() = MakeJob(v1::JOB_STATUS_QUEUED, 0);
  return Next("ListJobs", c);
}

grpc::Status ScriptedGateway::GetJob(grpc::ServerContext* c, const v1::GetJobRequest* request,
                                     v1::Job* job) {
  job->set_job_id(request->job_id());
  return Next("GetJob", c);
}

grpc::Status ScriptedGateway::WatchJob(grpc::ServerContext* c, const v1::WatchJobRequest*,
                                       grpc::ServerWriter<v1::Job>* writer) {
  Record("WatchJob", c);
  return Replay(watches_, writer);
}

grpc::Status ScriptedGateway::WatchJobs(grpc::ServerContext* c, const v1::WatchJobsRequest*,
                                        grpc::ServerWriter<v1::Job>* writer) {
  Record("WatchJobs", c);
  return Replay(watch_jobs_, writer);
}

grpc::Status ScriptedGateway::ImportData(grpc::ServerContext* c,
                                         grpc::ServerReader<v1::ImportDataRequest>* reader,
                                         v1::Job* job) {
  Record("ImportData", c);
  v1::ImportDataRequest message;
  std::lock_guard<std::mutex> lock(mu_);
  while (reader->Read(&message)) imported_.push_back(message);
  job->set_job_id("import:jobs:1");
  return grpc::Status::OK;
}

grpc::Status ScriptedGateway::Replay(WatchScript& script, grpc::ServerWriter<v1::Job>* writer) {
  std::pair<std::vector<v1::Job>, grpc::Status> watch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (script.empty()) return grpc::Status(grpc::StatusCode::INTERNAL, "no watch scripted");
    watch = script.front();
    script.pop_front();
  }
  for (const v1::Job& job : watch.first) writer->Write(job);
  return watch.second;
}

void ScriptedGateway::Record(const std::string& method, grpc::ServerContext* c) {
  auto metadata = [c](const char* key) {
    auto it = c->client_metadata().find(key);
    return it == c->client_metadata().end() ? std::string()
                                            : std::string(it->second.data(), it->second.size());
  };
  std::string identity;
  for (const grpc::string_ref& name : c->auth_context()->GetPeerIdentity()) {
    if (!identity.empty()) identity += ",";
    identity.append(name.data(), name.size());
  }
  double left =
      std::chrono::duration<double>(c->deadline() - std::chrono::system_clock::now()).count();
  std::lock_guard<std::mutex> lock(mu_);
  seen_.push_back({method, metadata("x-caller"), metadata("authorization"), identity, left});
}

grpc::Status ScriptedGateway::Next(const std::string& method, grpc::ServerContext* c) {
  Record(method, c);
  std::lock_guard<std::mutex> lock(mu_);
  auto& queue = script_[method];
  if (queue.empty()) return grpc::Status::OK;
  grpc::Status s = queue.front();
  queue.pop_front();
  return s;
}

ScriptedGatewayServer::ScriptedGatewayServer(std::shared_ptr<grpc::ServerCredentials> credentials) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0",
                           credentials ? credentials : grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&gateway_);
  server_ = builder.BuildAndStart();
  // Without a server every test of the fixture would fail obscurely: stop here instead.
  if (server_ == nullptr || port == 0) {
    std::cerr << "ScriptedGatewayServer: cannot listen on 127.0.0.1\n";
    std::abort();
  }
  target_ = "127.0.0.1:" + std::to_string(port);
}

ScriptedGatewayServer::~ScriptedGatewayServer() {
  server_->Shutdown(std::chrono::system_clock::now());
}

}  // namespace userpilot::gateway::client::testing
