// userpilot::gateway::client::Client: the C++ client of userpilot-gateway.
//
// A small synchronous layer over the generated stub of userpilot.gateway.v1.UserpilotGateway
// that does what every caller would otherwise repeat:
// - a deadline on every call: the caller's, or a default per kind of RPC (DefaultDeadlines);
// - the caller's name as `x-caller` metadata (the gateway's fair queuing and logs use it);
// - TLS, a client certificate and a bearer token when the gateway asks for them
//   (ClientOptions::tls, ClientOptions::bearer_token; credentials.h reads them from files);
// - retries of UNAVAILABLE and RESOURCE_EXHAUSTED, after the server's RetryInfo delay when it
//   sends one (else truncated exponential backoff with jitter), at most RetryOptions::max_attempts
//   attempts and never past the deadline. Whether a method may be repeated is read from the
//   contract: the `idempotency_level` option of each RPC in gateway.proto. IDEMPOTENT and
//   NO_SIDE_EFFECTS methods are retried on both codes; the others (TrackEvent, the bulk
//   identifies, ImportData) on UNAVAILABLE only when the gateway says the request certainly
//   never reached Userpilot (ErrorInfo request_may_have_been_sent == "false"), and on
//   RESOURCE_EXHAUSTED with details (a refusal, so nothing happened);
// - typed error details (error_details.h);
// - WatchJob that reconnects after UNAVAILABLE (a replica draining, a connection aged out) and
//   does not repeat a state it already delivered.
//
//   userpilot::gateway::client::ClientOptions options;
//   options.caller = "billing";
//   auto client = userpilot::gateway::client::Client::Connect("userpilot-gateway:50051", options);
//   userpilot::gateway::v1::IdentifyUserRequest request;
//   request.set_user_id("u-1");
//   auto result = client.IdentifyUser(request);
//   if (!result.ok()) std::cerr << ErrorDetails::Describe(result.status()) << "\n";
//
// Thread-safety: a Client is thread-safe and cheap to share; calls block the calling thread only.
#ifndef USERPILOT_GATEWAY_CLIENTS_CPP_CLIENT_H_
#define USERPILOT_GATEWAY_CLIENTS_CPP_CLIENT_H_

#include <chrono>
#include <functional>
#include <istream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "clients/cpp/credentials.h"
#include "clients/cpp/error_details.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "grpcpp/channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/status.h"
#include "userpilot/gateway/v1/gateway.grpc.pb.h"

namespace userpilot::gateway::client {

// When and how often a failed call is tried again.
struct RetryOptions {
  // Attempts in all, the first included; 1 turns retries off.
  int max_attempts = 4;
  // Backoff when the server sends no RetryInfo: initial, growing by `multiplier` up to `max`,
  // each wait drawn uniformly from [backoff / 2, backoff].
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{5000};
  double backoff_multiplier = 2.0;
  // A RetryInfo delay longer than this is not waited for: the call fails with the server's
  // status instead (the caller decides whether to come back much later).
  std::chrono::milliseconds max_retry_delay{30000};
};

// Deadlines of calls that set none (CallOptions), by kind of RPC. The kind comes from each
// method's descriptor (Client::PolicyFor), so a method added to the contract gets one too.
struct DefaultDeadlines {
  // Unary methods with side effects that answer anything but a Job: IdentifyUser,
  // IdentifyCompany, TrackEvent, DeleteUsers, DeleteCompanies.
  std::chrono::milliseconds write{10000};
  // Unary methods with side effects that answer a Job, i.e. start one: BulkIdentifyUsers,
  // BulkIdentifyCompanies (up to 10,000 rows, and perhaps a wait for the gateway's job lane).
  std::chrono::milliseconds bulk{60000};
  // Unary methods without side effects (NO_SIDE_EFFECTS): GetJob, ListJobs.
  std::chrono::milliseconds read{10000};
  // Client-streaming methods: ImportData (a whole file upload).
  std::chrono::milliseconds import{600000};
  // Server-streaming methods: WatchJob and WatchJobs, reconnections included.
  std::chrono::milliseconds watch{1800000};
};

struct ClientOptions {
  // Sent as `x-caller` on every call: up to 64 bytes of [A-Za-z0-9._-]. Empty: not sent.
  std::string caller;
  DefaultDeadlines deadlines;
  RetryOptions retry;
  // HTTP/2 keepalive pings on connections with calls in flight (0: none). Pings detect a dead
  // connection (a replica gone without closing) during long WatchJob streams; the server must
  // allow the interval (see deploy/kubernetes/README.md), or it closes the connection.
  std::chrono::milliseconds keepalive_time{0};
  // TLS towards the gateway, with a client certificate when the gateway requires one. Unset:
  // plaintext. Used by Connect (a channel made elsewhere brings its own credentials; build it
  // with ChannelCredentialsFor and ChannelArgumentsFor).
  std::optional<TlsOptions> tls;
  // Sent as `authorization: Bearer <token>` on every call when not empty (the gateway's
  // --caller_tokens_file). As gRPC call credentials, which gRPC sends only over TLS: over
  // plaintext a call fails with UNAUTHENTICATED and the token stays here, unless
  // token_over_plaintext says the hop is protected otherwise (a service-mesh sidecar that
  // encrypts it) or is local development. This library never logs or returns the token.
  std::string bearer_token;
  bool token_over_plaintext = false;
  // Replaces sleeping between attempts (for tests). Default: std::this_thread::sleep_for.
  std::function<void(std::chrono::nanoseconds)> sleep;
};

// Per-call settings; every field is optional.
struct CallOptions {
  // Relative deadline; zero: the RPC's default (DefaultDeadlines). `deadline` wins if set.
  std::chrono::milliseconds timeout{0};
  std::optional<std::chrono::system_clock::time_point> deadline;
  // Overrides RetryOptions::max_attempts for this call.
  std::optional<int> max_attempts;
  // Extra request metadata (lower-case keys).
  std::vector<std::pair<std::string, std::string>> metadata;

  // Options with just a relative deadline: client.GetJob(id, CallOptions::WithTimeout(2s)).
  static CallOptions WithTimeout(std::chrono::milliseconds timeout) {
    CallOptions options;
    options.timeout = timeout;
    return options;
  }
};

// The outcome of one call: the server's answer, or the status of the last attempt.
template <typename T>
class Result {
 public:
  Result(grpc::Status status, int attempts) : status_(std::move(status)), attempts_(attempts) {}
  Result(T value, int attempts) : value_(std::move(value)), attempts_(attempts) {}

  bool ok() const { return status_.ok(); }
  const grpc::Status& status() const { return status_; }
  // The decoded error details of status().
  ErrorDetails details() const { return ErrorDetails(status_); }
  // The answer; only meaningful when ok().
  const T& value() const { return value_; }
  T& value() { return value_; }
  const T* operator->() const { return &value_; }
  const T& operator*() const { return value_; }
  // How many attempts the call took (1 without retries).
  int attempts() const { return attempts_; }

 private:
  grpc::Status status_;
  T value_;
  int attempts_ = 0;
};

namespace v1 = ::userpilot::gateway::v1;

class Client {
 public:
  // A client of the gateway at `target` ("host:port", or any gRPC target such as
  // "dns:///userpilot-gateway.userpilot-gateway.svc:50051"): over `credentials` when given,
  // else over TLS when options.tls is set, else over plaintext.
  static Client Connect(const std::string& target, ClientOptions options = {},
                        std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr);

  // A client over an existing channel (build it with ChannelArgumentsFor to keep the defaults).
  explicit Client(std::shared_ptr<grpc::Channel> channel, ClientOptions options = {});

  // The unary RPCs (see proto/userpilot/gateway/v1/gateway.proto for what each does).
  Result<v1::IdentifyUserResponse> IdentifyUser(const v1::IdentifyUserRequest& request,
                                                const CallOptions& options = {});
  Result<v1::IdentifyCompanyResponse> IdentifyCompany(const v1::IdentifyCompanyRequest& request,
                                                      const CallOptions& options = {});
  Result<v1::Job> BulkIdentifyUsers(const v1::BulkIdentifyUsersRequest& request,
                                    const CallOptions& options = {});
  Result<v1::Job> BulkIdentifyCompanies(const v1::BulkIdentifyCompaniesRequest& request,
                                        const CallOptions& options = {});
  Result<v1::TrackEventResponse> TrackEvent(const v1::TrackEventRequest& request,
                                            const CallOptions& options = {});
  Result<v1::ListJobsResponse> ListJobs(const CallOptions& options = {});
  Result<v1::Job> GetJob(const std::string& job_id, const CallOptions& options = {});
  Result<v1::DeleteUsersResponse> DeleteUsers(const v1::DeleteUsersRequest& request,
                                              const CallOptions& options = {});
  Result<v1::DeleteCompaniesResponse> DeleteCompanies(const v1::DeleteCompaniesRequest& request,
                                                      const CallOptions& options = {});

  // Any unary method by descriptor (what userpilotctl needs): the same deadlines, metadata and
  // retries as the typed methods, by the method's PolicyFor. `response` must be of the method's
  // output type. Returns the final status; `attempts` (optional) receives the count.
  grpc::Status Call(const google::protobuf::MethodDescriptor& method,
                    const google::protobuf::Message& request, google::protobuf::Message* response,
                    const CallOptions& options = {}, int* attempts = nullptr);

  // Streams the states of one job to `on_update` (first the current state, then each change;
  // the stream ends after a COMPLETED or FAILED state). `on_update` returns false to stop
  // watching early. After UNAVAILABLE, or DEADLINE_EXCEEDED from the gateway's own cap while
  // this call's deadline still runs, the watch reconnects (within the deadline and retry
  // bounds) and skips a first state equal to the last one delivered. The result holds the last
  // state delivered; a non-OK status when the watch failed.
  Result<v1::Job> WatchJob(const std::string& job_id,
                           const std::function<bool(const v1::Job&)>& on_update,
                           const CallOptions& options = {});

  // Streams every job change of the account to `on_job` until it returns false, the deadline
  // passes (DEADLINE_EXCEEDED) or the server ends the stream. Reconnects after UNAVAILABLE.
  grpc::Status WatchJobs(bool include_existing, const std::function<bool(const v1::Job&)>& on_job,
                         const CallOptions& options = {});

  // Uploads `file` (CSV or NDJSON, as `header` says) in chunks of `chunk_bytes` and returns the
  // job Userpilot created. header.size_bytes is filled in from a seekable stream when unset.
  // Never retried: the stream is consumed. CANCELLED if `file` cannot be read to its end.
  Result<v1::Job> ImportData(const v1::ImportHeader& header, std::istream& file,
                             const CallOptions& options = {}, size_t chunk_bytes = 256 * 1024);

  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

  // The channel arguments Connect uses: the user agent, keepalive when configured, and the TLS
  // server name when options.tls sets one.
  static grpc::ChannelArguments ChannelArgumentsFor(const ClientOptions& options);

  // What a method's descriptor says about calling it: its default deadline (by kind, see
  // DefaultDeadlines) and whether it may be repeated after a failure that may have reached
  // Userpilot (its idempotency_level is IDEMPOTENT or NO_SIDE_EFFECTS). Exposed for tests.
  struct MethodPolicy {
    std::chrono::milliseconds deadline;
    bool idempotent;
  };
  static MethodPolicy PolicyFor(const google::protobuf::MethodDescriptor& method,
                                const DefaultDeadlines& deadlines);

  // How long to wait before retrying a call that failed with `status`, or nullopt when it must
  // not be retried (see the file comment for the rules). `backoff` is the current backoff
  // ceiling; `jitter` in [0, 1] places the wait within it. Exposed for tests.
  static std::optional<std::chrono::nanoseconds> RetryDelay(const grpc::Status& status,
                                                            bool idempotent,
                                                            std::chrono::nanoseconds backoff,
                                                            double jitter,
                                                            const RetryOptions& options);

 private:
  std::chrono::system_clock::time_point DeadlineFor(const CallOptions& options,
                                                    std::chrono::milliseconds fallback) const;
  void Prepare(grpc::ClientContext& context, const CallOptions& options,
               std::chrono::system_clock::time_point deadline) const;
  // Waits before attempt `attempt` + 1 if the status allows another one in time; false if not.
  bool WaitToRetry(const grpc::Status& status, bool idempotent, int attempt, int max_attempts,
                   std::chrono::nanoseconds& backoff,
                   std::chrono::system_clock::time_point deadline);
  double Jitter();
  template <typename Response>
  Result<Response> Unary(const char* method, const google::protobuf::Message& request,
                         const CallOptions& options);
  template <typename Request>
  grpc::Status Watch(const char* method, const Request& request,
                     const std::function<bool(const v1::Job&)>& on_job, const CallOptions& options,
                     std::optional<v1::Job>* last, int* attempts);

  std::shared_ptr<grpc::Channel> channel_;
  ClientOptions options_;
  std::unique_ptr<v1::UserpilotGateway::Stub> stub_;
  const google::protobuf::ServiceDescriptor* service_;
  // options_.bearer_token as gRPC call credentials; null without a token, or when it is sent
  // as plain metadata (token_over_plaintext).
  std::shared_ptr<grpc::CallCredentials> token_credentials_;
  struct Rng {
    std::mutex mu;
    std::minstd_rand engine;  // guarded by mu
  };
  std::unique_ptr<Rng> rng_;  // a pointer, so that Client stays movable
};

}  // namespace userpilot::gateway::client

#endif  // USERPILOT_GATEWAY_CLIENTS_CPP_CLIENT_H_
