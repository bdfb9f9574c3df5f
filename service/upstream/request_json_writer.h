// Direct request bodies: the hot request bodies (identify, company identify, track) written
// straight from the request messages with RapidJSON's Writer (rapidjson-dev), in exactly the bytes
// that protobuf's reflection-based JSON converter prints for them (json_mapping.h's body rules), at
// a fraction of the cost: no serialization to binary, no type resolution, no reflection.
//
// RapidJSON keeps the JSON well-formed (separators, nesting); what it would write differently
// from protobuf 3.21 is done here, and is the reason this file exists:
//  - Strings and keys are escaped as protobuf's JsonEscaping does: `"` `\` and C0 controls
//    (\b \t \n \f \r, else \u00XX in lower-case hex), `<` `>` U+007F and the C1 controls
//    U+0080-U+009F as \u00XX, and the invisible or line-breaking code points that JavaScript
//    mishandles (U+00AD, U+0600-U+0603, U+06DD, U+070F, U+17B4, U+17B5, U+200B-U+200F,
//    U+2028-U+202E, U+2060-U+2064, U+206A-U+206F, U+FEFF, U+FFF9-U+FFFB; as surrogate pairs
//    U+1D173-U+1D17A, U+E0001, U+E0020-U+E007F). Everything else is copied as is. Bytes that
//    are not UTF-8 are dropped as protobuf drops them (a bad sequence together with the byte
//    that broke it; surrogates and code points above U+10FFFF; a truncated tail). Validation
//    refuses such text before a request gets here; the rule is kept so both paths agree anyway.
//  - Numbers (google.protobuf.Value's double) print as protobuf's SimpleDtoa: printf's %.15g,
//    or %.17g when that does not read back as the same double (so 8 not 8.0, 1e+21, 0.1,
//    9.2233720368547758e+18). NaN and infinities print as the strings "NaN", "Infinity" and
//    "-Infinity".
//  - Struct keys come out sorted bytewise (protobuf's deterministic map order), and a Value
//    with no kind set is left out entirely: its key in an object, its element in a list.
// json_mapping_test compares every body with the protobuf path over a corpus of requests.
//
// printf's %g follows LC_NUMERIC; the gateway never calls setlocale, so it runs in the "C"
// locale, as protobuf's own printer assumes after its radix fix-up.
//
// Thread-safety: free functions over values; safe from any thread.
#ifndef USERPILOT_GATEWAY_SERVICE_UPSTREAM_REQUEST_JSON_WRITER_H_
#define USERPILOT_GATEWAY_SERVICE_UPSTREAM_REQUEST_JSON_WRITER_H_

#include <string>

#include "absl/strings/string_view.h"
#include "userpilot/gateway/v1/gateway.pb.h"

namespace userpilot::gateway {

// Appends `text` to `out` escaped as protobuf's JSON printer escapes it (without quotes).
void AppendProtobufJsonEscaped(absl::string_view text, std::string& out);

// Appends `value` as protobuf's JSON printer writes a double: a number, or "NaN", "Infinity",
// "-Infinity" with their quotes.
void AppendProtobufJsonDouble(double value, std::string& out);

// The bodies of json_mapping.h's RequestBody for these three requests, appended to `out`
// (which the caller may reuse: nothing is allocated when it has the capacity).
void AppendRequestBody(const v1::IdentifyUserRequest& request, std::string& out);
void AppendRequestBody(const v1::IdentifyCompanyRequest& request, std::string& out);
void AppendRequestBody(const v1::TrackEventRequest& request, std::string& out);

}  // namespace userpilot::gateway

#endif  // USERPILOT_GATEWAY_SERVICE_UPSTREAM_REQUEST_JSON_WRITER_H_
