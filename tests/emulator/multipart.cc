#include "tests/emulator/multipart.h"

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace userpilot::gateway::testing {
namespace {

// The value of parameter `param` in a header value such as
// `form-data; name="file"; filename="a.csv"`, unquoted; "" when absent.
std::string HeaderParam(absl::string_view header_value, absl::string_view param) {
  for (absl::string_view piece : absl::StrSplit(header_value, ';')) {
    piece = absl::StripAsciiWhitespace(piece);
    const size_t eq = piece.find('=');
    if (eq == absl::string_view::npos) continue;
    absl::string_view key = absl::StripAsciiWhitespace(piece.substr(0, eq));
    if (!absl::EqualsIgnoreCase(key, param)) continue;
    absl::string_view value = absl::StripAsciiWhitespace(piece.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    return std::string(value);
  }
  return "";
}

}  // namespace

bool IsMultipartFormData(absl::string_view content_type) {
  return absl::StartsWithIgnoreCase(absl::StripLeadingAsciiWhitespace(content_type),
                                    "multipart/form-data");
}

absl::StatusOr<std::vector<MultipartPart>> ParseMultipart(absl::string_view content_type,
                                                          absl::string_view body) {
  const std::string boundary = HeaderParam(content_type, "boundary");
  if (boundary.empty()) {
    return absl::InvalidArgumentError("multipart/form-data without a boundary parameter");
  }
  const std::string delimiter = absl::StrCat("--", boundary);
  const std::string next_delimiter = absl::StrCat("\r\n", delimiter);

  // The body starts with the first delimiter (a preamble before it is allowed and ignored).
  size_t pos = body.find(delimiter);
  if (pos == absl::string_view::npos) {
    return absl::InvalidArgumentError("multipart body does not contain its boundary");
  }
  pos += delimiter.size();

  std::vector<MultipartPart> parts;
  while (true) {
    if (body.substr(pos, 2) == "--") return parts;  // The closing delimiter.
    if (body.substr(pos, 2) != "\r\n") {
      return absl::InvalidArgumentError("malformed multipart delimiter line");
    }
    pos += 2;
    const size_t headers_end = body.find("\r\n\r\n", pos);
    if (headers_end == absl::string_view::npos) {
      return absl::InvalidArgumentError("multipart part without a blank line after its headers");
    }
    MultipartPart part;
    for (absl::string_view line :
         absl::StrSplit(body.substr(pos, headers_end - pos), "\r\n", absl::SkipEmpty())) {
      const size_t colon = line.find(':');
      if (colon == absl::string_view::npos) continue;
      absl::string_view name = absl::StripAsciiWhitespace(line.substr(0, colon));
      absl::string_view value = absl::StripAsciiWhitespace(line.substr(colon + 1));
      if (absl::EqualsIgnoreCase(name, "content-disposition")) {
        part.name = HeaderParam(value, "name");
        part.filename = HeaderParam(value, "filename");
      } else if (absl::EqualsIgnoreCase(name, "content-type")) {
        part.content_type = std::string(value);
      }
    }
    const size_t data_begin = headers_end + 4;
    const size_t data_end = body.find(next_delimiter, data_begin);
    if (data_end == absl::string_view::npos) {
      return absl::InvalidArgumentError("multipart part is not terminated by the boundary");
    }
    part.data = body.substr(data_begin, data_end - data_begin);
    parts.push_back(std::move(part));
    pos = data_end + next_delimiter.size();
  }
}

const MultipartPart* FindPart(const std::vector<MultipartPart>& parts, absl::string_view name) {
  for (const MultipartPart& part : parts) {
    if (part.name == name) return &part;
  }
  return nullptr;
}

}  // namespace userpilot::gateway::testing
