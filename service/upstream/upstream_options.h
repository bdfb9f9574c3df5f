// UpstreamOptions: where and how the gateway reaches Userpilot - the options of
// HttpUserpilotStub (http_userpilot_stub.h), in a header of their own so that configuration and
// the stack's composition need not include the stub.
//
// Thread-safety: a value.
#ifndef USERPILOT_GATEWAY_SERVICE_UPSTREAM_UPSTREAM_OPTIONS_H_
#define USERPILOT_GATEWAY_SERVICE_UPSTREAM_UPSTREAM_OPTIONS_H_

#include <string>

#include "absl/time/time.h"

namespace userpilot::gateway {

// Where and how to reach Userpilot. Validated by the configuration layer before use.
struct UpstreamOptions {
  // Scheme and host, e.g. "https://analytex.userpilot.io" (US), "https://analytex-eu.userpilot.io"
  // (EU) or an enterprise host. Trailing slashes are ignored.
  std::string base_url;
  // The Userpilot API key (not an App Token). Secret: never logged, never in an error.
  std::string api_key;
  // The longest one HTTP attempt may take, however far away the caller's deadline is. Positive.
  absl::Duration request_timeout = absl::Seconds(10);
  // The same cap for a multipart file upload, which carries up to 50 MB: at 10 Mbit/s a
  // full file takes 40 s to send. Positive.
  absl::Duration upload_timeout = absl::Minutes(5);
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_UPSTREAM_UPSTREAM_OPTIONS_H_
