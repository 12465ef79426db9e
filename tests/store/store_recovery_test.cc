// The log format and recovery: CRC32C, record framing, torn tails (truncated and reported),
// corruption in the middle (DataLoss naming the file and offset).
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/event_store.h"
#include "store/internal/crc32c.h"
#include "store/internal/record.h"
#include "tests/store/store_test_util.h"

namespace metrics::store {
namespace {

using ::metrics::store::testing_util::ReadBytes;
using ::metrics::store::testing_util::ScratchDir;
using ::metrics::store::testing_util::Value;
using ::metrics::store::testing_util::WriteBytes;
using ::testing::HasSubstr;
using ::testing::SizeIs;

// ---- CRC32C and framing -----------------------------------------------------------------------

TEST(StoreCrc32cTest, StandardCheckValue) { EXPECT_EQ(internal::Crc32c("123456789"), 0xE3069283u); }

TEST(StoreCrc32cTest, KnownVectors) {
  // RFC 3720 (iSCSI) B.4 test vectors.
  EXPECT_EQ(internal::Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(internal::Crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string inc, dec;
  for (int i = 0; i < 32; ++i) {
    inc.push_back(static_cast<char>(i));
    dec.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(internal::Crc32c(inc), 0x46DD794Eu);
  EXPECT_EQ(internal::Crc32c(dec), 0x113FDB5Cu);
  EXPECT_EQ(internal::Crc32c(""), 0u);
}

TEST(StoreCrc32cTest, ExtendMatchesWholeAtEverySplit) {
  std::string s;
  for (int i = 0; i < 100; ++i) s.push_back(static_cast<char>(i * 37 + 11));
  const uint32_t whole = internal::Crc32c(s);
  for (size_t cut = 0; cut <= s.size(); ++cut) {
    EXPECT_EQ(
        internal::Crc32cExtend(internal::Crc32c(s.data(), cut), s.data() + cut, s.size() - cut),
        whole)
        << cut;
  }
}

TEST(StoreRecordTest, RoundTripAndLayout) {
  std::string buf;
  internal::RecordView in{.position = 0x0102030405060708,
                          .timestamp_ns = -5,
                          .stream_version = 42,
                          .stream = "team-red",
                          .type = "team.registered",
                          .payload = std::string_view("a\0b", 3)};
  internal::AppendRecord(&buf, in);
  ASSERT_EQ(buf.size(), internal::FramedSize(8, 15, 3));
  // Little-endian length and position.
  EXPECT_EQ(static_cast<unsigned char>(buf[0]), buf.size() - 8);
  EXPECT_EQ(buf[1], 0);
  EXPECT_EQ(static_cast<unsigned char>(buf[8]), 0x08);
  EXPECT_EQ(static_cast<unsigned char>(buf[15]), 0x01);
  const uint32_t crc = internal::Crc32c(buf.data() + 8, buf.size() - 8);
  EXPECT_EQ(static_cast<unsigned char>(buf[4]), crc & 0xFF);

  internal::RecordView out;
  size_t frame = 0;
  ASSERT_EQ(internal::ParseRecord(buf.data(), buf.size(), &out, &frame),
            internal::ParseStatus::kOk);
  EXPECT_EQ(frame, buf.size());
  EXPECT_EQ(out.position, in.position);
  EXPECT_EQ(out.timestamp_ns, -5);
  EXPECT_EQ(out.stream_version, 42u);
  EXPECT_EQ(out.stream, "team-red");
  EXPECT_EQ(out.type, "team.registered");
  EXPECT_EQ(out.payload, std::string_view("a\0b", 3));

  for (size_t n = 0; n < buf.size(); ++n) {
    EXPECT_EQ(internal::ParseRecord(buf.data(), n, &out, &frame),
              internal::ParseStatus::kIncomplete)
        << n;
  }
  std::string flipped = buf;
  flipped[20] ^= 0x10;
  EXPECT_EQ(internal::ParseRecord(flipped.data(), flipped.size(), &out, &frame),
            internal::ParseStatus::kBadCrc);
  const std::string zeros(64, '\0');
  EXPECT_EQ(internal::ParseRecord(zeros.data(), zeros.size(), &out, &frame),
            internal::ParseStatus::kBadLength);
}

// ---- Recovery ---------------------------------------------------------------------------------

std::vector<NewEvent> One(std::string type, std::string payload) {
  std::vector<NewEvent> v;
  v.push_back({std::move(type), std::move(payload)});
  return v;
}

// Appends `n` events (stream "s<i % 2>", type "t", payload "payload-<i>") to a store in `dir` and
// closes it; returns the framed size of each record.
std::vector<size_t> Fill(const std::string& dir, int n, size_t segment_bytes = size_t{64} << 20) {
  auto store = EventStore::Open({.data_dir = dir, .segment_bytes = segment_bytes});
  EXPECT_TRUE(store.ok()) << store.status();
  std::vector<size_t> sizes;
  for (int i = 0; i < n; ++i) {
    const std::string payload = absl::StrCat("payload-", i);
    EXPECT_TRUE(
        (*store)->Append(absl::StrCat("s", i % 2), ExpectedVersion::kAny, One("t", payload)).ok());
    sizes.push_back(internal::FramedSize(2, 1, payload.size()));
  }
  EXPECT_TRUE((*store)->Close().ok());
  return sizes;
}

TEST(StoreRecoveryTest, TornTailAtEveryPrefixIsTruncatedAndReported) {
  ScratchDir dir;
  const std::vector<size_t> sizes = Fill(dir.path(), 4);
  ASSERT_THAT(dir.Segments(), SizeIs(1));
  const std::string segment = dir.Segments()[0];
  const std::string full = ReadBytes(segment);
  const size_t last = sizes.back();
  const size_t good = full.size() - last;  // three whole records
  ASSERT_EQ(good, sizes[0] + sizes[1] + sizes[2]);

  for (size_t k = 0; k < last; ++k) {
    SCOPED_TRACE(testing::Message() << "prefix of " << k << " bytes of the last record");
    WriteBytes(segment, std::string_view(full).substr(0, good + k));
    Registry registry;
    ::testing::internal::CaptureStderr();
    auto store = EventStore::Open({.data_dir = dir.path(), .registry = &registry});
    const std::string err = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->LastPosition(), 3u);
    EXPECT_EQ((*store)->recovery().truncated_bytes, k);
    EXPECT_EQ(Value(registry, "event_store_recovery_truncated_bytes_total"),
              static_cast<double>(k));
    if (k > 0) {
      EXPECT_EQ((*store)->recovery().truncated_file, segment);
      EXPECT_EQ((*store)->recovery().truncated_offset, good);
      EXPECT_THAT(err, HasSubstr(absl::StrCat("truncated a torn tail of ", segment)));
      EXPECT_THAT(err, HasSubstr(absl::StrCat(k, " bytes at offset ", good)));
    } else {
      EXPECT_EQ(err, "");
    }
    EXPECT_EQ((*store)->SizeBytes(), good);
    EXPECT_EQ(ReadBytes(segment).size(), good);  // cut on disk
    // A later append works and lands where the torn record was.
    auto r = (*store)->Append("s1", ExpectedVersion::Exact(1), One("t", "again"));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->first_position, 4u);
    ASSERT_TRUE((*store)->Close().ok());

    auto reopened = EventStore::Open({.data_dir = dir.path()});
    ASSERT_TRUE(reopened.ok()) << reopened.status();
    EXPECT_EQ((*reopened)->recovery().truncated_bytes, 0u);
    auto all = (*reopened)->ReadAll();
    ASSERT_THAT(*all, SizeIs(4));
    EXPECT_EQ((*all)[3].payload, "again");
    EXPECT_EQ((*all)[2].payload, "payload-2");
  }
}

TEST(StoreRecoveryTest, ZeroFilledTailIsTruncated) {
  // A file system may extend the file before the data reaches it: the tail reads as zeros.
  ScratchDir dir;
  Fill(dir.path(), 3);
  const std::string segment = dir.Segments()[0];
  const std::string full = ReadBytes(segment);
  WriteBytes(segment, full + std::string(4096, '\0'));
  auto store = EventStore::Open({.data_dir = dir.path()});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->LastPosition(), 3u);
  EXPECT_EQ((*store)->recovery().truncated_bytes, 4096u);
  EXPECT_EQ(ReadBytes(segment), full);
}

TEST(StoreRecoveryTest, CorruptLastRecordIsATornTail) {
  ScratchDir dir;
  const std::vector<size_t> sizes = Fill(dir.path(), 3);
  const std::string segment = dir.Segments()[0];
  std::string bytes = ReadBytes(segment);
  bytes[bytes.size() - 2] ^= 0x01;  // in the last record's payload: CRC mismatch, nothing after
  WriteBytes(segment, bytes);
  auto store = EventStore::Open({.data_dir = dir.path()});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->LastPosition(), 2u);
  EXPECT_EQ((*store)->recovery().truncated_bytes, sizes[2]);
}

TEST(StoreRecoveryTest, FlippedBitInTheMiddleIsDataLoss) {
  ScratchDir dir;
  const std::vector<size_t> sizes = Fill(dir.path(), 5);
  const std::string segment = dir.Segments()[0];
  const std::string clean = ReadBytes(segment);
  const size_t third = sizes[0] + sizes[1];  // offset of the record at position 3

  // Every byte of the third record, one bit each: in the header, the fixed fields, the strings.
  for (size_t i = 0; i < sizes[2]; ++i) {
    SCOPED_TRACE(testing::Message() << "byte " << i << " of the record at offset " << third);
    std::string bytes = clean;
    bytes[third + i] ^= static_cast<char>(1 << (i % 8));
    WriteBytes(segment, bytes);
    auto store = EventStore::Open({.data_dir = dir.path()});
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
    EXPECT_THAT(store.status().message(), HasSubstr(segment));
    EXPECT_THAT(store.status().message(), HasSubstr(absl::StrCat("offset ", third)));
    // Nothing was cut: the file is as we left it.
    EXPECT_EQ(ReadBytes(segment), bytes);
  }
}

TEST(StoreRecoveryTest, BadRecordInAnEarlierSegmentIsDataLoss) {
  ScratchDir dir;
  Fill(dir.path(), 12, /*segment_bytes=*/150);  // a few records per segment
  const std::vector<std::string> segments = dir.Segments();
  ASSERT_GE(segments.size(), 3u);
  // Torn end of a segment that is not the last one: not a torn tail of the log.
  std::string first = ReadBytes(segments[0]);
  WriteBytes(segments[0], first.substr(0, first.size() - 3));
  auto store = EventStore::Open({.data_dir = dir.path()});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(store.status().message(), HasSubstr(segments[0]));
  EXPECT_THAT(store.status().message(), HasSubstr("not the last"));
}

TEST(StoreRecoveryTest, MissingSegmentIsDataLoss) {
  ScratchDir dir;
  Fill(dir.path(), 12, /*segment_bytes=*/150);
  const std::vector<std::string> segments = dir.Segments();
  ASSERT_GE(segments.size(), 3u);
  std::filesystem::remove(segments[1]);
  auto store = EventStore::Open({.data_dir = dir.path()});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(store.status().message(), HasSubstr(segments[2]));
  EXPECT_THAT(store.status().message(), HasSubstr("missing"));
}

TEST(StoreRecoveryTest, MultiSegmentLogWithTornTailRecovers) {
  ScratchDir dir;
  const std::vector<size_t> sizes = Fill(dir.path(), 12, /*segment_bytes=*/150);
  const std::vector<std::string> segments = dir.Segments();
  std::string last = ReadBytes(segments.back());
  WriteBytes(segments.back(), last.substr(0, last.size() - 1));
  auto store = EventStore::Open({.data_dir = dir.path(), .segment_bytes = 150});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->LastPosition(), 11u);
  EXPECT_EQ((*store)->recovery().truncated_bytes, sizes.back() - 1);
  EXPECT_EQ((*store)->recovery().segments, segments.size());
}

TEST(StoreRecoveryTest, StreamVersionOutOfSequenceIsDataLoss) {
  // Records with valid CRCs whose stream versions skip: the store's own check.
  ScratchDir dir;
  std::string bytes;
  internal::AppendRecord(&bytes, {.position = 1, .stream_version = 1, .stream = "s", .type = "t"});
  internal::AppendRecord(&bytes, {.position = 2, .stream_version = 3, .stream = "s", .type = "t"});
  WriteBytes(dir.File("segment-00000000000000000001.log"), bytes);
  auto store = EventStore::Open({.data_dir = dir.path()});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(store.status().message(), HasSubstr("segment-00000000000000000001.log"));
  EXPECT_THAT(store.status().message(), HasSubstr("version 3, expected 2"));
}

TEST(StoreRecoveryTest, PositionGapIsDataLoss) {
  ScratchDir dir;
  std::string bytes;
  internal::AppendRecord(&bytes, {.position = 1, .stream_version = 1, .stream = "s", .type = "t"});
  internal::AppendRecord(&bytes, {.position = 3, .stream_version = 2, .stream = "s", .type = "t"});
  WriteBytes(dir.File("segment-00000000000000000001.log"), bytes);
  auto store = EventStore::Open({.data_dir = dir.path()});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(store.status().message(), HasSubstr("position 3, expected 2"));
}

TEST(StoreRecoveryTest, OtherFilesAreIgnored) {
  ScratchDir dir;
  Fill(dir.path(), 2);
  WriteBytes(dir.File("README"), "not a segment");
  WriteBytes(dir.File("segment-1.log"), "wrong name pattern");
  auto store = EventStore::Open({.data_dir = dir.path()});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->LastPosition(), 2u);
}

}  // namespace
}  // namespace metrics::store

// ---- Atomic requests across a crash -----------------------------------------------------------

namespace metrics::store {
namespace {

std::vector<NewEvent> Transfer() {
  std::vector<NewEvent> v;
  for (const char* t : {"account.debited", "account.credited", "transfer.done"}) {
    v.push_back({t, absl::StrCat("{\"step\":\"", t, "\"}")});
  }
  return v;
}

// A 3-event request torn at every byte: each reopen shows all three events or none, and a torn
// request's whole records are cut off with its torn one.
TEST(StoreAtomicRequestTest, ATornMultiEventRequestIsAllOrNothingAtEveryByte) {
  ScratchDir dir;
  {
    auto store = EventStore::Open({.data_dir = dir.path()});
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE(
        (*store)->Append("acct", ExpectedVersion::kNoStream, One("account.opened", "{}")).ok());
    ASSERT_TRUE((*store)->Close().ok());
  }
  const std::string segment = dir.Segments()[0];
  const size_t before = ReadBytes(segment).size();
  {
    auto store = EventStore::Open({.data_dir = dir.path()});
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->Append("acct", ExpectedVersion::Exact(1), Transfer()).ok());
    ASSERT_TRUE((*store)->Close().ok());
  }
  const std::string full = ReadBytes(segment);
  ASSERT_GT(full.size(), before);
  for (size_t cut = before; cut <= full.size(); ++cut) {
    SCOPED_TRACE(testing::Message() << "log cut at byte " << cut << " of " << full.size());
    WriteBytes(segment, std::string_view(full).substr(0, cut));
    ::testing::internal::CaptureStderr();
    auto store = EventStore::Open({.data_dir = dir.path()});
    ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(store.ok()) << store.status();
    auto events = (*store)->ReadStream("acct");
    ASSERT_TRUE(events.ok());
    if (cut == full.size()) {
      ASSERT_THAT(*events, SizeIs(4));
      EXPECT_EQ((*events)[3].type, "transfer.done");
      EXPECT_EQ((*store)->recovery().truncated_bytes, 0u);
    } else {
      ASSERT_THAT(*events, SizeIs(1)) << "a torn request left part of itself behind";
      EXPECT_EQ((*store)->recovery().truncated_bytes, cut - before);
      EXPECT_EQ(ReadBytes(segment).size(), before);  // cut on disk to the last whole request
      // The stream continues at version 2, where the torn request would have gone.
      auto r = (*store)->Append("acct", ExpectedVersion::Exact(1), One("retry", "{}"));
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->first_position, 2u);
    }
    ASSERT_TRUE((*store)->Close().ok());
  }
}

// Records written before request framing (no boundary bits) each stand alone.
TEST(StoreAtomicRequestTest, RecordsWithoutRequestFramingStandAlone) {
  ScratchDir dir;
  std::string bytes;
  for (uint64_t p = 1; p <= 3; ++p) {
    std::string rec;
    internal::AppendRecord(&rec, {.position = p,
                                  .stream_version = p,
                                  .stream = "s",
                                  .type = "t",
                                  .payload = "x",
                                  .ends_request = false});
    // Clear the framing bits (bytes 8 + 24 .. 25 hold the stream field) and reseal the CRC, as
    // an older writer would have written it.
    rec[8 + 25] = static_cast<char>(static_cast<unsigned char>(rec[8 + 25]) & 0x3F);
    const uint32_t crc = internal::Crc32c(rec.data() + 8, rec.size() - 8);
    for (int i = 0; i < 4; ++i) rec[4 + i] = static_cast<char>(crc >> (8 * i));
    bytes += rec;
  }
  WriteBytes(dir.path() + "/segment-00000000000000000001.log", bytes);
  auto store = EventStore::Open({.data_dir = dir.path()});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->LastPosition(), 3u);
  EXPECT_EQ((*store)->recovery().truncated_bytes, 0u);
}

// A request left open at the end of a segment that is not the last cannot be a torn write.
TEST(StoreAtomicRequestTest, RequestOpenAtTheEndOfAnEarlierSegmentIsDataLoss) {
  ScratchDir dir;
  std::string first, second;
  internal::AppendRecord(
      &first,
      {.position = 1, .stream_version = 1, .stream = "s", .type = "t", .ends_request = false});
  internal::AppendRecord(&second, {.position = 2, .stream_version = 2, .stream = "s", .type = "t"});
  WriteBytes(dir.path() + "/segment-00000000000000000001.log", first);
  WriteBytes(dir.path() + "/segment-00000000000000000002.log", second);
  auto store = EventStore::Open({.data_dir = dir.path()});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("ends inside a request"));
}

}  // namespace
}  // namespace metrics::store

// ---- The durable watermark (sync marks) --------------------------------------------------------

namespace metrics::store {
namespace {

// Appends `n` single-event batches under `policy`, closing without the final sync mattering (the
// marks are written when the batches are); returns the offset where each batch starts.
std::vector<size_t> FillBatches(const std::string& dir, FsyncPolicy policy, int n) {
  std::vector<size_t> starts;
  auto store = EventStore::Open({.data_dir = dir, .fsync = policy, .interval_ms = 3'600'000});
  EXPECT_TRUE(store.ok()) << store.status();
  for (int i = 0; i < n; ++i) {
    starts.push_back((*store)->SizeBytes());
    EXPECT_TRUE((*store)->Append("s", ExpectedVersion::kAny, One("t", absl::StrCat("p-", i))).ok());
  }
  EXPECT_TRUE((*store)->Close().ok());
  return starts;
}

bool Marked(const std::string& bytes, size_t offset) {
  internal::RecordView r;
  size_t frame = 0;
  EXPECT_EQ(internal::ParseRecord(bytes.data() + offset, bytes.size() - offset, &r, &frame),
            internal::ParseStatus::kOk);
  return r.sync_mark;
}

TEST(StoreWatermarkTest, EveryBatchMarksEveryBatchAndNeverTheOthers) {
  ScratchDir every, never;
  const std::vector<size_t> e = FillBatches(every.path(), FsyncPolicy::kEveryBatch, 4);
  const std::vector<size_t> n = FillBatches(never.path(), FsyncPolicy::kNever, 4);
  const std::string eb = ReadBytes(every.Segments()[0]), nb = ReadBytes(never.Segments()[0]);
  for (size_t i = 0; i < 4; ++i) EXPECT_TRUE(Marked(eb, e[i])) << i;
  // Under kNever only the first write of the new segment starts where a sync ended (offset 0).
  EXPECT_TRUE(Marked(nb, n[0]));
  for (size_t i = 1; i < 4; ++i) EXPECT_FALSE(Marked(nb, n[i])) << i;
}

TEST(StoreWatermarkTest, AHoleInUnsyncedBatchesFollowedByValidOnesIsATornTail) {
  // Writeback of unsynced data can leave a hole before pages that made it: under kNever nothing
  // after the first batch was ever synced, so a hole there is a torn tail, not corruption.
  ScratchDir dir;
  const std::vector<size_t> starts = FillBatches(dir.path(), FsyncPolicy::kNever, 5);
  const std::string segment = dir.Segments()[0];
  std::string bytes = ReadBytes(segment);
  for (size_t i = starts[2]; i < starts[3]; ++i) bytes[i] = '\0';  // batch 3 never reached disk
  WriteBytes(segment, bytes);
  ::testing::internal::CaptureStderr();
  auto store = EventStore::Open({.data_dir = dir.path()});
  const std::string err = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->LastPosition(), 2u);
  EXPECT_EQ((*store)->recovery().truncated_offset, starts[2]);
  EXPECT_EQ((*store)->recovery().truncated_bytes, bytes.size() - starts[2]);
  EXPECT_THAT(err, HasSubstr("truncated a torn tail"));
  EXPECT_EQ(ReadBytes(segment).size(), starts[2]);
}

TEST(StoreWatermarkTest, AHoleBeforeASyncMarkIsDataLoss) {
  // Under kEveryBatch batch 4 was written after batch 3 was synced: a bad batch 3 is lost
  // durable data, and Open refuses, naming the segment and offset, without cutting anything.
  ScratchDir dir;
  const std::vector<size_t> starts = FillBatches(dir.path(), FsyncPolicy::kEveryBatch, 5);
  const std::string segment = dir.Segments()[0];
  std::string bytes = ReadBytes(segment);
  for (size_t i = starts[2]; i < starts[3]; ++i) bytes[i] = '\0';
  WriteBytes(segment, bytes);
  auto store = EventStore::Open({.data_dir = dir.path()});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr(segment));
  EXPECT_THAT(store.status().message(), HasSubstr(absl::StrCat("at offset ", starts[2])));
  EXPECT_THAT(store.status().message(), HasSubstr("durable watermark"));
  EXPECT_EQ(ReadBytes(segment), bytes);
}

TEST(StoreWatermarkTest, AHoleInsideTheLastBatchIsATornTailWhateverFollowsInIt) {
  // One multi-event request is one write: its first record is marked, the rest are not. A hole
  // in its second record with the third intact (pages written out of order) drops the request.
  ScratchDir dir;
  size_t batch_start = 0;
  {
    auto store = EventStore::Open({.data_dir = dir.path()});
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->Append("s", ExpectedVersion::kAny, One("t", "before")).ok());
    batch_start = (*store)->SizeBytes();
    std::vector<NewEvent> three = {
        {"a", std::string(300, 'a')}, {"b", std::string(300, 'b')}, {"c", std::string(300, 'c')}};
    ASSERT_TRUE((*store)->Append("s", ExpectedVersion::kAny, three).ok());
    ASSERT_TRUE((*store)->Close().ok());
  }
  const std::string segment = dir.Segments()[0];
  std::string bytes = ReadBytes(segment);
  const size_t second = batch_start + internal::FramedSize(1, 1, 300);
  for (size_t i = second + 20; i < second + 200; ++i) bytes[i] = '\0';
  WriteBytes(segment, bytes);
  auto store = EventStore::Open({.data_dir = dir.path()});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->LastPosition(), 1u);
  EXPECT_EQ((*store)->recovery().truncated_offset, batch_start);
  auto all = (*store)->ReadAll();
  ASSERT_TRUE(all.ok());
  ASSERT_THAT(*all, SizeIs(1));
  EXPECT_EQ((*all)[0].payload, "before");
}

TEST(StoreWatermarkTest, TheMarkRoundTripsAndKeepsTheCrcValid) {
  std::string buf;
  internal::AppendRecord(&buf, {.position = 7, .stream_version = 1, .stream = "s", .type = "t"});
  internal::RecordView r;
  size_t frame = 0;
  ASSERT_EQ(internal::ParseRecord(buf.data(), buf.size(), &r, &frame), internal::ParseStatus::kOk);
  EXPECT_FALSE(r.sync_mark);
  internal::SetSyncMark(buf.data());
  ASSERT_EQ(internal::ParseRecord(buf.data(), buf.size(), &r, &frame), internal::ParseStatus::kOk);
  EXPECT_TRUE(r.sync_mark);
  EXPECT_EQ(r.position, 7u);  // the mark is not part of the position
}

}  // namespace
}  // namespace metrics::store
