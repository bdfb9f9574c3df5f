// Bearer tokens of the calling services: the parsed contents of `--caller_tokens_file`.
//
// The file holds one line per token, `NAME SHA256HEX`: the caller's name (caller_name.h) and the
// SHA-256 of its token as 64 hex digits (`printf %s "$TOKEN" | sha256sum`), separated by spaces
// or tabs. Lines whose first non-blank character is `#` are comments; blank lines are ignored.
// One name may have several lines (several valid tokens, so a caller's token can be rotated
// without a moment when neither the old nor the new one works); one digest may appear once.
//
// The file never holds a token, only its digest, so reading the file (or a backup of it) does
// not let anyone call the gateway. Errors name the file and the line and never quote the digest
// field, in case a token was pasted there by mistake.
//
// A presented token is hashed once and its digest compared with every entry with CRYPTO_memcmp
// (OpenSSL's constant-time comparison), whether or not an earlier entry matched, so the time a
// refusal takes says nothing about how close a guess was.
//
// Thread-safety: CallerTokens is immutable after Parse; share it (as a snapshot, see
// caller_token_store.h) and call Match from any thread.
#ifndef USERPILOT_GATEWAY_SERVICE_AUTH_CALLER_TOKENS_H_
#define USERPILOT_GATEWAY_SERVICE_AUTH_CALLER_TOKENS_H_

#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace userpilot::gateway {

// A SHA-256 digest.
using TokenDigest = std::array<unsigned char, 32>;

// SHA-256 of `data` (OpenSSL's libcrypto).
TokenDigest Sha256(absl::string_view data);

class CallerTokens {
 public:
  // Most entries in one file. Every call compares its token with every entry, so the bound
  // also bounds the cost of authenticating a call (1,000 entries: a few microseconds).
  static constexpr size_t kMaxEntries = 1000;

  struct Entry {
    std::string caller;
    TokenDigest digest;
    int line = 0;  // 1-based line in the file, for messages.
  };

  // Parses a token file's contents. `source` names the file in error messages. Errors:
  // INVALID_ARGUMENT `SOURCE line N: ...` for the first bad line (a line that is not two
  // fields, a bad caller name, a digest that is not 64 hex digits, a digest already on an
  // earlier line), more than kMaxEntries entries, or a file with no entry at all.
  static absl::StatusOr<CallerTokens> Parse(absl::string_view contents, absl::string_view source);

  // The caller whose token is `token`, or null when no entry matches. Compares the token's
  // digest with every entry in constant time. The pointer lives as long as this object.
  const std::string* Match(absl::string_view token) const;

  const std::vector<Entry>& entries() const { return entries_; }

  // The distinct caller names, sorted.
  std::vector<std::string> Callers() const;

 private:
  std::vector<Entry> entries_;
};

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_AUTH_CALLER_TOKENS_H_
