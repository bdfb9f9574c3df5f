// Hostile shapes of an upstream answer, for fault injection: JSON nested arbitrarily deep, and
// the API key echoed back in the forms a server may quote it in (raw, JSON-escaped,
// percent-encoded, base64, base64url).
//
// A gateway must survive both: a deep body must not freeze it, and no form of its key may reach a
// caller or a log. faults.h decides when an answer takes one of these shapes; this file only
// builds the text.
//
// Thread-safety: stateless free functions, safe from any thread.
#ifndef USERPILOT_GATEWAY_TESTS_EMULATOR_ANSWER_SHAPES_H_
#define USERPILOT_GATEWAY_TESTS_EMULATOR_ANSWER_SHAPES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace userpilot::gateway::testing {

// A form in which an answer can echo the API key.
enum class KeyForm {
  kRaw,        // The key's bytes.
  kJson,       // JSON string escaping: '"' -> \", '\' -> \\, control characters -> \u00XX.
  kPercent,    // RFC 3986: every byte outside the unreserved set as %XX (upper-case hex).
  kBase64,     // RFC 4648 base64, padded.
  kBase64Url,  // RFC 4648 base64url, unpadded (as in JWTs).
};

// "raw", "json", "percent", "base64", "base64url".
absl::string_view KeyFormName(KeyForm form);
// INVALID_ARGUMENT for any other name.
absl::StatusOr<KeyForm> KeyFormFromName(absl::string_view name);
// Every form, in declaration order.
std::vector<KeyForm> AllKeyForms();

// `key` in `form`.
std::string EncodeKey(absl::string_view key, KeyForm form);

// The text an answer echoes, once decoded: each form of `forms` in order, separated by spaces
// ("<form(key)> <form(key)> ..."). Nothing else: a snippet of the text's start quotes the key.
std::string KeyEcho(absl::string_view key, const std::vector<KeyForm>& forms);

// Arrays nested `depth` deep ("[[[]]]" for 3; "" for 0). When `min_bytes` exceeds that, the
// nest is repeated side by side inside one more array ("[[[[]]],[[[]]],...]") until the text
// holds at least `min_bytes` bytes. Bounded: at most 64 MiB is built.
std::string NestedArrays(int depth, int64_t min_bytes);

// A GetJob-shaped 2xx body whose "nested" member holds `nest` (a JSON value): a parser must
// descend all of it before it can map the job.
std::string DeepJobBody(absl::string_view job_id, absl::string_view nest);
// Userpilot's error body (one entry, error_code "invalid_body") whose "details" holds `nest`.
std::string DeepErrorBody(absl::string_view nest);

// `json` (as the emulator writes it: no whitespace between tokens) with `text` put at the start
// of the string value of every member named filename, links, message or details, JSON-escaped,
// followed by a space. Members holding anything but a string are left alone.
std::string InsertIntoStringMembers(absl::string_view json, absl::string_view text);

}  // namespace userpilot::gateway::testing

#endif  // USERPILOT_GATEWAY_TESTS_EMULATOR_ANSWER_SHAPES_H_
