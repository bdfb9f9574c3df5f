// upgw-alloc-count: heap allocations per unary IdentifyUser call on the gateway's own path,
// counted by replacing the global operator new (a count, not a time: the machine's load does
// not change it). Prints allocations and bytes per call for each piece of the path the gateway
// runs between gRPC handing over the decoded request and the answer going back:
//
//   validate      RequestValidator::Validate
//   body          RequestBody (the JSON body, request_json_writer.h)
//   (protobuf)    the same body from protobuf's JSON printer (ProtobufRequestBody), to compare
//   stack         the whole upstream stack the gateway builds (MakeUpstreamStack: retries,
//                 budgets with their fast path, metrics, HttpUserpilotStub) down to an HTTP
//                 client that answers 202 at once, and back up to the call's callback
//   access_log    AccessLog::Record, into a Logger with a queue, as the gateway runs it
//
// gRPC's own share (decoding, the reactor, the answer's serialization) and libcurl's are not
// counted here: BENCHMARKS.md's profile section lists them. Usage: upgw-alloc-count [calls].
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "service/app/upstream_stack.h"
#include "service/logging/access_log.h"
#include "service/logging/logger.h"
#include "service/metrics/gateway_metrics.h"
#include "service/metrics/metrics_registry.h"
#include "service/ratelimit/budgets.h"
#include "service/upstream/json_mapping.h"
#include "service/validation/request_validator.h"

namespace {

std::atomic<bool> counting{false};
std::atomic<uint64_t> allocations{0};
std::atomic<uint64_t> allocated_bytes{0};

void* Allocate(std::size_t size) {
  if (counting.load(std::memory_order_relaxed)) {
    allocations.fetch_add(1, std::memory_order_relaxed);
    allocated_bytes.fetch_add(size, std::memory_order_relaxed);
  }
  if (size == 0) size = 1;
  void* p = std::malloc(size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

}  // namespace

void* operator new(std::size_t size) { return Allocate(size); }
void* operator new[](std::size_t size) { return Allocate(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return Allocate(size);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return Allocate(size);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace userpilot::gateway {
namespace {

// Answers every request 202 with Userpilot's x-request-id, from the thread that calls
// CompleteNext() (the HttpClient contract: never inside Send()).
class AnsweringHttpClient final : public HttpClient {
 public:
  void Send(HttpRequest request, Callback done) override {
    request_ = std::move(request);
    done_ = std::move(done);
  }
  bool CompleteNext() {
    if (!done_) return false;
    HttpResult result;
    result.response.status_code = 202;
    result.response.headers = {{"x-request-id", "QHQTu0Re000000000001"}};
    Callback done = std::move(done_);
    done_ = nullptr;
    std::move(done)(std::move(result));
    return true;
  }

 private:
  HttpRequest request_;
  Callback done_;
};

v1::IdentifyUserRequest TypicalIdentify() {
  v1::IdentifyUserRequest request;
  request.set_user_id("user-8c1f2a");
  auto& metadata = *request.mutable_metadata()->mutable_fields();
  metadata["name"].set_string_value("Zoë Example");
  metadata["email"].set_string_value("zoe@example.com");
  metadata["plan"].set_string_value("pro");
  metadata["signed_up_at"].set_number_value(1706000000123);
  metadata["beta"].set_bool_value(true);
  request.mutable_company()->set_company_id("company-42");
  (*request.mutable_company()->mutable_metadata()->mutable_fields())["seats"].set_number_value(12);
  return request;
}

struct Count {
  double allocations;
  double bytes;
};

template <typename F>
Count PerCall(int calls, F&& one_call) {
  for (int i = 0; i < 100; ++i) one_call();  // Warm-up: lazily built state, grown buffers.
  allocations = 0;
  allocated_bytes = 0;
  counting = true;
  for (int i = 0; i < calls; ++i) one_call();
  counting = false;
  return {static_cast<double>(allocations.load()) / calls,
          static_cast<double>(allocated_bytes.load()) / calls};
}

int Run(int calls) {
  const v1::IdentifyUserRequest request = TypicalIdentify();

  RequestValidator validator;
  const Count validate = PerCall(calls, [&] {
    if (!validator.Validate(request).ok()) std::abort();
  });

  const Count body = PerCall(calls, [&] {
    if (RequestBody(request).empty()) std::abort();
  });
  const Count protobuf_body = PerCall(calls, [&] {
    if (ProtobufRequestBody(request).empty()) std::abort();
  });

  ThreadScheduler scheduler;
  MetricsRegistry registry;
  GatewayMetrics metrics(registry.registry());
  RateLimitOptions rates;
  rates.identify.rate = {"identify", 1000000000, absl::Seconds(1)};
  auto budgets = MakeBudgets(rates, scheduler, nullptr, &metrics.budgets);
  if (!budgets.ok()) std::abort();
  AnsweringHttpClient http;
  UpstreamStackOptions options;
  options.upstream.base_url = "http://127.0.0.1:8089";
  options.upstream.api_key = "emulator-key";
  UpstreamStack stack = MakeUpstreamStack(options, http, scheduler, &*budgets, &metrics.upstream);
  const Count through_stack = PerCall(calls, [&] {
    bool answered = false;
    CallOptions call;
    call.deadline = absl::Now() + absl::Seconds(10);
    call.caller = "billing";
    stack.stub->IdentifyUser(call, request, [&answered](Result<v1::IdentifyUserResponse> r) {
      if (!r.ok()) std::abort();
      answered = true;
    });
    // The budget admits at once on this thread (its fast path), so the request is waiting.
    if (!http.CompleteNext() || !answered) std::abort();
  });
  budgets->Shutdown();

  std::FILE* devnull = std::fopen("/dev/null", "w");
  const Count access_log = [&] {
    LoggerOptions log_options;
    log_options.queue_lines = kDefaultLogQueueLines;
    Logger logger(log_options, devnull);
    AccessLog log(logger);
    CallFacts facts;
    facts.upstream.http_status = 202;
    facts.upstream.request_id = "QHQTu0Re000000000001";
    facts.http_attempts = 1;
    TraceContext trace;
    trace.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    trace.span_id = "b7ad6b7169203331";
    return PerCall(calls, [&] {
      log.Record("IdentifyUser", "billing", trace, grpc::Status::OK, facts,
                 absl::Microseconds(850));
    });
  }();
  std::fclose(devnull);

  std::printf("heap allocations per IdentifyUser call (%d calls, after 100 warm-up)\n", calls);
  std::printf("%-12s %8s %10s\n", "piece", "allocs", "bytes");
  for (const auto& [name, count] : {std::pair<const char*, Count>{"validate", validate},
                                    {"body", body},
                                    {"(protobuf)", protobuf_body},
                                    {"stack", through_stack},
                                    {"access_log", access_log}}) {
    std::printf("%-12s %8.1f %10.0f\n", name, count.allocations, count.bytes);
  }
  return 0;
}

}  // namespace
}  // namespace userpilot::gateway

int main(int argc, char** argv) {
  int calls = 10000;
  if (argc > 1 && (!absl::SimpleAtoi(argv[1], &calls) || calls <= 0)) {
    std::fprintf(stderr, "usage: upgw-alloc-count [calls]\n");
    return 2;
  }
  return userpilot::gateway::Run(calls);
}
