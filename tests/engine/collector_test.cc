// Scrape-time families (GaugeFunc, CounterFunc, Collector), Info, OpenMetrics units, and the
// name-clash rule of engine/registry.h.
#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace metrics {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Names(const Snapshot& s) {
  std::vector<std::string> out;
  for (const FamilySnapshot& f : s.families) out.push_back(f.desc->name);
  return out;
}

const FamilySnapshot* Find(const Snapshot& s, std::string_view name) {
  for (const FamilySnapshot& f : s.families) {
    if (f.desc->name == name) return &f;
  }
  return nullptr;
}

TEST(FuncTest, GaugeAndCounterFuncsAreReadAtScrape) {
  Registry r;
  double level = 2.5;
  uint64_t done = 0;
  ASSERT_TRUE(
      r.AddGaugeFunc({.name = "queue_level", .help = "Level."}, [&] { return level; }).ok());
  ASSERT_TRUE(r.AddCounterFunc(
                   {.name = "jobs_done_total", .help = "Jobs.", .const_labels = {{"pool", "main"}}},
                   [&] { return static_cast<double>(done); })
                  .ok());
  Snapshot s = r.Collect();
  ASSERT_THAT(Names(s), ElementsAre("jobs_done_total", "queue_level"));
  EXPECT_EQ(s.families[0].desc->type, MetricType::kCounter);
  EXPECT_EQ(s.families[0].samples.at(0).Total(), 0);
  EXPECT_EQ(s.families[1].desc->type, MetricType::kGauge);
  EXPECT_EQ(s.families[1].samples.at(0).value, 2.5);
  EXPECT_TRUE(s.families[1].samples[0].label_values->empty());
  level = -1;
  done = 7;
  s = r.Collect();
  EXPECT_EQ(Find(s, "queue_level")->samples[0].value, -1);
  EXPECT_EQ(Find(s, "jobs_done_total")->samples[0].Total(), 7);
}

TEST(FuncTest, RemoveStopsTheCallback) {
  Registry r;
  std::atomic<int> calls{0};
  ASSERT_TRUE(r.AddGaugeFunc({.name = "g", .help = "h"}, [&] { return double(++calls); }).ok());
  r.Collect();
  EXPECT_EQ(calls.load(), 1);
  ASSERT_TRUE(r.Remove("g").ok());
  EXPECT_EQ(r.Collect().families.size(), 0u);
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(r.Remove("g").code(), absl::StatusCode::kNotFound);
  // The name is free again, for any type.
  EXPECT_TRUE(r.AddCounter({.name = "g", .help = "h"}).ok());
}

TEST(FuncTest, RejectsLabelNamesMissingCallbackAndTakenNames) {
  Registry r;
  auto one = [] { return 1.0; };
  EXPECT_EQ(r.AddGaugeFunc({.name = "g", .help = "h", .label_names = {"a"}}, one).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddGaugeFunc({.name = "g", .help = "h"}, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.AddGaugeFunc({.name = "0g", .help = "h"}, one).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(r.AddGauge({.name = "taken", .help = "h"}).ok());
  EXPECT_EQ(r.AddGaugeFunc({.name = "taken", .help = "h"}, one).code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(r.AddGaugeFunc({.name = "f", .help = "h"}, one).ok());
  // A func is never "the same definition": registering it twice is an error, not a no-op.
  EXPECT_EQ(r.AddGaugeFunc({.name = "f", .help = "h"}, one).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(r.AddGauge({.name = "f", .help = "h"}).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(FuncTest, CallbackCannotRegisterRemoveOrCollectItsRegistry) {
  Registry r, other;
  absl::Status add, remove, add_other;
  ASSERT_TRUE(r.AddGaugeFunc({.name = "g", .help = "h"}, [&] {
                 add = r.AddGauge({.name = "inner", .help = "h"}).status();
                 remove = r.Remove("g");
                 add_other = other.AddGauge({.name = "inner", .help = "h"}).status();
                 return 1.0;
               }).ok());
  Snapshot s = r.Collect();
  EXPECT_EQ(add.code(), absl::StatusCode::kFailedPrecondition) << add;
  EXPECT_EQ(remove.code(), absl::StatusCode::kFailedPrecondition) << remove;
  EXPECT_TRUE(add_other.ok()) << add_other;  // another registry is fine
  EXPECT_THAT(Names(s), ElementsAre("g"));
  EXPECT_TRUE(r.AddGauge({.name = "inner", .help = "h"}).ok());  // outside the callback: fine
}

TEST(FuncTest, ThrowingCallbackSitsTheScrapeOut) {
  Registry r;
  bool fail = true;
  ASSERT_TRUE(r.AddGaugeFunc({.name = "a", .help = "h"}, [&]() -> double {
                 if (fail) throw std::runtime_error("no");
                 return 1;
               }).ok());
  ASSERT_TRUE(r.AddGaugeFunc({.name = "b", .help = "h"}, [] { return 2.0; }).ok());
  EXPECT_THAT(Names(r.Collect()), ElementsAre("b"));
  fail = false;
  EXPECT_THAT(Names(r.Collect()), ElementsAre("a", "b"));
}

// A collector of two families, one with labels; `bad` makes it send malformed output too.
class TwoFamilies : public Collector {
 public:
  std::vector<FamilyDesc> Describe() const override {
    return {{.name = "zz_temperature_celsius",
             .help = "Temp.",
             .type = MetricType::kGauge,
             .label_names = {"probe"}},
            {.name = "aa_reads_total", .help = "Reads.", .type = MetricType::kCounter}};
  }
  void Collect(std::vector<FamilySnapshot>& out) const override {
    ++calls;
    FamilyDesc t{.name = "zz_temperature_celsius", .type = MetricType::kGauge};
    FamilySnapshot& temp = AppendFamily(out, std::make_shared<const FamilyDesc>(t));
    AppendSample(temp, {"b"}, 20.5);
    AppendSample(temp, {"a"}, 19);
    AppendSample(AppendFamily(out, std::make_shared<const FamilyDesc>(FamilyDesc{
                                       .name = "aa_reads_total", .type = MetricType::kCounter})),
                 {}, 12);
    if (bad) {
      // Not declared; a second copy; the wrong label count: all left out.
      AppendSample(AppendFamily(out, std::make_shared<const FamilyDesc>(FamilyDesc{
                                         .name = "undeclared", .type = MetricType::kGauge})),
                   {}, 1);
      AppendSample(AppendFamily(out, std::make_shared<const FamilyDesc>(FamilyDesc{
                                         .name = "aa_reads_total", .type = MetricType::kGauge})),
                   {}, 1);
      AppendSample(AppendFamily(out, std::make_shared<const FamilyDesc>(t)), {}, 1);
    }
  }
  bool bad = false;
  mutable int calls = 0;
};

TEST(CollectorTest, MergedSortedByNameWithDeclaredDescs) {
  Registry r;
  ASSERT_TRUE(r.AddCounter({.name = "mm_total", .help = "h"}).ok());
  auto c = std::make_shared<TwoFamilies>();
  ASSERT_TRUE(r.AddCollector(c).ok());
  Snapshot s = r.Collect();
  ASSERT_THAT(Names(s), ElementsAre("aa_reads_total", "mm_total", "zz_temperature_celsius"));
  // The registry's declared desc replaces the collector's (help included).
  EXPECT_EQ(s.families[0].desc->help, "Reads.");
  EXPECT_EQ(s.families[0].samples.at(0).Total(), 12);
  const FamilySnapshot& temp = s.families[2];
  EXPECT_EQ(temp.desc->help, "Temp.");
  ASSERT_EQ(temp.samples.size(), 2u);
  EXPECT_THAT(*temp.samples[0].label_values, ElementsAre("b"));
  EXPECT_EQ(temp.samples[1].value, 19);
}

#ifdef NDEBUG  // a debug build asserts on malformed collector output, by design
TEST(CollectorTest, MalformedOutputIsLeftOut) {
  Registry r;
  auto c = std::make_shared<TwoFamilies>();
  c->bad = true;
  ASSERT_TRUE(r.AddCollector(c).ok());
  Snapshot s = r.Collect();
  ASSERT_THAT(Names(s), ElementsAre("aa_reads_total", "zz_temperature_celsius"));
  EXPECT_EQ(s.families[0].desc->type, MetricType::kCounter);  // the first copy, as declared
  EXPECT_EQ(s.families[0].samples.at(0).Total(), 12);
  EXPECT_EQ(s.families[1].samples.size(), 2u);  // not the copy without labels
}
#endif

TEST(CollectorTest, ClashesCheckedAtRegistrationBothWays) {
  Registry r;
  ASSERT_TRUE(r.AddGauge({.name = "aa_reads", .help = "h"}).ok());  // the counter's OM name
  auto c = std::make_shared<TwoFamilies>();
  absl::Status s = r.AddCollector(c);
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  EXPECT_THAT(s.message(), HasSubstr("aa_reads_total"));
  EXPECT_THAT(s.message(), HasSubstr("\"aa_reads\""));
  // Nothing of the collector was registered: its other name is still free.
  EXPECT_TRUE(r.AddGauge({.name = "zz_temperature_celsius", .help = "Temp."}).ok());
  ASSERT_TRUE(r.Remove("aa_reads").ok());
  ASSERT_TRUE(r.Remove("zz_temperature_celsius").ok());
  ASSERT_TRUE(r.AddCollector(c).ok());
  EXPECT_EQ(r.AddCollector(c).code(), absl::StatusCode::kAlreadyExists);
  // And the reverse order: a family after the collector.
  EXPECT_EQ(r.AddCounter({.name = "aa_reads_total", .help = "Reads."}).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(
      r.AddGaugeFunc({.name = "zz_temperature_celsius", .help = "h"}, [] { return 1.0; }).code(),
      absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(c->calls, 0);
  EXPECT_EQ(r.Collect().families.size(), 2u);
  EXPECT_EQ(c->calls, 1);
  ASSERT_TRUE(r.RemoveCollector(c.get()).ok());
  EXPECT_EQ(r.RemoveCollector(c.get()).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(r.Collect().families.size(), 0u);
  EXPECT_EQ(c->calls, 1);
  EXPECT_TRUE(r.AddCounter({.name = "aa_reads_total", .help = "Reads."}).ok());
}

class Declares : public Collector {
 public:
  explicit Declares(std::vector<FamilyDesc> d) : d_(std::move(d)) {}
  std::vector<FamilyDesc> Describe() const override { return d_; }
  void Collect(std::vector<FamilySnapshot>&) const override {}

 private:
  std::vector<FamilyDesc> d_;
};

TEST(CollectorTest, DeclaredFamiliesAreValidated) {
  Registry r;
  auto reg = [&](std::vector<FamilyDesc> d) {
    return r.AddCollector(std::make_shared<Declares>(std::move(d)));
  };
  EXPECT_EQ(reg({{.name = "bad name", .type = MetricType::kGauge}}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(reg({{.name = "g", .type = MetricType::kGauge, .label_names = {"a", "a"}}}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(reg({{.name = "h", .type = MetricType::kHistogram}}).code(),
            absl::StatusCode::kInvalidArgument);  // no bucket layout
  EXPECT_EQ(reg({{.name = "g_bytes", .type = MetricType::kGauge, .unit = "seconds"}}).code(),
            absl::StatusCode::kInvalidArgument);
  // Two declared families that clash with each other.
  absl::Status s = reg({{.name = "x", .type = MetricType::kCounter},
                        {.name = "x_total", .type = MetricType::kGauge}});
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  EXPECT_TRUE(r.AddGauge({.name = "x", .help = ""}).ok());  // nothing of it stayed claimed
  EXPECT_EQ(r.AddCollector(nullptr).code(), absl::StatusCode::kInvalidArgument);
}

TEST(InfoTest, OneSeriesOfConstantLabelsReportsOne) {
  Registry r;
  auto info = r.AddInfo({.name = "eventstore_build",
                         .help = "Build.",
                         .const_labels = {{"version", "1.2.3"}, {"revision", "abc123"}}});
  ASSERT_TRUE(info.ok()) << info.status();
  Snapshot s = r.Collect();
  ASSERT_THAT(Names(s), ElementsAre("eventstore_build"));
  EXPECT_EQ(s.families[0].desc->type, MetricType::kInfo);
  ASSERT_EQ(s.families[0].samples.size(), 1u);
  EXPECT_EQ(s.families[0].samples[0].int_value, 1u);
  // The same definition again returns the family; another one is refused.
  EXPECT_TRUE(r.AddInfo({.name = "eventstore_build",
                         .help = "Build.",
                         .const_labels = {{"version", "1.2.3"}, {"revision", "abc123"}}})
                  .ok());
  EXPECT_EQ(r.AddInfo({.name = "eventstore_build", .help = "Other."}).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(InfoTest, LabelledSeriesComeFromBindAndLookups) {
  Registry r;
  auto info = r.AddInfo({.name = "nic", .help = "NICs.", .label_names = {"name", "kind"}});
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(r.Collect().families.at(0).samples.empty());
  Info eth = *info->Bind({"eth0", "ethernet"});
  info->WithLabelValues("wlan0", "wifi");
  Snapshot s = r.Collect();
  ASSERT_EQ(s.families[0].samples.size(), 2u);
  EXPECT_THAT(*s.families[0].samples[0].label_values, ElementsAre("eth0", "ethernet"));
  EXPECT_EQ(s.families[0].samples[1].int_value, 1u);
}

TEST(InfoTest, NameWithInfoSuffixOrUnitIsRefused) {
  Registry r;
  absl::Status s = r.AddInfo({.name = "build_info", .help = "h"}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("without \"_info\""));
  EXPECT_EQ(r.AddInfo({.name = "up_seconds", .help = "h", .unit = "seconds"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(UnitTest, NameMustEndWithTheUnit) {
  Registry r;
  EXPECT_TRUE(r.AddGauge({.name = "size_bytes", .help = "h", .unit = "bytes"}).ok());
  // A counter's name is checked without its "_total", as OpenMetrics names the family.
  EXPECT_TRUE(r.AddCounter({.name = "cpu_seconds_total", .help = "h", .unit = "seconds"}).ok());
  EXPECT_TRUE(r.AddCounter({.name = "wait_seconds", .help = "h", .unit = "seconds"}).ok());
  EXPECT_TRUE(r.AddHistogram({.name = "op_seconds", .help = "h", .unit = "seconds"}).ok());
  EXPECT_TRUE(
      r.AddGaugeFunc({.name = "f_ratio", .help = "h", .unit = "ratio"}, [] { return 0.5; }).ok());
  for (const FamilyOptions& o : std::vector<FamilyOptions>{
           {.name = "size", .help = "h", .unit = "bytes"},
           {.name = "sizebytes", .help = "h", .unit = "bytes"},     // no underscore before it
           {.name = "size_bytes_x", .help = "h", .unit = "bytes"},  // not a suffix
           {.name = "x_bytes", .help = "h", .unit = "by tes"}}) {   // not a name character
    absl::Status s = r.AddGauge(o).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << o.name;
  }
  absl::Status s =
      r.AddCounter({.name = "cpu_total_seconds", .help = "h", .unit = "total"}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("_total"));
  // The unit is part of the definition: the same name without it is another definition.
  auto again = r.AddGauge({.name = "size_bytes", .help = "h", .unit = "bytes"});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->desc().unit, "bytes");
  s = r.AddGauge({.name = "size_bytes", .help = "h"}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(s.message(), HasSubstr("unit"));
}

// Each row: register `first`, then `second` must be refused naming both, and the reverse order too.
struct Clash {
  MetricType a;
  std::string a_name;
  MetricType b;
  std::string b_name;
};

absl::Status Register(Registry& r, MetricType t, const std::string& name) {
  FamilyOptions o{.name = name, .help = "h"};
  switch (t) {
    case MetricType::kCounter:
      return r.AddCounter(o).status();
    case MetricType::kGauge:
      return r.AddGauge(o).status();
    case MetricType::kHistogram:
      return r.AddHistogram(o).status();
    case MetricType::kInfo:
      return r.AddInfo(o).status();
  }
  return absl::UnknownError("type");
}

TEST(NameClashTest, SuffixClashesRefusedInEitherOrder) {
  const std::vector<Clash> clashes = {
      {MetricType::kHistogram, "x", MetricType::kCounter, "x_count"},
      {MetricType::kHistogram, "x", MetricType::kGauge, "x_count"},
      {MetricType::kHistogram, "x", MetricType::kGauge, "x_sum"},
      {MetricType::kHistogram, "x", MetricType::kCounter, "x_sum"},
      {MetricType::kHistogram, "x", MetricType::kGauge, "x_bucket"},
      {MetricType::kHistogram, "x", MetricType::kCounter, "x_bucket_total"},  // OM: x_bucket
      {MetricType::kCounter, "x", MetricType::kGauge, "x_total"},
      {MetricType::kCounter, "x", MetricType::kCounter, "x_total"},
      {MetricType::kCounter, "x", MetricType::kHistogram, "x_total"},
      {MetricType::kCounter, "x_total", MetricType::kGauge, "x"},
      {MetricType::kCounter, "x_total", MetricType::kHistogram, "x"},
      {MetricType::kInfo, "x", MetricType::kGauge, "x_info"},
      {MetricType::kInfo, "x", MetricType::kCounter, "x_info"},
      {MetricType::kInfo, "x", MetricType::kGauge, "x"},
  };
  for (const Clash& c : clashes) {
    for (bool reverse : {false, true}) {
      SCOPED_TRACE(c.a_name + " vs " + c.b_name + (reverse ? " (reversed)" : ""));
      Registry r;
      const auto& [t1, n1] = reverse ? std::pair(c.b, c.b_name) : std::pair(c.a, c.a_name);
      const auto& [t2, n2] = reverse ? std::pair(c.a, c.a_name) : std::pair(c.b, c.b_name);
      ASSERT_TRUE(Register(r, t1, n1).ok());
      absl::Status s = Register(r, t2, n2);
      EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
      EXPECT_THAT(s.message(), HasSubstr("\"" + n1 + "\""));
      EXPECT_THAT(s.message(), HasSubstr("\"" + n2 + "\""));
      // Once the first is removed, the second registers.
      ASSERT_TRUE(r.Remove(n1).ok());
      EXPECT_TRUE(Register(r, t2, n2).ok());
    }
  }
}

TEST(NameClashTest, NeighboursThatDoNotClash) {
  Registry r;
  EXPECT_TRUE(r.AddHistogram({.name = "x", .help = "h"}).ok());
  EXPECT_TRUE(r.AddGauge({.name = "x_counts", .help = "h"}).ok());
  EXPECT_TRUE(r.AddGauge({.name = "x_bucket_size", .help = "h"}).ok());
  EXPECT_TRUE(r.AddGauge({.name = "y", .help = "h"}).ok());
  EXPECT_TRUE(r.AddGauge({.name = "y_sum", .help = "h"}).ok());  // gauges have no suffixes
  EXPECT_TRUE(r.AddGauge({.name = "y_info", .help = "h"}).ok());
  EXPECT_TRUE(r.AddCounter({.name = "z_total_bytes", .help = "h"}).ok());
  EXPECT_TRUE(r.AddGauge({.name = "z", .help = "h"}).ok());
}

TEST(NameClashTest, RegistrysOwnNamesReserved) {
  Registry r;
  for (const char* n : {"metrics_cardinality_overflow", "metrics_shard_allocation_failures",
                        "metrics_shard_allocation_failures_total"}) {
    absl::Status s = r.AddGauge({.name = n, .help = "h"}).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << n;
    EXPECT_THAT(s.message(), HasSubstr("used by the registry"));
  }
}

}  // namespace
}  // namespace metrics
