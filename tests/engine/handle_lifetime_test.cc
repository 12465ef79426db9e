// Handle lifetimes: moves leave the source on the sink (so a moved-from handle can never write
// into a series that recycled its cells, nor read a freed layout), and references returned by
// WithLabelValues stay valid across any number of later lookups. Meant for ASan (label unit).
#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/internal/cells.h"
#include "engine/registry.h"
#include "gtest/gtest.h"

namespace metrics {
namespace {

const FamilySnapshot* Find(const Snapshot& s, std::string_view name) {
  for (const FamilySnapshot& f : s.families) {
    if (f.desc->name == name) return &f;
  }
  return nullptr;
}

double CounterValue(const Registry& r, std::string_view name, std::vector<std::string> labels) {
  Snapshot s = r.Collect();
  const FamilySnapshot* f = Find(s, name);
  if (f == nullptr) return -1;
  for (const SeriesSample& x : f->samples) {
    if (*x.label_values == labels) return x.Total();
  }
  return -1;
}

uint64_t HistogramCount(const Registry& r, std::string_view name, std::vector<std::string> labels) {
  Snapshot s = r.Collect();
  const FamilySnapshot* f = Find(s, name);
  if (f == nullptr) return ~uint64_t{0};
  for (size_t i = 0; i < f->samples.size(); ++i) {
    if (*f->samples[i].label_values == labels) return f->histograms[i].count;
  }
  return ~uint64_t{0};
}

TEST(HandleLifetimeTest, MovedFromCounterCannotWriteIntoTheSeriesThatRecyclesItsCells) {
  Registry r;
  auto f = r.AddCounter({.name = "x_total", .help = "h", .label_names = {"k"}});
  Counter a = *f->Bind({"old"});
  {
    Counter b = std::move(a);
    b.Inc();
    ASSERT_TRUE(f->Remove({"old"}).ok());
  }  // b, the last reference, is gone: the cells are zeroed and free
  Counter fresh = *f->Bind({"new"});  // takes the recycled block
  a.Inc(1000);
  a.Add(0.5);
  EXPECT_EQ(CounterValue(r, "x_total", {"new"}), 0);
  fresh.Inc();
  EXPECT_EQ(CounterValue(r, "x_total", {"new"}), 1);
}

TEST(HandleLifetimeTest, MoveAssignAndSelfMove) {
  Registry r;
  auto f = r.AddCounter({.name = "y_total", .help = "h", .label_names = {"k"}});
  Counter a = *f->Bind({"a"});
  Counter b = *f->Bind({"b"});
  b = std::move(a);  // b now writes to "a"; a to the sink
  b.Inc(2);
  a.Inc(5);
  EXPECT_EQ(CounterValue(r, "y_total", {"a"}), 2);
  EXPECT_EQ(CounterValue(r, "y_total", {"b"}), 0);
  Counter& alias = b;
  b = std::move(alias);  // self-move keeps the handle whole
  b.Inc();
  EXPECT_EQ(CounterValue(r, "y_total", {"a"}), 3);
  Counter c = b;  // copies share the series
  c.Inc();
  EXPECT_EQ(CounterValue(r, "y_total", {"a"}), 4);
}

TEST(HandleLifetimeTest, MovedFromHistogramObservesIntoTheSinkNotAFreedLayout) {
  Registry r;
  auto f = r.AddHistogram({.name = "h_seconds", .help = "h", .label_names = {"k"}},
                          {.buckets = {0.1, 1, 10}, .schema = 1});
  Histogram a = *f->Bind({"old"});
  {
    Histogram b = std::move(a);
    b.Observe(0.5);
    ASSERT_TRUE(f->Remove({"old"}).ok());
  }  // the series and its layout are freed
  Histogram fresh = *f->Bind({"new"});
  for (double v : {0.05, 0.5, 5.0, 50.0, -1.0}) a.Observe(v);  // ASan: no use of the freed layout
  EXPECT_EQ(HistogramCount(r, "h_seconds", {"new"}), 0u);
  Histogram c = *f->Bind({"c"});
  Histogram d;
  d = std::move(c);
  d.Observe(1);
  c.Observe(1);
  Histogram& alias = d;
  d = std::move(alias);
  d.Observe(2);
  EXPECT_EQ(HistogramCount(r, "h_seconds", {"c"}), 2u);
}

TEST(HandleLifetimeTest, MovedFromGaugeWritesToTheSink) {
  Registry r;
  auto f = r.AddGauge({.name = "g", .help = "h", .label_names = {"k"}});
  Gauge a = *f->Bind({"a"});
  Gauge b = std::move(a);
  b.Set(3);
  a.Set(100);
  Snapshot s = r.Collect();
  EXPECT_EQ(Find(s, "g")->samples[0].value, 3);
}

TEST(HandleLifetimeTest, WithLabelValuesReferenceSurvivesThousandsOfLookups) {
  Registry r;
  auto f = r.AddCounter({.name = "z_total", .help = "h", .label_names = {"k"}});
  auto g = r.AddHistogram({.name = "z_seconds", .help = "h", .label_names = {"k"}});
  // The prometheus-cpp habit: keep the reference the lookup returned.
  Counter& kept = f->WithLabelValues("kept");
  Histogram& kept_h = g->WithLabelValues("kept");
  for (int i = 0; i < 5000; ++i) {
    f->WithLabelValues(std::to_string(i)).Inc();  // grows (and rehashes) this thread's cache
    g->WithLabelValues(std::to_string(i)).Observe(i);
    kept.Inc();  // ASan: a use after free if the cache moved the entry
    kept_h.Observe(0.1);
  }
  EXPECT_EQ(CounterValue(r, "z_total", {"kept"}), 5000);
  EXPECT_EQ(CounterValue(r, "z_total", {"4999"}), 1);
  EXPECT_EQ(HistogramCount(r, "z_seconds", {"kept"}), 5000u);
  // Removing another series keeps this one's reference valid too.
  ASSERT_TRUE(f->Remove({"17"}).ok());
  f->WithLabelValues("after").Inc();
  kept.Inc();
  EXPECT_EQ(CounterValue(r, "z_total", {"kept"}), 5001);
}

}  // namespace
}  // namespace metrics

namespace metrics {
namespace {

// Registries that give back: 100,000 short-lived registries, each used through WithLabelValues
// (which caches handles per thread), on 4 threads. Before registries removed their families on
// destruction, the thread caches kept every family alive and the cell space ran out after ~15,000.
TEST(RegistryLifetimeTest, DestroyedRegistriesReturnTheirCellsWhateverThreadsCached) {
  const uint64_t base = internal::CellAllocator::CellsInUse();
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 25000; ++i) {
        Registry r;
        auto h = r.AddHistogram({.name = "job_seconds", .help = "h", .label_names = {"k"}});
        auto c = r.AddCounter({.name = "job_total", .help = "h", .label_names = {"k"}});
        if (!h.ok() || !c.ok()) {
          failures.fetch_add(1);
          return;
        }
        h->WithLabelValues("a").Observe(0.5);
        c->WithLabelValues("a").Inc();
        c->WithLabelValues("b").Inc();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0) << "the process ran out of cells";
  // Every thread has exited (letting go of its caches): every cell is back.
  EXPECT_EQ(internal::CellAllocator::CellsInUse(), base);
}

// A registry's families outlive it only as sinks: handles keep working, lookups go nowhere.
TEST(RegistryLifetimeTest, HandlesOutliveTheirRegistry) {
  Counter kept;
  std::optional<CounterFamily> family;
  {
    Registry r;
    family = *r.AddCounter({.name = "x_total", .help = "h", .label_names = {"k"}});
    kept = *family->Bind({"a"});
    family->WithLabelValues("b").Inc();
  }
  kept.Inc();
  family->WithLabelValues("c").Inc();
  EXPECT_EQ(family->Bind({"d"}).status().code(), absl::StatusCode::kFailedPrecondition);
}

// Removing a series in one family leaves the thread caches of other families as they are.
TEST(RegistryLifetimeTest, RemovingASeriesPurgesOnlyItsOwnFamilysCaches) {
  Registry r;
  auto a = r.AddCounter({.name = "a_total", .help = "h", .label_names = {"k"}});
  auto b = r.AddCounter({.name = "b_total", .help = "h", .label_names = {"k"}});
  Counter& in_b = b->WithLabelValues("kept");
  a->WithLabelValues("x").Inc();
  ASSERT_TRUE(a->Remove({"x"}).ok());
  a->WithLabelValues("y").Inc();  // purges a's cache only
  // b's cached entry is the same object: its cache was not purged (nor rebuilt).
  EXPECT_EQ(&b->WithLabelValues("kept"), &in_b);
  in_b.Inc();
  a->WithLabelValues("x").Inc();  // a fresh series, not the removed one
  Snapshot s = r.Collect();
  EXPECT_EQ(CounterValue(r, "a_total", {"x"}), 1);
  EXPECT_EQ(CounterValue(r, "b_total", {"kept"}), 1);
}

}  // namespace
}  // namespace metrics
