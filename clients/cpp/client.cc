#include "clients/cpp/client.h"

#include <algorithm>
#include <condition_variable>
#include <thread>

#include "google/protobuf/util/message_differencer.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/slice.h"
#include "grpcpp/support/stub_options.h"

namespace userpilot::gateway::client {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using Clock = std::chrono::system_clock;

// UPGW_CLIENT_VERSION is the CMake project's version (clients/cpp/CMakeLists.txt).
constexpr char kUserAgent[] = "userpilot-gateway-cpp-client/" UPGW_CLIENT_VERSION;

// Same state apart from elapsed_time, which grows on every read: after a reconnection the first
// state is skipped when it is the one delivered last.
bool SameJobState(const v1::Job& a, const v1::Job& b) {
  v1::Job x = a;
  v1::Job y = b;
  x.clear_elapsed_time();
  y.clear_elapsed_time();
  return google::protobuf::util::MessageDifferencer::Equals(x, y);
}

grpc::Status Serialize(const google::protobuf::Message& message, grpc::ByteBuffer* buffer) {
  std::string bytes;
  if (!message.SerializeToString(&bytes)) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the request cannot be serialized: " + message.GetTypeName());
  }
  grpc::Slice slice(bytes);
  *buffer = grpc::ByteBuffer(&slice, 1);
  return grpc::Status::OK;
}

grpc::Status Parse(const grpc::ByteBuffer& buffer, google::protobuf::Message* message) {
  std::vector<grpc::Slice> slices;
  grpc::Status dumped = buffer.Dump(&slices);
  if (!dumped.ok()) return dumped;
  std::string bytes;
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  if (!message->ParseFromString(bytes)) {
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        "the answer is not a valid " + message->GetTypeName());
  }
  return grpc::Status::OK;
}

}  // namespace

Client Client::Connect(const std::string& target, ClientOptions options,
                       std::shared_ptr<grpc::ChannelCredentials> credentials) {
  if (credentials == nullptr) {
    credentials = options.tls.has_value() ? ChannelCredentialsFor(*options.tls)
                                          : grpc::InsecureChannelCredentials();
  }
  auto channel = grpc::CreateCustomChannel(target, credentials, ChannelArgumentsFor(options));
  return Client(std::move(channel), std::move(options));
}

Client::Client(std::shared_ptr<grpc::Channel> channel, ClientOptions options)
    : channel_(std::move(channel)),
      options_(std::move(options)),
      stub_(v1::UserpilotGateway::NewStub(channel_)),
      service_(
          v1::IdentifyUserRequest::descriptor()->file()->FindServiceByName("UserpilotGateway")),
      rng_(std::make_unique<Rng>()) {
  rng_->engine.seed(std::random_device()());
  if (!options_.bearer_token.empty() && !options_.token_over_plaintext) {
    token_credentials_ = grpc::AccessTokenCredentials(options_.bearer_token);
  }
  if (!options_.sleep) {
    options_.sleep = [](nanoseconds d) { std::this_thread::sleep_for(d); };
  }
}

grpc::ChannelArguments Client::ChannelArgumentsFor(const ClientOptions& options) {
  grpc::ChannelArguments args;
  args.SetString(GRPC_ARG_PRIMARY_USER_AGENT_STRING, kUserAgent);
  if (options.keepalive_time.count() > 0) {
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(options.keepalive_time.count()));
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  }
  if (options.tls.has_value() && !options.tls->server_name.empty()) {
    args.SetSslTargetNameOverride(options.tls->server_name);
  }
  return args;
}

Client::MethodPolicy Client::PolicyFor(const google::protobuf::MethodDescriptor& method,
                                       const DefaultDeadlines& deadlines) {
  using Options = google::protobuf::MethodOptions;
  const Options::IdempotencyLevel level = method.options().idempotency_level();
  const bool idempotent = level == Options::IDEMPOTENT || level == Options::NO_SIDE_EFFECTS;
  if (method.client_streaming()) return {deadlines.import, idempotent};
  if (method.server_streaming()) return {deadlines.watch, idempotent};
  if (level == Options::NO_SIDE_EFFECTS) return {deadlines.read, idempotent};
  // A unary call with side effects that answers a Job has started one.
  if (method.output_type() == v1::Job::descriptor()) return {deadlines.bulk, idempotent};
  return {deadlines.write, idempotent};
}

Clock::time_point Client::DeadlineFor(const CallOptions& options, milliseconds fallback) const {
  if (options.deadline.has_value()) return *options.deadline;
  return Clock::now() + (options.timeout.count() > 0 ? options.timeout : fallback);
}

void Client::Prepare(grpc::ClientContext& context, const CallOptions& options,
                     Clock::time_point deadline) const {
  context.set_deadline(deadline);
  if (!options_.caller.empty()) context.AddMetadata("x-caller", options_.caller);
  if (token_credentials_ != nullptr) {
    context.set_credentials(token_credentials_);
  } else if (!options_.bearer_token.empty()) {
    context.AddMetadata("authorization", "Bearer " + options_.bearer_token);
  }
  for (const auto& [key, value] : options.metadata) context.AddMetadata(key, value);
}

double Client::Jitter() {
  std::lock_guard<std::mutex> lock(rng_->mu);
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng_->engine);
}

std::optional<nanoseconds> Client::RetryDelay(const grpc::Status& status, bool idempotent,
                                              nanoseconds backoff, double jitter,
                                              const RetryOptions& options) {
  ErrorDetails details(status);
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      // The request may have reached Userpilot: repeating a non-idempotent one could record it
      // twice, unless the gateway knows it never left.
      if (!idempotent && details.request_may_have_been_sent()) return std::nullopt;
      break;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      // Refused before it had an effect (a budget, Userpilot's 429, a full queue). Without any
      // detail it is gRPC's own limit (a message too large): the same call fails again.
      if (details.retry_info() == nullptr && details.error_info() == nullptr) return std::nullopt;
      break;
    default:
      return std::nullopt;
  }
  if (std::optional<nanoseconds> delay = details.retry_delay()) {
    if (*delay > options.max_retry_delay) return std::nullopt;
    // At least the server's delay, spread by up to 20% so that callers refused together do not
    // come back together.
    return *delay + std::chrono::duration_cast<nanoseconds>(*delay * (0.2 * jitter));
  }
  return std::chrono::duration_cast<nanoseconds>(backoff * (0.5 + 0.5 * jitter));
}

bool Client::WaitToRetry(const grpc::Status& status, bool idempotent, int attempt, int max_attempts,
                         nanoseconds& backoff, Clock::time_point deadline) {
  if (attempt >= max_attempts) return false;
  std::optional<nanoseconds> delay =
      RetryDelay(status, idempotent, backoff, Jitter(), options_.retry);
  if (!delay.has_value()) return false;
  // Never sleep into (or past) the deadline: the next attempt would have no time left.
  if (Clock::now() + *delay >= deadline) return false;
  options_.sleep(*delay);
  backoff = std::min<nanoseconds>(
      std::chrono::duration_cast<nanoseconds>(backoff * options_.retry.backoff_multiplier),
      options_.retry.max_backoff);
  return true;
}

grpc::Status Client::Call(const google::protobuf::MethodDescriptor& method,
                          const google::protobuf::Message& request,
                          google::protobuf::Message* response, const CallOptions& options,
                          int* attempts) {
  if (method.client_streaming() || method.server_streaming()) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                        method.name() + " is a streaming method; Call() is for unary methods");
  }
  const MethodPolicy policy = PolicyFor(method, options_.deadlines);
  const Clock::time_point deadline = DeadlineFor(options, policy.deadline);
  const int max_attempts = std::max(1, options.max_attempts.value_or(options_.retry.max_attempts));
  const std::string path = "/" + method.service()->full_name() + "/" + method.name();
  grpc::GenericStub stub(channel_);
  nanoseconds backoff = options_.retry.initial_backoff;
  grpc::Status status;
  int attempt = 0;
  do {
    ++attempt;
    grpc::ByteBuffer request_buffer;
    status = Serialize(request, &request_buffer);
    if (!status.ok()) break;
    grpc::ClientContext context;
    Prepare(context, options, deadline);
    grpc::ByteBuffer response_buffer;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    stub.UnaryCall(&context, path, grpc::StubOptions(), &request_buffer, &response_buffer,
                   [&](grpc::Status s) {
                     std::lock_guard<std::mutex> lock(mu);
                     status = std::move(s);
                     done = true;
                     cv.notify_one();
                   });
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return done; });
    }
    if (status.ok()) {
      status = Parse(response_buffer, response);
      break;
    }
  } while (WaitToRetry(status, policy.idempotent, attempt, max_attempts, backoff, deadline));
  if (attempts != nullptr) *attempts = attempt;
  return status;
}

template <typename Response>
Result<Response> Client::Unary(const char* method, const google::protobuf::Message& request,
                               const CallOptions& options) {
  Response response;
  int attempts = 0;
  grpc::Status status =
      Call(*service_->FindMethodByName(method), request, &response, options, &attempts);
  if (!status.ok()) return Result<Response>(std::move(status), attempts);
  return Result<Response>(std::move(response), attempts);
}

Result<v1::IdentifyUserResponse> Client::IdentifyUser(const v1::IdentifyUserRequest& request,
                                                      const CallOptions& options) {
  return Unary<v1::IdentifyUserResponse>("IdentifyUser", request, options);
}

Result<v1::IdentifyCompanyResponse> Client::IdentifyCompany(
    const v1::IdentifyCompanyRequest& request, const CallOptions& options) {
  return Unary<v1::IdentifyCompanyResponse>("IdentifyCompany", request, options);
}

Result<v1::Job> Client::BulkIdentifyUsers(const v1::BulkIdentifyUsersRequest& request,
                                          const CallOptions& options) {
  return Unary<v1::Job>("BulkIdentifyUsers", request, options);
}

Result<v1::Job> Client::BulkIdentifyCompanies(const v1::BulkIdentifyCompaniesRequest& request,
                                              const CallOptions& options) {
  return Unary<v1::Job>("BulkIdentifyCompanies", request, options);
}

Result<v1::TrackEventResponse> Client::TrackEvent(const v1::TrackEventRequest& request,
                                                  const CallOptions& options) {
  return Unary<v1::TrackEventResponse>("TrackEvent", request, options);
}

Result<v1::ListJobsResponse> Client::ListJobs(const CallOptions& options) {
  return Unary<v1::ListJobsResponse>("ListJobs", v1::ListJobsRequest(), options);
}

Result<v1::Job> Client::GetJob(const std::string& job_id, const CallOptions& options) {
  v1::GetJobRequest request;
  request.set_job_id(job_id);
  return Unary<v1::Job>("GetJob", request, options);
}

Result<v1::DeleteUsersResponse> Client::DeleteUsers(const v1::DeleteUsersRequest& request,
                                                    const CallOptions& options) {
  return Unary<v1::DeleteUsersResponse>("DeleteUsers", request, options);
}

Result<v1::DeleteCompaniesResponse> Client::DeleteCompanies(
    const v1::DeleteCompaniesRequest& request, const CallOptions& options) {
  return Unary<v1::DeleteCompaniesResponse>("DeleteCompanies", request, options);
}

template <typename Request>
grpc::Status Client::Watch(const char* method, const Request& request,
                           const std::function<bool(const v1::Job&)>& on_job,
                           const CallOptions& options, std::optional<v1::Job>* last,
                           int* attempts) {
  const MethodPolicy policy = PolicyFor(*service_->FindMethodByName(method), options_.deadlines);
  const Clock::time_point deadline = DeadlineFor(options, policy.deadline);
  const int max_attempts = std::max(1, options.max_attempts.value_or(options_.retry.max_attempts));
  nanoseconds backoff = options_.retry.initial_backoff;
  grpc::Status status;
  int failures = 0;  // consecutive attempts that delivered nothing new
  *attempts = 0;
  for (;;) {
    ++*attempts;
    ++failures;
    grpc::ClientContext context;
    Prepare(context, options, deadline);
    std::unique_ptr<grpc::ClientReader<v1::Job>> reader;
    if constexpr (std::is_same_v<Request, v1::WatchJobRequest>) {
      reader = stub_->WatchJob(&context, request);
    } else {
      reader = stub_->WatchJobs(&context, request);
    }
    v1::Job job;
    bool first = true;
    bool stopped = false;
    while (reader->Read(&job)) {
      // WatchJob's first state after a reconnection repeats the last one delivered.
      bool repeat = first && last->has_value() && std::is_same_v<Request, v1::WatchJobRequest> &&
                    SameJobState(**last, job);
      first = false;
      if (repeat) continue;
      failures = 0;
      backoff = options_.retry.initial_backoff;
      *last = job;
      if (!on_job(job)) {
        stopped = true;
        context.TryCancel();
        break;
      }
    }
    status = reader->Finish();
    if (stopped) return grpc::Status::OK;
    if (status.ok()) return status;
    // Watches have no side effects (NO_SIDE_EFFECTS): reconnecting is safe. Attempts count only
    // consecutive failures, so a long watch survives any number of replica restarts that each left
    // it progressing. The gateway caps a call's deadline (--max_deadline): a stream it ended while
    // ours still runs is resumed like an UNAVAILABLE one.
    grpc::Status decision = status;
    if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
        Clock::now() + std::chrono::seconds(1) < deadline) {
      decision = grpc::Status(grpc::StatusCode::UNAVAILABLE, status.error_message());
    }
    if (!WaitToRetry(decision, policy.idempotent, failures, max_attempts, backoff, deadline)) {
      return status;
    }
  }
}

Result<v1::Job> Client::WatchJob(const std::string& job_id,
                                 const std::function<bool(const v1::Job&)>& on_update,
                                 const CallOptions& options) {
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  std::optional<v1::Job> last;
  int attempts = 0;
  grpc::Status status = Watch("WatchJob", request, on_update, options, &last, &attempts);
  if (!status.ok()) return Result<v1::Job>(std::move(status), attempts);
  if (!last.has_value()) {
    return Result<v1::Job>(
        grpc::Status(grpc::StatusCode::INTERNAL, "the watch ended without sending the job"),
        attempts);
  }
  return Result<v1::Job>(std::move(*last), attempts);
}

grpc::Status Client::WatchJobs(bool include_existing,
                               const std::function<bool(const v1::Job&)>& on_job,
                               const CallOptions& options) {
  v1::WatchJobsRequest request;
  request.set_include_existing(include_existing);
  std::optional<v1::Job> last;
  int attempts = 0;
  return Watch("WatchJobs", request, on_job, options, &last, &attempts);
}

Result<v1::Job> Client::ImportData(const v1::ImportHeader& header, std::istream& file,
                                   const CallOptions& options, size_t chunk_bytes) {
  grpc::ClientContext context;
  const MethodPolicy policy =
      PolicyFor(*service_->FindMethodByName("ImportData"), options_.deadlines);
  Prepare(context, options, DeadlineFor(options, policy.deadline));
  v1::Job job;
  std::unique_ptr<grpc::ClientWriter<v1::ImportDataRequest>> writer =
      stub_->ImportData(&context, &job);
  v1::ImportDataRequest message;
  *message.mutable_header() = header;
  // Tell the gateway the size when the stream knows it: it then refuses an oversized file at
  // once, and a truncated upload is never sent on to Userpilot.
  if (!header.has_size_bytes()) {
    std::streampos here = file.tellg();
    if (here != std::streampos(-1) && file.seekg(0, std::ios::end)) {
      std::streampos end = file.tellg();
      file.seekg(here);
      if (end != std::streampos(-1) && end >= here) {
        message.mutable_header()->set_size_bytes(static_cast<int64_t>(end - here));
      }
    }
    file.clear(file.rdstate() & ~std::ios::failbit);
  }
  bool open = writer->Write(message);
  std::string buffer(std::max<size_t>(chunk_bytes, 1), '\0');
  bool read_failed = false;
  while (open) {
    file.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    std::streamsize n = file.gcount();
    if (n > 0) {
      message.set_chunk(buffer.data(), static_cast<size_t>(n));
      open = writer->Write(message);
    }
    if (file.eof()) break;
    if (!file) {
      read_failed = true;
      context.TryCancel();
      break;
    }
  }
  if (open && !read_failed) writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (read_failed) {
    return Result<v1::Job>(grpc::Status(grpc::StatusCode::CANCELLED,
                                        "the file could not be read; the import was cancelled"),
                           1);
  }
  if (!status.ok()) return Result<v1::Job>(std::move(status), 1);
  return Result<v1::Job>(std::move(job), 1);
}

}  // namespace userpilot::gateway::client
