#include "engine/registry.h"

#include <cmath>
#include <limits>
#include <string>

#include "engine/internal/cells.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace metrics {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const FamilySnapshot* Find(const Snapshot& s, std::string_view name) {
  for (const FamilySnapshot& f : s.families) {
    if (f.desc->name == name) return &f;
  }
  return nullptr;
}

// The value of the series with these label values in family `name`, or NaN when absent.
double ValueOf(const Registry& r, std::string_view name, std::vector<std::string> labels = {}) {
  Snapshot s = r.Collect();
  const FamilySnapshot* f = Find(s, name);
  if (f == nullptr) return std::nan("");
  for (const SeriesSample& x : f->samples) {
    if (*x.label_values == labels)
      return f->desc->type == MetricType::kCounter ? x.Total() : x.value;
  }
  return std::nan("");
}

TEST(RegistryTest, CounterIncAndAdd) {
  Registry r;
  auto f = r.AddCounter({.name = "c_total", .help = "h"});
  ASSERT_TRUE(f.ok()) << f.status();
  Counter c = *f->Bind({});
  c.Inc();
  c.Inc(41);
  EXPECT_EQ(ValueOf(r, "c_total"), 42);
  c.Add(0.5);
  EXPECT_EQ(ValueOf(r, "c_total"), 42.5);
  Snapshot s = r.Collect();
  EXPECT_EQ(s.families[0].samples[0].int_value, 42u);
  EXPECT_EQ(s.families[0].samples[0].value, 0.5);
}

#ifdef NDEBUG  // in debug builds these fire assertions, by design
TEST(RegistryTest, NegativeAndNanIncrementsLeaveCounterUnchanged) {
  Registry r;
  Counter c = *r.AddCounter({.name = "c_total", .help = "h"})->Bind({});
  c.Inc(5);
  c.Add(-1.0);
  c.Add(std::numeric_limits<double>::quiet_NaN());
  c.Add(-std::numeric_limits<double>::infinity());
  c.Inc(-3);
  c.Inc(int64_t{-1});
  EXPECT_EQ(ValueOf(r, "c_total"), 5);
}
#endif

TEST(RegistryTest, AddInfinityIsAllowed) {
  Registry r;
  Counter c = *r.AddCounter({.name = "c_total", .help = "h"})->Bind({});
  c.Add(std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isinf(ValueOf(r, "c_total")));
}

TEST(RegistryTest, Gauge) {
  Registry r;
  auto f = r.AddGauge({.name = "g", .help = "h", .label_names = {"k"}});
  ASSERT_TRUE(f.ok());
  Gauge g = *f->Bind({"a"});
  g.Set(10);
  g.Inc();
  g.Dec();
  g.Dec();
  g.Add(0.25);
  g.Sub(2);
  EXPECT_EQ(g.Value(), 7.25);
  EXPECT_EQ(ValueOf(r, "g", {"a"}), 7.25);
  f->WithLabelValues("a").Set(-3);
  EXPECT_EQ(ValueOf(r, "g", {"a"}), -3);
}

TEST(RegistryTest, DefaultHandlesWriteToASink) {
  Counter c;
  c.Inc();
  c.Add(1.5);
  Gauge g;
  g.Set(3);
  EXPECT_EQ(g.Value(), 3);
}

TEST(RegistryTest, IdenticalRegistrationReturnsTheSameFamily) {
  Registry r;
  FamilyOptions o{
      .name = "x_total", .help = "h", .label_names = {"a"}, .const_labels = {{"svc", "s"}}};
  auto f1 = r.AddCounter(o);
  auto f2 = r.AddCounter(o);
  ASSERT_TRUE(f1.ok() && f2.ok());
  f1->WithLabelValues("v").Inc();
  f2->WithLabelValues("v").Inc();
  EXPECT_EQ(ValueOf(r, "x_total", {"v"}), 2);
  EXPECT_EQ(r.Collect().families.size(), 1u);
}

TEST(RegistryTest, ConflictingRegistrationNamesTheDifference) {
  Registry r;
  ASSERT_TRUE(r.AddCounter({.name = "x", .help = "h", .label_names = {"a"}}).ok());
  auto type = r.AddGauge({.name = "x", .help = "h", .label_names = {"a"}});
  EXPECT_EQ(type.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(type.status().message(), HasSubstr("type counter vs gauge"));
  auto help = r.AddCounter({.name = "x", .help = "other", .label_names = {"a"}});
  EXPECT_THAT(help.status().message(), HasSubstr("help"));
  auto labels = r.AddCounter({.name = "x", .help = "h", .label_names = {"b"}});
  EXPECT_THAT(labels.status().message(), HasSubstr("[a] vs [b]"));
  auto consts =
      r.AddCounter({.name = "x", .help = "h", .label_names = {"a"}, .const_labels = {{"c", "1"}}});
  EXPECT_THAT(consts.status().message(), HasSubstr("constant labels"));
}

TEST(RegistryTest, RegistrationValidation) {
  Registry r;
  EXPECT_EQ(r.AddCounter({.name = "1bad", .help = "h"}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.AddCounter({.name = "__x", .help = "h"}).status().message(), HasSubstr("reserved"));
  EXPECT_THAT(r.AddCounter({.name = "x", .help = "h", .label_names = {"__a"}}).status().message(),
              HasSubstr("reserved"));
  EXPECT_THAT(
      r.AddCounter({.name = "x", .help = "h", .label_names = {"a", "a"}}).status().message(),
      HasSubstr("duplicate"));
  EXPECT_THAT(r.AddCounter({.name = "x", .help = "bad \xff help"}).status().message(),
              HasSubstr("UTF-8"));
  EXPECT_THAT(
      r.AddGauge({.name = "metrics_cardinality_overflow_total", .help = "h"}).status().message(),
      HasSubstr("used by the registry"));
  EXPECT_TRUE(r.Collect().families.empty());
}

TEST(RegistryTest, BindValidatesLabelValues) {
  Registry r;
  auto f = r.AddCounter({.name = "x_total", .help = "h", .label_names = {"a", "b"}});
  auto arity = f->Bind({"only-one"});
  EXPECT_EQ(arity.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(arity.status().message(), HasSubstr("2 label names but 1 label values"));
  auto utf8 = f->Bind({"ok", "bad\xc3"});
  EXPECT_THAT(utf8.status().message(), HasSubstr("label \"b\" is not valid UTF-8"));
  // Quotes, backslashes, newlines and empty strings are valid values (escaped by exposition/).
  EXPECT_TRUE(f->Bind({"q\"uo\\te", "new\nline"}).ok());
  EXPECT_TRUE(f->Bind({"", ""}).ok());
  EXPECT_EQ(f->diverted(), 0u);
}

#ifdef NDEBUG
TEST(RegistryTest, WithLabelValuesDivertsInvalidInputToOverflow) {
  Registry r;
  auto f = r.AddCounter({.name = "x_total", .help = "h", .label_names = {"a"}});
  f->WithLabelValues("a", "b").Inc();   // wrong arity
  f->WithLabelValues("bad\xff").Inc();  // invalid UTF-8
  f->WithLabelValues("good").Inc();
  EXPECT_EQ(f->diverted(), 2u);
  EXPECT_EQ(ValueOf(r, "x_total", {"__overflow__"}), 2);
  EXPECT_EQ(ValueOf(r, "x_total", {"good"}), 1);
  EXPECT_EQ(ValueOf(r, "metrics_cardinality_overflow_total", {"x_total"}), 2);
}
#endif

TEST(RegistryTest, CardinalityCapDivertsToOneOverflowSeries) {
  Registry r;
  auto f = r.AddCounter({.name = "x_total", .help = "h", .label_names = {"type"}, .max_series = 3});
  for (int i = 0; i < 10; ++i) f->WithLabelValues("t" + std::to_string(i)).Inc();
  f->WithLabelValues("t0").Inc();  // existing series are still served
  EXPECT_EQ(f->size(), 4u);        // t0..t2 and the overflow series
  EXPECT_EQ(f->diverted(), 7u);
  EXPECT_EQ(ValueOf(r, "x_total", {"t0"}), 2);
  EXPECT_EQ(ValueOf(r, "x_total", {"__overflow__"}), 7);
  EXPECT_EQ(ValueOf(r, "metrics_cardinality_overflow_total", {"x_total"}), 7);
  auto bound = f->Bind({"t9"});
  EXPECT_EQ(bound.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(bound.status().message(), HasSubstr("cap of 3"));
  // Removing a series makes room again.
  ASSERT_TRUE(f->Remove({"t1"}).ok());
  EXPECT_TRUE(f->Bind({"t9"}).ok());
}

TEST(RegistryTest, CollectIsSortedAndRendersConstLabels) {
  Registry r;
  auto b = r.AddCounter({.name = "b_total", .help = "h", .label_names = {"k"}});
  auto a = r.AddGauge({.name = "a", .help = "h", .const_labels = {{"svc", "x"}}});
  b->WithLabelValues("z").Inc();
  b->WithLabelValues("a").Inc();
  b->WithLabelValues("m").Inc();
  a->WithLabelValues().Set(1);
  Snapshot s = r.Collect();
  ASSERT_EQ(s.families.size(), 2u);
  EXPECT_EQ(s.families[0].desc->name, "a");
  EXPECT_EQ(s.families[1].desc->name, "b_total");
  std::vector<std::string> order;
  for (const SeriesSample& x : s.families[1].samples) order.push_back((*x.label_values)[0]);
  EXPECT_THAT(order, ElementsAre("a", "m", "z"));
}

TEST(RegistryTest, RemovedSeriesIsGoneAndItsOldHandleCannotCorruptOthers) {
  Registry r;
  auto f = r.AddCounter({.name = "x_total", .help = "h", .label_names = {"k"}});
  Counter old = *f->Bind({"a"});
  old.Inc(5);
  const uint64_t cells_before = internal::CellAllocator::CellsInUse();
  ASSERT_TRUE(f->Remove({"a"}).ok());
  EXPECT_EQ(f->Remove({"a"}).code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(std::isnan(ValueOf(r, "x_total", {"a"})));

  // While `old` lives, its cells stay allocated: new series get other cells.
  Counter b = *f->Bind({"b"});
  EXPECT_EQ(internal::CellAllocator::CellsInUse(), cells_before + Counter::kCells);
  old.Inc(100);  // writes to the detached series only
  EXPECT_EQ(ValueOf(r, "x_total", {"b"}), 0);
  // The same label values again make a fresh series that starts from zero.
  Counter a2 = *f->Bind({"a"});
  EXPECT_EQ(ValueOf(r, "x_total", {"a"}), 0);
  a2.Inc();
  EXPECT_EQ(ValueOf(r, "x_total", {"a"}), 1);
}

TEST(RegistryTest, FreedCellsAreZeroedAndReused) {
  Registry r;
  auto f = r.AddCounter({.name = "x_total", .help = "h", .label_names = {"k"}});
  const uint64_t base = internal::CellAllocator::CellsInUse();
  {
    Counter c = *f->Bind({"a"});
    c.Inc(7);
    c.Add(2.5);
    ASSERT_TRUE(f->Remove({"a"}).ok());
  }  // last reference gone: cells zeroed and returned
  EXPECT_EQ(internal::CellAllocator::CellsInUse(), base);
  Counter n = *f->Bind({"new"});  // takes the recycled block
  EXPECT_EQ(internal::CellAllocator::CellsInUse(), base + Counter::kCells);
  EXPECT_EQ(ValueOf(r, "x_total", {"new"}), 0);
}

TEST(RegistryTest, WithLabelValuesCacheForgetsRemovedSeries) {
  Registry r;
  auto f = r.AddCounter({.name = "x_total", .help = "h", .label_names = {"k"}});
  f->WithLabelValues("a").Inc(3);
  ASSERT_TRUE(f->Remove({"a"}).ok());
  f->WithLabelValues("a").Inc();  // this thread's cache must not hand back the detached series
  EXPECT_EQ(ValueOf(r, "x_total", {"a"}), 1);
}

TEST(RegistryTest, RemovedFamily) {
  Registry r;
  auto f = r.AddCounter({.name = "x_total", .help = "h", .label_names = {"k"}});
  Counter kept = *f->Bind({"a"});
  ASSERT_TRUE(r.Remove("x_total").ok());
  EXPECT_EQ(r.Remove("x_total").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Find(r.Collect(), "x_total"), nullptr);
  kept.Inc();                     // harmless
  f->WithLabelValues("b").Inc();  // goes to the sink
  EXPECT_EQ(f->Bind({"c"}).status().code(), absl::StatusCode::kFailedPrecondition);
  // The name can be registered again, with another definition even, and starts empty.
  auto g = r.AddGauge({.name = "x_total", .help = "now a gauge"});
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(ValueOf(r, "x_total"), 0);
}

TEST(RegistryTest, OverflowLabelValueCollidingWithARealSeries) {
  Registry r;
  auto f = r.AddCounter({.name = "x_total", .help = "h", .label_names = {"k"}, .max_series = 2});
  f->WithLabelValues("__overflow__").Inc();
  f->WithLabelValues("a").Inc();
  f->WithLabelValues("b").Inc();  // diverted into the existing "__overflow__" series
  Snapshot s = r.Collect();
  EXPECT_EQ(Find(s, "x_total")->samples.size(), 2u);
  EXPECT_EQ(ValueOf(r, "x_total", {"__overflow__"}), 2);
}

}  // namespace
}  // namespace metrics
