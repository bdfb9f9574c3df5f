#include "service/auth/caller_tokens.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>
#include <map>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "service/auth/caller_name.h"

namespace userpilot::gateway {
namespace {

constexpr absl::string_view kUtf8Bom = "\xEF\xBB\xBF";

std::optional<int> HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return std::nullopt;
}

// 64 hex digits (either case) -> digest.
std::optional<TokenDigest> ParseDigest(absl::string_view hex) {
  TokenDigest digest;
  if (hex.size() != 2 * digest.size()) return std::nullopt;
  for (size_t i = 0; i < digest.size(); ++i) {
    std::optional<int> high = HexValue(hex[2 * i]);
    std::optional<int> low = HexValue(hex[2 * i + 1]);
    if (!high || !low) return std::nullopt;
    digest[i] = static_cast<unsigned char>(*high << 4 | *low);
  }
  return digest;
}

}  // namespace

TokenDigest Sha256(absl::string_view data) {
  TokenDigest digest;
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
  return digest;
}

absl::StatusOr<CallerTokens> CallerTokens::Parse(absl::string_view contents,
                                                 absl::string_view source) {
  if (contents.substr(0, kUtf8Bom.size()) == kUtf8Bom) contents.remove_prefix(kUtf8Bom.size());
  CallerTokens tokens;
  std::map<TokenDigest, int> lines_by_digest;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    ++line_number;
    auto error = [&](absl::string_view message) {
      return absl::InvalidArgumentError(absl::StrCat(source, " line ", line_number, ": ", message));
    };
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    absl::string_view trimmed = absl::StripAsciiWhitespace(line);
    if (trimmed.empty() || trimmed.front() == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(trimmed, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 2) {
      // The fields are not quoted: one of them may be a token pasted in by mistake.
      return error(absl::StrCat("expected two fields, NAME SHA256HEX (found ", fields.size(),
                                "); comments start with #"));
    }
    if (!IsValidCallerName(fields[0])) {
      return error(absl::StrCat("the caller name (first field, ", fields[0].size(),
                                " bytes) must be ", kCallerNameRule));
    }
    std::optional<TokenDigest> digest = ParseDigest(fields[1]);
    if (!digest.has_value()) {
      return error(absl::StrCat("the digest for caller '", fields[0],
                                "' must be 64 hex digits, the SHA-256 of the token (printf %s "
                                "\"$TOKEN\" | sha256sum), not the token itself; found ",
                                fields[1].size(), " characters"));
    }
    auto [it, inserted] = lines_by_digest.emplace(*digest, line_number);
    if (!inserted) {
      return error(absl::StrCat("caller '", fields[0], "' has the same token digest as line ",
                                it->second, ": every token must be different"));
    }
    if (tokens.entries_.size() == kMaxEntries) {
      return error(absl::StrCat("more than ", kMaxEntries, " tokens"));
    }
    tokens.entries_.push_back(Entry{std::string(fields[0]), *digest, line_number});
  }
  if (tokens.entries_.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, " holds no token (lines NAME SHA256HEX): every caller would be refused"));
  }
  return tokens;
}

const std::string* CallerTokens::Match(absl::string_view token) const {
  const TokenDigest digest = Sha256(token);
  const std::string* match = nullptr;
  // Every entry is compared, match or not: the time taken does not depend on where (or
  // whether) the digest matched.
  for (const Entry& entry : entries_) {
    const bool equal = CRYPTO_memcmp(digest.data(), entry.digest.data(), digest.size()) == 0;
    if (equal) match = &entry.caller;
  }
  return match;
}

std::vector<std::string> CallerTokens::Callers() const {
  std::vector<std::string> names;
  names.reserve(entries_.size());
  for (const Entry& entry : entries_) names.push_back(entry.caller);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

}  // namespace userpilot::gateway
