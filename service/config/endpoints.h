// Start-up checks of the network addresses the gateway is configured with.
//
// Two kinds of address reach the gateway through flags: addresses it listens on (`--listen`,
// `--metrics_listen`, written `host:port` as gRPC and the metrics exposer expect) and the base
// URL of Userpilot's API (`--upstream_url`). These functions check their syntax without any
// network access (no name resolution), so a typo stops the process at start-up.
//
// Thread-safety: pure functions; safe from any thread.
#ifndef USERPILOT_GATEWAY_SERVICE_CONFIG_ENDPOINTS_H_
#define USERPILOT_GATEWAY_SERVICE_CONFIG_ENDPOINTS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace userpilot::gateway {

// Checks a listening address `host:port`: host is a name, an IPv4 address, or a bracketed IPv6
// address (`[::]:50051`); port is 0..65535 (0 lets the OS pick). Returns INVALID_ARGUMENT with
// a message that does not name the flag (the caller adds that).
absl::Status ValidateListenAddress(absl::string_view address);

// Checks and normalizes the base URL of Userpilot's API: `https://host[:port]`, with an optional
// trailing `/` that is stripped, and no credentials, path, query or fragment. `http://` is
// accepted only for a loopback host (so the bundled emulator works while the API key never
// travels in clear to another machine). The scheme and host come back lower-cased. Returns
// INVALID_ARGUMENT with a message that does not name the flag.
absl::StatusOr<std::string> NormalizeUpstreamUrl(absl::string_view url);

// True for `localhost`, an IPv4 address in 127.0.0.0/8, or the IPv6 loopback (`::1`, with or
// without brackets). Does not resolve names.
bool IsLoopbackHost(absl::string_view host);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_CONFIG_ENDPOINTS_H_
