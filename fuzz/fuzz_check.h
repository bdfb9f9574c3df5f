// What the fuzz targets (fuzz/*_fuzzer.cc) share: FUZZ_CHECK, which stops the run with a message
// when a property of the code under test does not hold, so libFuzzer records the input that
// broke it (a crash, like a sanitizer report), and a check that text is valid UTF-8.
//
// Thread-safety: the targets run one input at a time on one thread.
#ifndef USERPILOT_GATEWAY_FUZZ_FUZZ_CHECK_H_
#define USERPILOT_GATEWAY_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "service/common/text_scan.h"

// Aborts with `what` (and the failed condition) when `condition` is false.
#define FUZZ_CHECK(condition, what)                                                 \
  do {                                                                              \
    if (!(condition)) {                                                             \
      std::fprintf(stderr, "%s:%d: property broken: %s (%s)\n", __FILE__, __LINE__, \
                   std::string(what).c_str(), #condition);                          \
      std::abort();                                                                 \
    }                                                                               \
  } while (false)

namespace userpilot::gateway::fuzz {

// True when `text` is valid UTF-8 (RFC 3629), as every proto3 string field must be.
inline bool IsUtf8(absl::string_view text) { return !ScanText(text).invalid_utf8_at.has_value(); }

}  // namespace userpilot::gateway::fuzz

#endif  // USERPILOT_GATEWAY_FUZZ_FUZZ_CHECK_H_
