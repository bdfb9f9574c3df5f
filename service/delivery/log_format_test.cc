#include "service/delivery/log_format.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace userpilot::gateway::delivery_log {
namespace {

using ::testing::ElementsAre;

TEST(Crc32cTest, StandardVectorAndChaining) {
  // The CRC32C check value (RFC 3720, appendix B.4 test vectors' common "123456789").
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c("6789", Crc32c("12345")), Crc32c("123456789"));
  // 32 bytes of zeros, RFC 3720 B.4.
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
}

TEST(SegmentHeaderTest, RoundTripsAndRejectsDamage) {
  const std::string h = EncodeSegmentHeader({0x1234567890abcdefULL, 42});
  ASSERT_EQ(h.size(), kSegmentHeaderBytes);
  std::optional<SegmentHeader> back = DecodeSegmentHeader(h);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->incarnation, 0x1234567890abcdefULL);
  EXPECT_EQ(back->first_seq, 42u);
  for (size_t i = 0; i < h.size(); ++i) {
    std::string bad = h;
    bad[i] ^= 0x10;
    EXPECT_FALSE(DecodeSegmentHeader(bad)) << "flipped byte " << i;
  }
  EXPECT_FALSE(DecodeSegmentHeader(h.substr(0, kSegmentHeaderBytes - 1)));
}

TEST(SegmentFileNameTest, RoundTrips) {
  EXPECT_EQ(SegmentFileName(7), "segment-00000000000000000007.log");
  EXPECT_EQ(ParseSegmentFileName("segment-00000000000000000007.log"), 7u);
  EXPECT_EQ(ParseSegmentFileName("segment-18446744073709551615.log"), 18446744073709551615ULL);
  EXPECT_FALSE(ParseSegmentFileName("segment-7.log"));
  EXPECT_FALSE(ParseSegmentFileName("segment-0000000000000000000x.log"));
  EXPECT_FALSE(ParseSegmentFileName("LOCK"));
}

// A segment with records 10..10+n-1 whose bodies are "body-<seq>".
std::string MakeSegment(int n, std::vector<size_t>* offsets = nullptr) {
  std::string file = EncodeSegmentHeader({99, 10});
  for (int i = 0; i < n; ++i) {
    if (offsets) offsets->push_back(file.size());
    AppendRecord(RecordType::kAppend, 10 + i, "body-" + std::to_string(10 + i), &file);
  }
  return file;
}

std::vector<uint64_t> Seqs(absl::string_view file, ScanResult* result = nullptr) {
  std::vector<uint64_t> seqs;
  ScanResult r = ScanSegment(file, 0, [&](const ScannedRecord& rec) {
    EXPECT_EQ(rec.body, "body-" + std::to_string(rec.seq));
    seqs.push_back(rec.seq);
  });
  if (result) *result = r;
  return seqs;
}

TEST(ScanSegmentTest, ReadsBackWhatWasWritten) {
  const std::string file = MakeSegment(3);
  ScanResult r;
  EXPECT_THAT(Seqs(file, &r), ElementsAre(10, 11, 12));
  EXPECT_TRUE(r.header_valid);
  EXPECT_EQ(r.records, 3u);
  EXPECT_EQ(r.last_seq, 12u);
  EXPECT_EQ(r.valid_end, file.size());
  EXPECT_EQ(r.corrupt_regions + r.corrupt_bytes + r.tail_bytes, 0u);
}

TEST(ScanSegmentTest, TornTailAtEveryByteOfTheLastRecordDropsOnlyIt) {
  std::vector<size_t> offsets;
  const std::string file = MakeSegment(4, &offsets);
  const size_t last = offsets.back();
  for (size_t cut = last; cut < file.size(); ++cut) {
    ScanResult r;
    EXPECT_THAT(Seqs(file.substr(0, cut), &r), ElementsAre(10, 11, 12)) << "cut at " << cut;
    EXPECT_EQ(r.valid_end, last);
    EXPECT_EQ(r.tail_bytes, cut - last);
    EXPECT_EQ(r.corrupt_regions, 0u);
  }
}

TEST(ScanSegmentTest, EveryFlippedBitInAMiddleRecordSkipsOnlyThatRecord) {
  std::vector<size_t> offsets;
  const std::string file = MakeSegment(5, &offsets);
  for (size_t byte = offsets[2]; byte < offsets[3]; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = file;
      bad[byte] ^= static_cast<char>(1 << bit);
      ScanResult r;
      EXPECT_THAT(Seqs(bad, &r), ElementsAre(10, 11, 13, 14)) << "byte " << byte << " bit " << bit;
      EXPECT_EQ(r.corrupt_regions, 1u);
      EXPECT_EQ(r.corrupt_bytes, offsets[3] - offsets[2]);
      EXPECT_EQ(r.tail_bytes, 0u);
    }
  }
}

TEST(ScanSegmentTest, ZeroFilledTailIsATail) {
  std::string file = MakeSegment(2);
  const size_t end = file.size();
  file.append(4096, '\0');
  ScanResult r;
  EXPECT_THAT(Seqs(file, &r), ElementsAre(10, 11));
  EXPECT_EQ(r.valid_end, end);
  EXPECT_EQ(r.tail_bytes, 4096u);
}

TEST(ScanSegmentTest, ARecordInsideAPayloadIsNotTakenForTheNextOne) {
  // Record 11's body holds a valid-looking frame with a far-ahead sequence number. Damage to
  // record 11's header makes the scanner search; it must not accept the embedded frame.
  std::string file = EncodeSegmentHeader({99, 10});
  AppendRecord(RecordType::kAppend, 10, "body-10", &file);
  const size_t victim = file.size();
  std::string inner;
  AppendRecord(RecordType::kAppend, 500, "body-500", &inner);
  AppendRecord(RecordType::kAppend, 11, "x" + inner + "x", &file);
  AppendRecord(RecordType::kAppend, 12, "body-12", &file);
  file[victim] ^= 1;
  std::vector<uint64_t> seqs;
  ScanSegment(file, 0, [&](const ScannedRecord& rec) { seqs.push_back(rec.seq); });
  EXPECT_THAT(seqs, ElementsAre(10, 12));
}

TEST(ScanSegmentTest, SequenceNumbersMustGrow) {
  std::string file = EncodeSegmentHeader({99, 10});
  AppendRecord(RecordType::kAppend, 10, "body-10", &file);
  AppendRecord(RecordType::kAppend, 10, "body-10", &file);  // A replayed duplicate frame.
  AppendRecord(RecordType::kAppend, 11, "body-11", &file);
  ScanResult r;
  EXPECT_THAT(Seqs(file, &r), ElementsAre(10, 11));
  EXPECT_EQ(r.corrupt_regions, 1u);
}

TEST(ScanSegmentTest, BadHeaderTrustsNothing) {
  std::string file = MakeSegment(2);
  file[0] = 'X';
  ScanResult r;
  EXPECT_TRUE(Seqs(file, &r).empty());
  EXPECT_FALSE(r.header_valid);
  EXPECT_EQ(r.tail_bytes, file.size());
}

}  // namespace
}  // namespace userpilot::gateway::delivery_log
