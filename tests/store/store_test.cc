// The event store's API: appends, reads, versions, validation, fsync policies, durability across
// reopen, segment rolling.
#include "store/event_store.h"

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/projections.h"
#include "tests/store/store_test_util.h"

namespace metrics::store {
namespace {

using ::metrics::store::testing_util::ScratchDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

std::unique_ptr<EventStore> OpenOrDie(const StoreOptions& o) {
  auto s = EventStore::Open(o);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *std::move(s) : nullptr;
}

std::vector<NewEvent> One(std::string type, std::string payload) {
  std::vector<NewEvent> v;
  v.push_back({std::move(type), std::move(payload)});
  return v;
}

std::vector<uint64_t> Positions(const std::vector<Event>& events) {
  std::vector<uint64_t> out;
  for (const Event& e : events) out.push_back(e.position);
  return out;
}

TEST(StoreTest, ExpectedVersionBasics) {
  EXPECT_TRUE(ExpectedVersion::kAny.Matches(0));
  EXPECT_TRUE(ExpectedVersion::kAny.Matches(7));
  EXPECT_TRUE(ExpectedVersion::kNoStream.Matches(0));
  EXPECT_FALSE(ExpectedVersion::kNoStream.Matches(1));
  EXPECT_TRUE(ExpectedVersion::Exact(3).Matches(3));
  EXPECT_FALSE(ExpectedVersion::Exact(3).Matches(2));
  EXPECT_EQ(ExpectedVersion::Exact(0), ExpectedVersion::kNoStream);
  EXPECT_EQ(ExpectedVersion::kAny.ToString(), "any");
  EXPECT_EQ(ExpectedVersion::kNoStream.ToString(), "no stream");
  EXPECT_EQ(ExpectedVersion::Exact(12).ToString(), "12");
}

TEST(StoreTest, AppendAndRead) {
  auto store = OpenOrDie({});
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->LastPosition(), 0u);

  auto r1 = store->Append("team-red", ExpectedVersion::kNoStream,
                          {{"team.registered", R"({"team":"red","name":"Red"})"},
                           {"status.updated", R"({"team":"red","status":"ready"})"}});
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ(r1->first_position, 1u);
  EXPECT_EQ(r1->last_position, 2u);
  EXPECT_EQ(r1->last_stream_version, 2u);

  auto r2 = store->Append("team-blue", ExpectedVersion::kAny, One("team.registered", "{}"));
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->first_position, 3u);
  EXPECT_EQ(r2->last_stream_version, 1u);

  auto r3 = store->Append("team-red", ExpectedVersion::Exact(2), One("status.updated", "x"));
  ASSERT_TRUE(r3.ok()) << r3.status();
  EXPECT_EQ(r3->first_position, 4u);
  EXPECT_EQ(r3->last_stream_version, 3u);
  EXPECT_EQ(store->LastPosition(), 4u);

  auto all = store->ReadAll();
  ASSERT_TRUE(all.ok());
  ASSERT_THAT(*all, SizeIs(4));
  EXPECT_THAT(Positions(*all), ElementsAre(1, 2, 3, 4));
  EXPECT_EQ((*all)[0].stream, "team-red");
  EXPECT_EQ((*all)[0].stream_version, 1u);
  EXPECT_EQ((*all)[0].type, "team.registered");
  EXPECT_EQ((*all)[0].payload, R"({"team":"red","name":"Red"})");
  EXPECT_EQ((*all)[2].stream, "team-blue");
  EXPECT_EQ((*all)[3].stream_version, 3u);
  // Timestamps: assigned by the store, plausible, non-decreasing along positions.
  for (size_t i = 0; i < all->size(); ++i) {
    EXPECT_GT((*all)[i].timestamp_ns, int64_t{1'600'000'000} * 1'000'000'000);
    if (i > 0) {
      EXPECT_GE((*all)[i].timestamp_ns, (*all)[i - 1].timestamp_ns);
    }
  }
  // One batch, one timestamp.
  EXPECT_EQ((*all)[0].timestamp_ns, (*all)[1].timestamp_ns);

  auto red = store->ReadStream("team-red");
  ASSERT_TRUE(red.ok());
  EXPECT_THAT(Positions(*red), ElementsAre(1, 2, 4));
  auto red_from_2 = store->ReadStream("team-red", 2);
  EXPECT_THAT(Positions(*red_from_2), ElementsAre(2, 4));
  auto red_max_1 = store->ReadStream("team-red", 1, 1);
  EXPECT_THAT(Positions(*red_max_1), ElementsAre(1));
  EXPECT_THAT(*store->ReadStream("team-red", 4), SizeIs(0));
  EXPECT_THAT(*store->ReadStream("nobody"), SizeIs(0));

  EXPECT_THAT(Positions(*store->ReadAll(3)), ElementsAre(3, 4));
  EXPECT_THAT(Positions(*store->ReadAll(0, 2)), ElementsAre(1, 2));
  EXPECT_THAT(Positions(*store->ReadAll(2, 2)), ElementsAre(2, 3));
  EXPECT_THAT(*store->ReadAll(5), SizeIs(0));

  EXPECT_EQ(*store->StreamVersion("team-red"), 3u);
  EXPECT_EQ(*store->StreamVersion("team-blue"), 1u);
  EXPECT_EQ(*store->StreamVersion("nobody"), 0u);
  EXPECT_GT(store->SizeBytes(), 0u);
}

TEST(StoreTest, InMemorySizeIsFramedBytes) {
  auto store = OpenOrDie({});
  ASSERT_TRUE(store->Append("s", ExpectedVersion::kAny, One("t", std::string(100, 'x'))).ok());
  // 8 header + 32 fixed body + stream + type + payload.
  EXPECT_EQ(store->SizeBytes(), 8u + 32 + 1 + 1 + 100);
}

TEST(StoreTest, VersionConflictWritesNothing) {
  ScratchDir dir;
  auto store = OpenOrDie({.data_dir = dir.path()});
  ASSERT_TRUE(store->Append("orders-1", ExpectedVersion::kNoStream, One("order.placed", "a")).ok());
  const uint64_t size = store->SizeBytes();

  auto again = store->Append("orders-1", ExpectedVersion::kNoStream, One("order.placed", "b"));
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(again.status().message(), HasSubstr("orders-1"));
  EXPECT_THAT(again.status().message(), HasSubstr("expected no stream, actual 1"));

  auto stale = store->Append("orders-1", ExpectedVersion::Exact(5),
                             {{"order.paid", "c"}, {"order.shipped", "d"}});
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(stale.status().message(), HasSubstr("expected 5, actual 1"));

  auto missing = store->Append("orders-2", ExpectedVersion::Exact(1), One("order.paid", "e"));
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("expected 1, actual no stream"));

  EXPECT_EQ(store->LastPosition(), 1u);
  EXPECT_EQ(store->SizeBytes(), size);
  EXPECT_EQ(*store->StreamVersion("orders-1"), 1u);
  EXPECT_EQ(*store->StreamVersion("orders-2"), 0u);

  // The next good append gets the next position: nothing was consumed by the failures.
  auto ok = store->Append("orders-1", ExpectedVersion::Exact(1), One("order.paid", "f"));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->first_position, 2u);
  ASSERT_TRUE(store->Close().ok());

  auto reopened = OpenOrDie({.data_dir = dir.path()});
  auto all = reopened->ReadAll();
  ASSERT_THAT(*all, SizeIs(2));
  EXPECT_EQ((*all)[0].payload, "a");
  EXPECT_EQ((*all)[1].payload, "f");
}

TEST(StoreTest, ValidationErrors) {
  auto store = OpenOrDie({});
  auto expect_invalid = [&](std::string_view stream, std::vector<NewEvent> events,
                            std::string_view what) {
    auto r = store->Append(stream, ExpectedVersion::kAny, std::move(events));
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr(what));
  };
  expect_invalid("", One("t", ""), "stream id is empty");
  expect_invalid(std::string(257, 'a'), One("t", ""), "257 bytes long, the limit is 256");
  expect_invalid("has space", One("t", ""), "outside [A-Za-z0-9._:-] at offset 3");
  expect_invalid("slash/no", One("t", ""), "at offset 5");
  expect_invalid("s", {}, "no events");
  expect_invalid("s", One("", "x"), "event #0 has an empty type");
  expect_invalid("s", {{"ok", ""}, {std::string(129, 't'), ""}},
                 "event #1 type is 129 bytes long, the limit is 128");
  expect_invalid("s", One("bad\xff", ""), "not valid UTF-8");
  expect_invalid("s", One("new\nline", ""), "control character");
  expect_invalid("s", One("t", std::string((1 << 20) + 1, 'p')),
                 "payload is 1048577 bytes, the limit is 1048576");
  EXPECT_EQ(store->LastPosition(), 0u);

  // At the limits: fine.
  EXPECT_TRUE(store
                  ->Append(std::string(256, 'a') + "", ExpectedVersion::kAny,
                           One(std::string(128, 't'), std::string(1 << 20, 'p')))
                  .ok());
  EXPECT_TRUE(store->Append("Aa0._:-z", ExpectedVersion::kAny, One("team.registered", "")).ok());

  EXPECT_EQ(store->ReadStream("bad stream").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->StreamVersion("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(StoreTest, OptionValidation) {
  auto bad = [](StoreOptions o, std::string_view what) {
    auto s = EventStore::Open(o);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.status().message(), HasSubstr(what));
  };
  bad({.fsync = FsyncPolicy::kInterval, .interval_ms = 0}, "interval_ms");
  bad({.segment_bytes = 0}, "segment_bytes");
  bad({.max_event_types = 0}, "max_event_types");
  bad({.max_payload_bytes = size_t{65} << 20}, "max_payload_bytes");
}

TEST(StoreTest, CustomLimits) {
  auto store = OpenOrDie({.max_stream_bytes = 4, .max_type_bytes = 3, .max_payload_bytes = 2});
  EXPECT_TRUE(store->Append("abcd", ExpectedVersion::kAny, One("abc", "pp")).ok());
  EXPECT_FALSE(store->Append("abcde", ExpectedVersion::kAny, One("abc", "pp")).ok());
  EXPECT_FALSE(store->Append("abcd", ExpectedVersion::kAny, One("abcd", "pp")).ok());
  EXPECT_FALSE(store->Append("abcd", ExpectedVersion::kAny, One("abc", "ppp")).ok());
}

TEST(StoreTest, AppendAfterCloseFails) {
  auto store = OpenOrDie({});
  ASSERT_TRUE(store->Append("s", ExpectedVersion::kAny, One("t", "p")).ok());
  ASSERT_TRUE(store->Close().ok());
  ASSERT_TRUE(store->Close().ok());  // idempotent
  auto r = store->Append("s", ExpectedVersion::kAny, One("t", "p"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(), HasSubstr("closed"));
  // Reads keep working.
  EXPECT_THAT(*store->ReadAll(), SizeIs(1));
  EXPECT_EQ(store->AddProjection("p", [](const Event&) { return absl::OkStatus(); }).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(StoreTest, DurableRoundTripRebuildsIndexesAndProjections) {
  ScratchDir dir;
  uint64_t size_before = 0;
  std::vector<Event> before;
  {
    auto store = OpenOrDie({.data_dir = dir.path()});
    ASSERT_TRUE(store
                    ->Append("team-red", ExpectedVersion::kNoStream,
                             One("team.registered", R"({"team":"red","name":"Red Team"})"))
                    .ok());
    ASSERT_TRUE(store
                    ->Append("team-blue", ExpectedVersion::kNoStream,
                             One("team.registered", R"({"team":"blue","name":"Blue Team"})"))
                    .ok());
    ASSERT_TRUE(store
                    ->Append("team-red", ExpectedVersion::Exact(1),
                             {{"status.updated", R"({"team":"red","status":"ready"})"},
                              {"status.updated", R"({"team":"red","status":"playing"})"}})
                    .ok());
    ASSERT_TRUE(store
                    ->Append("bin", ExpectedVersion::kAny,
                             One("blob", std::string("\0\x01\xff binary", 10)))
                    .ok());
    size_before = store->SizeBytes();
    before = *store->ReadAll();
    ASSERT_TRUE(store->Close().ok());
  }
  ASSERT_THAT(dir.Segments(), SizeIs(1));
  EXPECT_EQ(testing_util::ReadBytes(dir.Segments()[0]).size(), size_before);

  auto store = OpenOrDie({.data_dir = dir.path()});
  EXPECT_EQ(store->recovery().events, 5u);
  EXPECT_EQ(store->recovery().segments, 1u);
  EXPECT_EQ(store->recovery().truncated_bytes, 0u);
  EXPECT_EQ(store->LastPosition(), 5u);
  EXPECT_EQ(store->SizeBytes(), size_before);
  EXPECT_EQ(*store->ReadAll(), before);  // every field, timestamps included
  EXPECT_EQ(*store->StreamVersion("team-red"), 3u);
  EXPECT_EQ(*store->StreamVersion("team-blue"), 1u);
  EXPECT_THAT(Positions(*store->ReadStream("team-red")), ElementsAre(1, 3, 4));

  // Projections added after the reopen replay from position 1.
  auto teams = std::make_shared<TeamsProjection>();
  auto status = std::make_shared<TeamStatusProjection>();
  ASSERT_TRUE(store->AddProjection(std::string(TeamsProjection::kName), AsProjection(teams)).ok());
  ASSERT_TRUE(
      store->AddProjection(std::string(TeamStatusProjection::kName), AsProjection(status)).ok());
  ASSERT_TRUE(store->WaitForProjections(store->LastPosition(), std::chrono::seconds(10)).ok());
  EXPECT_EQ(teams->size(), 2u);
  EXPECT_EQ(teams->Find("red")->name, "Red Team");
  EXPECT_EQ(teams->Find("blue")->name, "Blue Team");
  EXPECT_EQ(status->Find("red")->status, "playing");
  EXPECT_EQ(status->Find("red")->updates, 2u);
  EXPECT_FALSE(status->Find("blue").has_value());

  // Versions continue where they were.
  auto next = store->Append("team-red", ExpectedVersion::Exact(3),
                            One("status.updated", R"({"team":"red","status":"won"})"));
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->first_position, 6u);
  EXPECT_EQ(next->last_stream_version, 4u);
  ASSERT_TRUE(store->WaitForProjections(6, std::chrono::seconds(10)).ok());
  EXPECT_EQ(status->Find("red")->status, "won");
  EXPECT_GE((*store->ReadAll(6))[0].timestamp_ns, before.back().timestamp_ns);
}

TEST(StoreTest, DataDirIsLocked) {
  ScratchDir dir;
  auto first = OpenOrDie({.data_dir = dir.path()});
  auto second = EventStore::Open({.data_dir = dir.path()});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("in use"));
  ASSERT_TRUE(first->Close().ok());
  EXPECT_TRUE(EventStore::Open({.data_dir = dir.path()}).ok());
}

TEST(StoreTest, SegmentsRollOverAndReopen) {
  ScratchDir dir;
  const std::string payload(100, 'p');
  {
    auto store = OpenOrDie({.data_dir = dir.path(), .segment_bytes = 1000});
    for (int i = 0; i < 30; ++i) {
      ASSERT_TRUE(
          store->Append(absl::StrCat("s", i % 3), ExpectedVersion::kAny, One("t", payload)).ok());
    }
    // 143-byte records, six per 1000-byte segment.
    EXPECT_EQ(store->SizeBytes(), 30u * 143);
  }
  const std::vector<std::string> segments = dir.Segments();
  ASSERT_THAT(segments, SizeIs(5));
  EXPECT_THAT(segments[0], testing::EndsWith("/segment-00000000000000000001.log"));
  EXPECT_THAT(segments[1], testing::EndsWith("/segment-00000000000000000007.log"));
  EXPECT_THAT(segments[4], testing::EndsWith("/segment-00000000000000000025.log"));
  uint64_t total = 0;
  for (const std::string& s : segments) {
    const size_t n = testing_util::ReadBytes(s).size();
    EXPECT_LE(n, 1000u) << s;
    total += n;
  }
  EXPECT_EQ(total, 30u * 143);

  auto store = OpenOrDie({.data_dir = dir.path(), .segment_bytes = 1000});
  EXPECT_EQ(store->recovery().segments, 5u);
  EXPECT_EQ(store->LastPosition(), 30u);
  EXPECT_EQ(*store->StreamVersion("s0"), 10u);
  EXPECT_EQ(store->SizeBytes(), 30u * 143);
  auto r = store->Append("s0", ExpectedVersion::Exact(10), One("t", payload));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->first_position, 31u);
  // A batch is not split across segments: a big one may exceed segment_bytes.
  std::vector<NewEvent> big;
  for (int i = 0; i < 10; ++i) big.push_back({"t", payload});
  ASSERT_TRUE(store->Append("s1", ExpectedVersion::kAny, std::move(big)).ok());
  ASSERT_TRUE(store->Close().ok());
  // Position 31 no longer fits the fifth segment: a sixth; the batch from 32 a seventh.
  ASSERT_THAT(dir.Segments(), SizeIs(7));
  EXPECT_THAT(dir.Segments()[5], testing::EndsWith("/segment-00000000000000000031.log"));
  EXPECT_THAT(dir.Segments()[6], testing::EndsWith("/segment-00000000000000000032.log"));
  EXPECT_EQ(testing_util::ReadBytes(dir.Segments()[6]).size(), 10u * 143);
}

class StoreFsyncPolicyTest : public ::testing::TestWithParam<FsyncPolicy> {};

TEST_P(StoreFsyncPolicyTest, AppendsSurviveReopen) {
  ScratchDir dir;
  {
    auto store = OpenOrDie({.data_dir = dir.path(), .fsync = GetParam(), .interval_ms = 5});
    for (int i = 0; i < 50; ++i) {
      auto r = store->Append("s", ExpectedVersion::Exact(i), One("t", std::to_string(i)));
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->first_position, static_cast<uint64_t>(i + 1));
      // Let the interval policy's idle sync happen now and then.
      if (i % 10 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(7));
    }
    ASSERT_TRUE(store->Close().ok());
  }
  auto store = OpenOrDie({.data_dir = dir.path(), .fsync = GetParam(), .interval_ms = 5});
  auto all = store->ReadAll();
  ASSERT_THAT(*all, SizeIs(50));
  for (int i = 0; i < 50; ++i) EXPECT_EQ((*all)[i].payload, std::to_string(i));
}

INSTANTIATE_TEST_SUITE_P(Policies, StoreFsyncPolicyTest,
                         ::testing::Values(FsyncPolicy::kEveryBatch, FsyncPolicy::kInterval,
                                           FsyncPolicy::kNever),
                         [](const auto& info) {
                           switch (info.param) {
                             case FsyncPolicy::kEveryBatch:
                               return "EveryBatch";
                             case FsyncPolicy::kInterval:
                               return "Interval";
                             case FsyncPolicy::kNever:
                               return "Never";
                           }
                           return "?";
                         });

TEST(StoreTest, UnwritableDataDirFailsOpen) {
  ScratchDir dir;
  testing_util::WriteBytes(dir.File("file"), "x");
  auto s = EventStore::Open({.data_dir = dir.File("file") + "/sub"});
  EXPECT_FALSE(s.ok());
}

}  // namespace
}  // namespace metrics::store

// ---- Event ids: idempotent retries ------------------------------------------------------------

namespace metrics::store {
namespace {

std::string Id(int n) {  // 16 bytes, like a UUID's binary form
  std::string id(16, '\0');
  for (int i = 0; i < 4; ++i) id[i] = static_cast<char>(n >> (8 * i));
  id[15] = 'x';
  return id;
}

std::vector<NewEvent> WithIds(std::vector<int> ids) {
  std::vector<NewEvent> v;
  for (int n : ids) v.push_back({.type = "t", .payload = absl::StrCat("p", n), .id = Id(n)});
  return v;
}

TEST(StoreEventIdTest, ARetryWithTheSameIdsWritesNothingAndReturnsTheOriginalPositions) {
  testing_util::ScratchDir dir;
  {
    auto store = *EventStore::Open({.data_dir = dir.path()});
    ASSERT_TRUE(store->Append("other", ExpectedVersion::kAny, WithIds({100})).ok());
    auto first = store->Append("acct", ExpectedVersion::kNoStream, WithIds({1, 2, 3}));
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_FALSE(first->duplicate);
    // The client never heard back and retries, with the same (now stale) expected version.
    auto retry = store->Append("acct", ExpectedVersion::kNoStream, WithIds({1, 2, 3}));
    ASSERT_TRUE(retry.ok()) << retry.status();
    EXPECT_TRUE(retry->duplicate);
    EXPECT_EQ(retry->first_position, first->first_position);
    EXPECT_EQ(retry->last_position, first->last_position);
    EXPECT_EQ(retry->last_stream_version, 3u);
    EXPECT_EQ(store->LastPosition(), 4u);
    // Ids are per stream: the same id elsewhere is a new event.
    EXPECT_FALSE(store->Append("elsewhere", ExpectedVersion::kAny, WithIds({1}))->duplicate);
    // A consecutive run of events the stream holds, in order, is a duplicate as well.
    auto part = store->Append("acct", ExpectedVersion::kAny, WithIds({2, 3}));
    ASSERT_TRUE(part.ok());
    EXPECT_TRUE(part->duplicate);
    EXPECT_EQ(part->first_position, 3u);
    // Overlapping but not such a run: refused, nothing written.
    for (const std::vector<int>& clash : {std::vector<int>{3, 4}, {2, 1}, {2, 3, 4}, {9, 1}}) {
      auto r = store->Append("acct", ExpectedVersion::kAny, WithIds(clash));
      EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
    }
    EXPECT_EQ(store->LastPosition(), 5u);
    auto events = store->ReadStream("acct");
    ASSERT_EQ(events->size(), 3u);
    EXPECT_EQ((*events)[1].id, Id(2));
    ASSERT_TRUE(store->Close().ok());
  }
  // Remembered across a restart: recovery rebuilds the index from the records.
  auto store = *EventStore::Open({.data_dir = dir.path()});
  auto again = store->Append("acct", ExpectedVersion::Exact(3), WithIds({1, 2, 3}));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->first_position, 2u);
  EXPECT_EQ((*store->ReadStream("acct"))[2].id, Id(3));
  EXPECT_FALSE(store->Append("acct", ExpectedVersion::Exact(3), WithIds({4}))->duplicate);
}

TEST(StoreEventIdTest, IdsAreValidated) {
  auto store = *EventStore::Open({});
  std::vector<NewEvent> short_id = {{.type = "t", .id = "abc"}};
  EXPECT_EQ(store->Append("s", ExpectedVersion::kAny, short_id).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<NewEvent> mixed = {{.type = "t", .id = Id(1)}, {.type = "t"}};
  EXPECT_EQ(store->Append("s", ExpectedVersion::kAny, mixed).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->Append("s", ExpectedVersion::kAny, WithIds({5, 5})).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->LastPosition(), 0u);
}

TEST(StoreEventIdTest, ConcurrentRetriesOfOneRequestStoreItOnce) {
  testing_util::ScratchDir dir;
  auto store = *EventStore::Open({.data_dir = dir.path()});
  std::vector<std::thread> threads;
  std::atomic<int> originals{0}, duplicates{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int k = 0; k < 50; ++k) {
        auto r = store->Append("s", ExpectedVersion::kAny, WithIds({2 * k, 2 * k + 1}));
        ASSERT_TRUE(r.ok()) << r.status();
        (r->duplicate ? duplicates : originals).fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(originals.load(), 50);
  EXPECT_EQ(duplicates.load(), 350);
  EXPECT_EQ(store->LastPosition(), 100u);
}

}  // namespace
}  // namespace metrics::store

namespace metrics::store {
namespace {

// Payloads live on disk (or, in-memory mode, in chunks of records): reads by position and by
// stream return exactly what was appended, across segment files and memory chunks, interleaved
// streams, before and after a reopen.
void CheckReadsAcrossSegments(const std::string& data_dir) {
  // 1 KiB to 700 KiB payloads: a few segments of 1 MiB, and several 4 MiB memory chunks.
  std::vector<Event> expected;
  auto store = EventStore::Open({.data_dir = data_dir, .segment_bytes = size_t{1} << 20});
  ASSERT_TRUE(store.ok()) << store.status();
  for (int i = 0; i < 60; ++i) {
    const std::string stream = absl::StrCat("s", i % 3);
    const std::string payload(static_cast<size_t>(1024 + (i * 7919) % (700 << 10)),
                              static_cast<char>('a' + i % 26));
    std::vector<NewEvent> batch = {{absl::StrCat("t", i), payload}};
    auto r = (*store)->Append(stream, ExpectedVersion::kAny, batch);
    ASSERT_TRUE(r.ok()) << r.status();
    expected.push_back({.position = r->first_position,
                        .stream = stream,
                        .stream_version = r->last_stream_version,
                        .type = absl::StrCat("t", i),
                        .payload = payload});
  }
  auto check = [&](EventStore& s) {
    auto all = s.ReadAll(1);
    ASSERT_TRUE(all.ok()) << all.status();
    ASSERT_EQ(all->size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ((*all)[i].position, expected[i].position);
      EXPECT_EQ((*all)[i].stream, expected[i].stream);
      EXPECT_EQ((*all)[i].type, expected[i].type);
      EXPECT_EQ((*all)[i].payload, expected[i].payload) << i;
    }
    for (uint64_t from : {1u, 17u, 59u}) {  // pages starting anywhere
      auto page = s.ReadAll(from, 7);
      ASSERT_TRUE(page.ok());
      ASSERT_EQ(page->size(), std::min<size_t>(7, expected.size() - from + 1));
      EXPECT_EQ((*page)[0].payload, expected[from - 1].payload);
    }
    auto s1 = s.ReadStream("s1", 3, 5);
    ASSERT_TRUE(s1.ok());
    ASSERT_EQ(s1->size(), 5u);
    for (size_t k = 0; k < 5; ++k) {
      const Event& want = expected[1 + 3 * (2 + k)];  // s1 holds i = 1, 4, 7, ...
      EXPECT_EQ((*s1)[k].stream_version, 3 + k);
      EXPECT_EQ((*s1)[k].payload, want.payload);
    }
  };
  check(**store);
  ASSERT_TRUE((*store)->Close().ok());
  if (data_dir.empty()) return;
  auto reopened = EventStore::Open({.data_dir = data_dir, .segment_bytes = size_t{1} << 20});
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  check(**reopened);
}

TEST(StoreReadTest, ReadsAcrossSegmentFiles) {
  testing_util::ScratchDir dir;
  CheckReadsAcrossSegments(dir.path());
  EXPECT_GT(dir.Segments().size(), 5u);
}

TEST(StoreReadTest, ReadsAcrossMemoryChunks) { CheckReadsAcrossSegments(""); }

}  // namespace
}  // namespace metrics::store
