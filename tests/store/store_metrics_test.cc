// The store's metrics: exact counts per type, byte totals, size, the processing histogram, the
// cardinality cap on event types, projection updates/errors/lag.
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/event_store.h"
#include "store/internal/record.h"
#include "tests/store/store_test_util.h"

namespace metrics::store {
namespace {

using ::metrics::store::testing_util::FindFamily;
using ::metrics::store::testing_util::HistogramCount;
using ::metrics::store::testing_util::ScratchDir;
using ::metrics::store::testing_util::Value;
using ::testing::HasSubstr;

std::vector<NewEvent> One(std::string type, std::string payload) {
  std::vector<NewEvent> v;
  v.push_back({std::move(type), std::move(payload)});
  return v;
}

TEST(StoreMetricsTest, FamiliesAreRegisteredAtOpen) {
  Registry registry;
  auto store = EventStore::Open({.registry = &registry});
  ASSERT_TRUE(store.ok());
  const Snapshot s = registry.Collect();
  for (const char* name :
       {"events_stored_total", "events_stored_bytes_total", "event_store_size_bytes",
        "event_processing_duration_seconds", "projection_updates_total", "projection_errors_total",
        "projection_lag_seconds", "event_store_recovery_truncated_bytes_total"}) {
    EXPECT_NE(FindFamily(s, name), nullptr) << name;
  }
  EXPECT_EQ(FindFamily(s, "events_stored_total")->desc->label_names,
            std::vector<std::string>{"event_type"});
  EXPECT_EQ(FindFamily(s, "event_processing_duration_seconds")->desc->type, MetricType::kHistogram);
  EXPECT_EQ(FindFamily(s, "event_store_size_bytes")->desc->type, MetricType::kGauge);
  EXPECT_EQ(Value(registry, "events_stored_bytes_total"), 0);
  EXPECT_EQ(Value(registry, "event_store_recovery_truncated_bytes_total"), 0);
}

TEST(StoreMetricsTest, ExactCountsPerTypeAndBytes) {
  Registry registry;
  ScratchDir dir;
  auto opened = EventStore::Open({.data_dir = dir.path(), .registry = &registry});
  ASSERT_TRUE(opened.ok()) << opened.status();
  EventStore& store = **opened;

  const std::vector<std::string> types = {"team.registered", "status.updated", "score.changed"};
  std::map<std::string, int> count;
  uint64_t bytes = 0;
  int appends = 0;
  for (int i = 0; i < 300; ++i) {
    const std::string& type = types[(i * 7) % types.size()];
    const std::string payload(static_cast<size_t>(i % 50), 'x');
    if (i % 10 == 0) {  // a batch of three in one append
      ASSERT_TRUE(store
                      .Append(absl::StrCat("s", i % 4), ExpectedVersion::kAny,
                              {{type, payload}, {type, payload}, {"score.changed", "12"}})
                      .ok());
      count[type] += 2;
      count["score.changed"] += 1;
      bytes += 2 * payload.size() + 2;
    } else {
      ASSERT_TRUE(
          store.Append(absl::StrCat("s", i % 4), ExpectedVersion::kAny, One(type, payload)).ok());
      count[type] += 1;
      bytes += payload.size();
    }
    ++appends;
  }
  // Failures count nothing.
  ASSERT_FALSE(store.Append("s0", ExpectedVersion::kNoStream, One("team.registered", "x")).ok());
  ASSERT_FALSE(store.Append("s0", ExpectedVersion::kAny, One("", "x")).ok());

  for (const auto& [type, n] : count) {
    EXPECT_EQ(Value(registry, "events_stored_total", {type}), n) << type;
  }
  EXPECT_EQ(Value(registry, "events_stored_bytes_total"), static_cast<double>(bytes));
  EXPECT_EQ(Value(registry, "event_store_size_bytes"), static_cast<double>(store.SizeBytes()));
  EXPECT_EQ(HistogramCount(registry, "event_processing_duration_seconds"), appends);
  // The histogram's sum is positive and below a minute per append (no clock nonsense).
  const Snapshot s = registry.Collect();
  const HistogramSample& h = FindFamily(s, "event_processing_duration_seconds")->histograms[0];
  EXPECT_GT(h.sum, 0);
  EXPECT_LT(h.sum, 60.0 * appends);
  EXPECT_EQ(h.cumulative.back(), h.count);
}

// The first append's observation carries an exemplar naming its global position, in the bucket its
// latency fell in; later ones (within the exemplar interval, none slow) leave it alone.
TEST(StoreMetricsTest, ProcessingDurationCarriesPositionExemplar) {
  Registry registry;
  ScratchDir dir;
  auto opened = EventStore::Open({.data_dir = dir.path(), .registry = &registry});
  ASSERT_TRUE(opened.ok()) << opened.status();
  EventStore& store = **opened;
  ASSERT_TRUE(store.Append("a", ExpectedVersion::kAny, One("t", "x")).ok());
  auto second = store.Append("b", ExpectedVersion::kAny, {{"t", "y"}, {"t", "z"}});
  ASSERT_TRUE(second.ok());
  const Snapshot s = registry.Collect();
  const FamilySnapshot* f = FindFamily(s, "event_processing_duration_seconds");
  ASSERT_NE(f, nullptr);
  ASSERT_GE(f->exemplars.size(), 1u);
  ASSERT_LE(f->exemplars.size(), 2u);  // the second only if the test machine stalled >= 50 ms
  const ExemplarSample& x = f->exemplars[0];
  ASSERT_EQ(x.exemplar->labels.size(), 1u);
  EXPECT_EQ(x.exemplar->labels[0].first, "position");
  if (f->exemplars.size() == 1) {
    EXPECT_EQ(x.exemplar->labels[0].second, "1");
  }
  const std::vector<double>& b = f->desc->histogram->boundaries();
  EXPECT_TRUE(x.bucket == b.size() || x.exemplar->value <= b[x.bucket]);
  EXPECT_TRUE(x.bucket == 0 || x.exemplar->value > b[x.bucket - 1]);
}

TEST(StoreMetricsTest, SizeGaugeInMemoryCountsFramedBytes) {
  Registry registry;
  auto store = EventStore::Open({.registry = &registry});
  ASSERT_TRUE((*store)->Append("abc", ExpectedVersion::kAny, One("t1", std::string(10, 'p'))).ok());
  EXPECT_EQ(Value(registry, "event_store_size_bytes"),
            static_cast<double>(internal::FramedSize(3, 2, 10)));
}

TEST(StoreMetricsTest, EventTypesAreCappedIntoOverflow) {
  Registry registry;
  auto store = EventStore::Open({.registry = &registry, .max_event_types = 3});
  ASSERT_TRUE(store.ok());
  for (int i = 0; i < 10; ++i) {
    for (int j = 0; j <= i; ++j) {  // type i appended i+1 times
      ASSERT_TRUE(
          (*store)->Append("s", ExpectedVersion::kAny, One(absl::StrCat("type", i), "")).ok());
    }
  }
  const Snapshot s = registry.Collect();
  const FamilySnapshot* f = FindFamily(s, "events_stored_total");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->samples.size(), 4u);  // three types + __overflow__
  EXPECT_EQ(Value(registry, "events_stored_total", {"type0"}), 1);
  EXPECT_EQ(Value(registry, "events_stored_total", {"type1"}), 2);
  EXPECT_EQ(Value(registry, "events_stored_total", {"type2"}), 3);
  EXPECT_EQ(Value(registry, "events_stored_total", {"__overflow__"}), 4 + 5 + 6 + 7 + 8 + 9 + 10);
  // Nothing is lost in total.
  double total = 0;
  for (const SeriesSample& x : f->samples) total += x.Total();
  EXPECT_EQ(total, 55);
}

// The writer finds per-type counters through a cache keyed by length and first/last 8 bytes: types
// that agree on those (long ones differing in the middle), short ones and prefixes must still be
// counted apart.
TEST(StoreMetricsTest, LookalikeTypesAreCountedApart) {
  Registry registry;
  auto store = EventStore::Open({.registry = &registry});
  ASSERT_TRUE(store.ok());
  const std::vector<std::string> types = {
      "aaaaaaaaXaaaaaaaa",
      "aaaaaaaaYaaaaaaaa",  // 17 bytes, differ in the middle only
      "aaaaaaaaXaaaaaaa",
      "aaaaaaaaYaaaaaaa",  // 16 bytes: first and last 8 cover all
      "a",
      "b",
      "ab",
      "ba",
      "abc",
      "aXc",  // 1-3 bytes: first, middle and last
      "abcd",
      "abcX",
      "abXde",
      "abYde",
      "abcXefg",
      "abcYefg",  // 4-7 bytes: first and last 4 overlap in the middle
      "abcdefgh",
      "abcdefghi",
      "0123456789abcdefXYZ0123456789abcdef"};
  for (int round = 0; round < 3; ++round) {
    for (size_t i = 0; i < types.size(); ++i) {
      for (size_t k = 0; k <= i; ++k) {  // type i appended i+1 times per round, interleaved
        ASSERT_TRUE((*store)->Append("s", ExpectedVersion::kAny, One(types[i], "")).ok());
      }
    }
  }
  for (size_t i = 0; i < types.size(); ++i) {
    EXPECT_EQ(Value(registry, "events_stored_total", {types[i]}), 3.0 * (i + 1)) << types[i];
  }
}

TEST(StoreMetricsTest, ProjectionUpdatesErrorsAndLag) {
  Registry registry;
  auto opened = EventStore::Open({.registry = &registry,
                                  .projection_retries = 2,
                                  .projection_backoff = std::chrono::milliseconds(0)});
  ASSERT_TRUE(opened.ok());
  EventStore& store = **opened;

  int good_calls = 0;
  ASSERT_TRUE(store
                  .AddProjection("counting",
                                 [&](const Event&) {
                                   ++good_calls;
                                   return absl::OkStatus();
                                 })
                  .ok());
  int picky_calls = 0;
  ASSERT_TRUE(store
                  .AddProjection("picky",
                                 [&](const Event& e) {
                                   ++picky_calls;
                                   if (e.type == "poison")
                                     return absl::InternalError("cannot apply");
                                   return absl::OkStatus();
                                 })
                  .ok());
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(
        store.Append("s", ExpectedVersion::kAny, One(i % 5 == 4 ? "poison" : "fine", "")).ok());
  }
  ASSERT_TRUE(store.WaitForProjections(20, std::chrono::seconds(10)).ok());

  EXPECT_EQ(Value(registry, "projection_updates_total", {"counting"}), 20);
  EXPECT_EQ(Value(registry, "projection_errors_total", {"counting"}), 0);
  EXPECT_EQ(Value(registry, "projection_updates_total", {"picky"}), 16);
  EXPECT_EQ(Value(registry, "projection_errors_total", {"picky"}), 4);
  EXPECT_EQ(good_calls, 20);
  EXPECT_EQ(picky_calls, 16 + 4);  // a permanent failure (Internal) is not retried
  const double lag = Value(registry, "projection_lag_seconds", {"picky"});
  EXPECT_GE(lag, 0);
  EXPECT_LT(lag, 600);
  auto stats = store.GetProjectionStats("picky");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->applied_through, 20u);
  EXPECT_EQ(stats->updates, 16u);
  EXPECT_EQ(stats->errors, 4u);
  EXPECT_EQ(stats->retries, 0u);
}

TEST(StoreMetricsTest, NoRegistryMeansNoMetrics) {
  Registry registry;  // not given to the store
  auto store = EventStore::Open({});
  ASSERT_TRUE((*store)->Append("s", ExpectedVersion::kAny, One("t", "p")).ok());
  EXPECT_TRUE(registry.Collect().families.empty());
}

TEST(StoreMetricsTest, ConflictingRegistrationFailsOpen) {
  Registry registry;
  ASSERT_TRUE(registry.AddGauge({.name = "events_stored_total", .help = "something else"}).ok());
  auto store = EventStore::Open({.registry = &registry});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(store.status().message(), HasSubstr("events_stored_total"));
}

}  // namespace
}  // namespace metrics::store
