#include "service/delivery/log_format.h"

#include <isa-l/crc.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace userpilot::gateway::delivery_log {
namespace {

constexpr char kMagic[8] = {'U', 'P', 'G', 'W', 'D', 'L', 'O', 'G'};

void PutU32(uint32_t v, char* p) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
void PutU64(uint64_t v, char* p) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

bool KnownType(uint8_t t) {
  return t >= static_cast<uint8_t>(RecordType::kAppend) &&
         t <= static_cast<uint8_t>(RecordType::kCarry);
}

}  // namespace

uint32_t Crc32c(absl::string_view data, uint32_t crc) {
  // ISA-L's crc32_iscsi works on the un-inverted register and takes an int length.
  uint32_t reg = ~crc;
  const unsigned char* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t left = data.size();
  while (left > 0) {
    const int n = static_cast<int>(left > (1u << 30) ? (1u << 30) : left);
    reg = crc32_iscsi(const_cast<unsigned char*>(p), n, reg);
    p += n;
    left -= static_cast<size_t>(n);
  }
  return ~reg;
}

std::string EncodeSegmentHeader(const SegmentHeader& header) {
  std::string out(kSegmentHeaderBytes, '\0');
  std::memcpy(out.data(), kMagic, sizeof(kMagic));
  PutU32(kFormatVersion, out.data() + 8);
  PutU64(header.incarnation, out.data() + 16);
  PutU64(header.first_seq, out.data() + 24);
  PutU32(Crc32c(absl::string_view(out.data() + 16, 16)), out.data() + 12);
  return out;
}

std::optional<SegmentHeader> DecodeSegmentHeader(absl::string_view bytes) {
  if (bytes.size() < kSegmentHeaderBytes) return std::nullopt;
  if (std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) return std::nullopt;
  if (GetU32(bytes.data() + 8) != kFormatVersion) return std::nullopt;
  if (GetU32(bytes.data() + 12) != Crc32c(bytes.substr(16, 16))) return std::nullopt;
  SegmentHeader h;
  h.incarnation = GetU64(bytes.data() + 16);
  h.first_seq = GetU64(bytes.data() + 24);
  return h;
}

std::string SegmentFileName(uint64_t first_seq) {
  return absl::StrFormat("segment-%020u.log", first_seq);
}

std::optional<uint64_t> ParseSegmentFileName(absl::string_view name) {
  constexpr absl::string_view kPrefix = "segment-", kSuffix = ".log";
  if (name.size() != kPrefix.size() + 20 + kSuffix.size()) return std::nullopt;
  if (name.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  if (name.substr(name.size() - kSuffix.size()) != kSuffix) return std::nullopt;
  const absl::string_view digits = name.substr(kPrefix.size(), 20);
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  uint64_t v = 0;
  if (!absl::SimpleAtoi(digits, &v)) return std::nullopt;
  return v;
}

void AppendRecord(RecordType type, uint64_t seq, absl::string_view body, std::string* out) {
  const size_t start = out->size();
  out->resize(start + kRecordHeaderBytes);
  char* h = out->data() + start;
  PutU32(static_cast<uint32_t>(body.size()), h + 4);
  h[8] = static_cast<char>(type);
  PutU64(seq, h + 9);
  out->append(body.data(), body.size());
  const uint32_t crc = Crc32c(absl::string_view(out->data() + start + 4, 13 + body.size()));
  PutU32(crc, out->data() + start);
}

std::optional<ScannedRecord> ParseRecordAt(absl::string_view bytes, uint64_t offset_in_file) {
  if (bytes.size() < kRecordHeaderBytes) return std::nullopt;
  const uint32_t length = GetU32(bytes.data() + 4);
  if (length > kMaxBodyBytes || bytes.size() - kRecordHeaderBytes < length) return std::nullopt;
  const uint8_t type = static_cast<uint8_t>(bytes[8]);
  if (!KnownType(type)) return std::nullopt;
  if (GetU32(bytes.data()) != Crc32c(bytes.substr(4, 13 + length))) return std::nullopt;
  ScannedRecord r;
  r.type = static_cast<RecordType>(type);
  r.seq = GetU64(bytes.data() + 9);
  r.offset = offset_in_file;
  r.size = static_cast<uint32_t>(kRecordHeaderBytes + length);
  r.body = bytes.substr(kRecordHeaderBytes, length);
  return r;
}

ScanResult ScanSegment(absl::string_view file, uint64_t after_seq,
                       absl::FunctionRef<void(const ScannedRecord&)> on_record,
                       std::optional<SegmentHeader> assumed) {
  ScanResult result;
  result.last_seq = after_seq;
  std::optional<SegmentHeader> header = DecodeSegmentHeader(file);
  result.header_valid = header.has_value();
  if (!header) {
    if (!assumed || file.size() < kSegmentHeaderBytes) {
      result.tail_bytes = file.size();
      return result;
    }
    header = assumed;
    ++result.corrupt_regions;
    result.corrupt_bytes += kSegmentHeaderBytes;
  }
  result.header = *header;
  uint64_t offset = kSegmentHeaderBytes;
  result.valid_end = offset;
  // A record must carry a sequence number above the previous one. After damage, the search
  // also requires it to be no further ahead than the skipped bytes could have held records
  // (each takes at least kRecordHeaderBytes), so a record-like byte string inside a payload
  // cannot be taken for the next record and hide the genuine ones after it.
  auto valid_at = [&](uint64_t at, uint64_t skipped) -> std::optional<ScannedRecord> {
    std::optional<ScannedRecord> r = ParseRecordAt(file.substr(at), at);
    if (!r || r->seq <= result.last_seq || r->seq < header->first_seq) return std::nullopt;
    if (skipped > 0) {
      const uint64_t base = std::max(result.last_seq, header->first_seq - 1);
      if (r->seq > base + 1 + skipped / kRecordHeaderBytes + 1) return std::nullopt;
    }
    return r;
  };
  while (offset < file.size()) {
    std::optional<ScannedRecord> r = valid_at(offset, 0);
    if (!r) {
      uint64_t next = offset + 1;
      for (; next < file.size(); ++next) {
        r = valid_at(next, next - offset);
        if (r) break;
      }
      if (!r) {
        result.tail_bytes = file.size() - offset;
        break;
      }
      ++result.corrupt_regions;
      result.corrupt_bytes += next - offset;
      offset = next;
    }
    on_record(*r);
    ++result.records;
    result.last_seq = r->seq;
    offset += r->size;
    result.valid_end = offset;
  }
  return result;
}

}  // namespace userpilot::gateway::delivery_log
