// The gateway's job RPCs in-process against the in-process emulator, for the jobs_* tests.
//
// Built from the real parts (CurlHttpClient, the upstream stack of MakeUpstreamStack,
// ThreadScheduler, JobWatchRegistry, Importer, GatewayService, GatewayServer on port 0) in the
// order Gateway::Start uses, but without budgets and retries and with the components' full option
// structs (poll growth, conflict retry interval, ...), which flags do not all reach, so each
// test sets exactly the behaviour it checks. The composed path (flags, budgets, retries) is
// covered by gateway_integration_test. Shutdown() follows Gateway::Shutdown's drain order.
#ifndef USERPILOT_GATEWAY_TESTS_INTEGRATION_JOBS_TEST_ENV_H_
#define USERPILOT_GATEWAY_TESTS_INTEGRATION_JOBS_TEST_ENV_H_

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "service/app/upstream_stack.h"
#include "service/common/scheduler.h"
#include "service/http/curl_http_client.h"
#include "service/jobs/import/importer.h"
#include "service/jobs/watch/job_watch_registry.h"
#include "service/server/gateway_server.h"
#include "service/server/gateway_service.h"
#include "service/validation/request_validator.h"
#include "tests/emulator/emulator.h"
#include "userpilot/gateway/v1/gateway.grpc.pb.h"

namespace userpilot::gateway::testing {

inline constexpr char kJobsApiKey[] = "jobs-it-key-51c2";

struct JobsEnvOptions {
  absl::Duration job_step = absl::Milliseconds(200);
  JobWatchOptions watch;
  ImportOptions import;
};

class JobsTestEnv {
 public:
  explicit JobsTestEnv(JobsEnvOptions options) {
    EmulatorOptions emulator_options;
    emulator_options.api_key = kJobsApiKey;
    emulator_options.job_step = options.job_step;
    auto emulator = Emulator::Start(emulator_options);
    EXPECT_TRUE(emulator.ok()) << emulator.status();
    emulator_ = *std::move(emulator);

    auto http = CurlHttpClient::Create({});
    EXPECT_TRUE(http.ok()) << http.status();
    http_ = *std::move(http);
    scheduler_ = std::make_unique<ThreadScheduler>();
    UpstreamStackOptions stack;
    stack.upstream.base_url = emulator_->base_url();
    stack.upstream.api_key = kJobsApiKey;
    stack.upstream.request_timeout = absl::Seconds(5);
    stack.retry = std::nullopt;  // One attempt per call: the tests see Userpilot's answers.
    stub_ = MakeUpstreamStack(std::move(stack), *http_, *scheduler_).stub;
    validator_ = std::make_unique<RequestValidator>();
    registry_ = std::make_unique<JobWatchRegistry>(*stub_, *scheduler_, options.watch);
    importer_ = std::make_unique<Importer>(*stub_, *registry_, *scheduler_, options.import);
    service_ = std::make_unique<GatewayService>(*validator_, *stub_, GatewayServiceOptions(),
                                                JobServices{registry_.get(), importer_.get()});
    GatewayServerOptions server_options;
    server_options.listen = "127.0.0.1:0";
    server_options.reflection = false;
    auto server = GatewayServer::Start(*service_, server_options);
    EXPECT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  ~JobsTestEnv() { Shutdown(); }

  // The drain order: watches end (UNAVAILABLE) first, so the server need not wait for them;
  // then the server drains unary calls and imports; then the importer's workers, the
  // scheduler's timers and the HTTP client stop.
  void Shutdown() {
    if (server_ == nullptr) return;
    registry_->Shutdown();
    server_->Shutdown(absl::Now() + absl::Seconds(5));
    importer_->Shutdown();
    http_->Shutdown();
    server_.reset();
    service_.reset();
    importer_.reset();
    registry_.reset();
    scheduler_.reset();
  }

  Emulator& emulator() { return *emulator_; }
  JobWatchRegistry& registry() { return *registry_; }
  Importer& importer() { return *importer_; }

  std::shared_ptr<grpc::Channel> Channel(const grpc::ChannelArguments& args = {}) const {
    return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                     grpc::InsecureChannelCredentials(), args);
  }
  std::unique_ptr<v1::UserpilotGateway::Stub> Client() const {
    return v1::UserpilotGateway::NewStub(Channel());
  }

 private:
  std::unique_ptr<Emulator> emulator_;
  std::unique_ptr<CurlHttpClient> http_;
  std::unique_ptr<ThreadScheduler> scheduler_;
  std::shared_ptr<UserpilotStub> stub_;
  std::unique_ptr<RequestValidator> validator_;
  std::unique_ptr<JobWatchRegistry> registry_;
  std::unique_ptr<Importer> importer_;
  std::unique_ptr<GatewayService> service_;
  std::unique_ptr<GatewayServer> server_;
};

// A context with a deadline and the x-caller metadata.
inline std::unique_ptr<grpc::ClientContext> JobsContext(
    absl::Duration timeout = absl::Seconds(10)) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  context->AddMetadata("x-caller", "jobs-test");
  return context;
}

// Polls `condition` every 5 ms until it holds or `timeout` passes.
template <typename Condition>
bool WaitUntil(Condition condition, absl::Duration timeout = absl::Seconds(5)) {
  const absl::Time limit = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() > limit) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

}  // namespace userpilot::gateway::testing

#endif  // USERPILOT_GATEWAY_TESTS_INTEGRATION_JOBS_TEST_ENV_H_
