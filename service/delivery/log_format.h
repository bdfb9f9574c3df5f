// The on-disk format of the embedded delivery log (LogDeliveryStore): segment files of framed,
// checksummed records, and the scanner that reads them back and survives damage.
//
// A log is a folder of segment files named `segment-<first seq, 20 digits>.log`. A segment is
//   header  32 bytes: "UPGWDLOG" | u32 format version | u32 CRC32C of the next 16 bytes |
//                     u64 incarnation (random per folder, part of every delivery id) |
//                     u64 first sequence number
//   records, back to back, each
//           u32 CRC32C of everything after it in the record | u32 body length |
//           u8 type | u64 sequence number | body (a log_record.proto message)
// all integers little-endian. Sequence numbers grow by one per record across the whole log.
//
// Damage is expected, never fatal: ScanSegment() accepts a record only when its length fits,
// its checksum matches, its type is known and its sequence number is above the previous one.
// At an invalid byte it searches forward for the next valid record; the bytes skipped are a
// corrupt region if a valid record follows, else the segment's invalid tail (a torn last write
// when it is the newest segment: such a write was never acknowledged).
//
// Checksums: CRC32C (Castagnoli) from Intel's ISA-L (Debian package libisal-dev,
// `crc32_iscsi`), which picks the SSE4.2/PCLMUL implementation at run time. Debian 12 ships no
// packaged Google crc32c library and Abseil 20220623 has no absl/crc; ISA-L's iSCSI CRC is the
// same polynomial, checked against the standard test vector in log_format_test.
//
// Thread-safety: pure functions.
#ifndef USERPILOT_GATEWAY_SERVICE_DELIVERY_LOG_FORMAT_H_
#define USERPILOT_GATEWAY_SERVICE_DELIVERY_LOG_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"

namespace userpilot::gateway::delivery_log {

inline constexpr uint32_t kFormatVersion = 1;
inline constexpr size_t kSegmentHeaderBytes = 32;
inline constexpr size_t kRecordHeaderBytes = 17;
// A body longer than this is damage, not a record (payloads are at most 4 MiB).
inline constexpr uint32_t kMaxBodyBytes = 5 << 20;

enum class RecordType : uint8_t {
  kAppend = 1,   // AppendBody
  kLease = 2,    // LeaseBody
  kOutcome = 3,  // OutcomeBody
  kRedrive = 4,  // RedriveBody
  kCarry = 5,    // CarryBody
};

// CRC32C of `data`, continuing from `crc` (0 to start).
uint32_t Crc32c(absl::string_view data, uint32_t crc = 0);

struct SegmentHeader {
  uint64_t incarnation = 0;
  uint64_t first_seq = 0;
};
std::string EncodeSegmentHeader(const SegmentHeader& header);
// nullopt when `bytes` is shorter than a header, or its magic, version or checksum is wrong.
std::optional<SegmentHeader> DecodeSegmentHeader(absl::string_view bytes);

std::string SegmentFileName(uint64_t first_seq);  // "segment-00000000000000000001.log"
std::optional<uint64_t> ParseSegmentFileName(absl::string_view name);

// Appends one framed record to `out`.
void AppendRecord(RecordType type, uint64_t seq, absl::string_view body, std::string* out);
inline size_t FramedSize(size_t body_bytes) { return kRecordHeaderBytes + body_bytes; }

struct ScannedRecord {
  RecordType type;
  uint64_t seq = 0;
  uint64_t offset = 0;  // Of the frame, from the start of the segment file.
  uint32_t size = 0;    // Of the frame.
  absl::string_view body;
};

struct ScanResult {
  uint64_t records = 0;
  uint64_t last_seq = 0;   // Of the last valid record; the `after_seq` argument if none.
  uint64_t valid_end = 0;  // Offset just past the last valid record (or the header).
  uint64_t corrupt_regions = 0;
  uint64_t corrupt_bytes = 0;  // Skipped between valid records.
  uint64_t tail_bytes = 0;     // Invalid bytes after the last valid record.
  bool header_valid = false;
  SegmentHeader header;
};

// Scans a whole segment file's bytes; calls `on_record` for each valid record, in order.
// Records must have sequence numbers above `after_seq` (the last one of the previous segment)
// and above each other. Never fails: damage is counted in the result.
// With `assumed` set, a file whose header is damaged is scanned as if it had that header (the
// 32 header bytes count as a corrupt region); otherwise such a file yields nothing.
ScanResult ScanSegment(absl::string_view file, uint64_t after_seq,
                       absl::FunctionRef<void(const ScannedRecord&)> on_record,
                       std::optional<SegmentHeader> assumed = std::nullopt);

// Validates one frame at the start of `bytes` (used to re-read a record's body later).
std::optional<ScannedRecord> ParseRecordAt(absl::string_view bytes, uint64_t offset_in_file);

}  // namespace userpilot::gateway::delivery_log

#endif  // USERPILOT_GATEWAY_SERVICE_DELIVERY_LOG_FORMAT_H_
