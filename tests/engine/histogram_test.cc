// Histogram geometry and snapshots against a brute-force single-threaded oracle, special values,
// validation.
#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine/registry.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace metrics {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// What one histogram series should report, computed the slow and obvious way. Takes the resolved
// config (HistogramLayout::config(): exponents set).
struct Oracle {
  HistogramConfig config;
  std::vector<uint64_t> classic;  // non-cumulative, +Inf last
  std::map<int32_t, uint64_t> pos, neg;
  uint64_t zero = 0, count = 0;
  double sum = 0;

  explicit Oracle(HistogramConfig c) : config(std::move(c)), classic(config.buckets.size() + 1) {}

  // Native index of a > 0: the smallest i with a <= 2^(i/2^s), searched over boundaries built
  // independently.
  int32_t NativeIndex(double a) const {
    const int s = config.schema;
    int e;
    double frac = std::frexp(a, &e);  // a = frac * 2^e
    if (s >= 0) {
      const int n = 1 << s;
      // a in [2^(e-1), 2^e): candidates i in ((e-1)n, e*n].
      for (int j = 0; j <= n; ++j) {
        double b = j == 0 ? 1.0 : j == n ? 2.0 : std::exp2(double(j) / n);
        if (2 * frac <= b) return (e - 1) * n + j;
      }
      ADD_FAILURE() << "no bucket for " << a;
      return 0;
    }
    const int n = 1 << -s;  // bucket i covers (2^((i-1)n), 2^(i n)]
    int32_t log2_ceil = (frac == 0.5) ? e - 1 : e;
    return static_cast<int32_t>(std::ceil(double(log2_ceil) / n));
  }

  void Observe(double v) {
    ++count;
    sum += v;
    size_t c = 0;
    if (std::isnan(v)) {
      c = config.buckets.size();
    } else {
      while (c < config.buckets.size() && v > config.buckets[c]) ++c;
    }
    ++classic[c];
    if (!config.native) return;
    double a = std::fabs(v);
    if (std::isnan(v) || a <= config.zero_threshold) {
      ++zero;
      return;
    }
    const int s = config.schema;
    int32_t lo, hi;
    if (s >= 0) {
      lo = *config.min_exponent * (1 << s), hi = *config.max_exponent * (1 << s);
    } else {
      int n = 1 << -s;
      lo = int32_t(std::ceil(double(*config.min_exponent) / n)),
      hi = int32_t(std::ceil(double(*config.max_exponent) / n));
    }
    int32_t i = std::isinf(a) ? hi : std::clamp(NativeIndex(a), lo, hi);
    ++(v < 0 ? neg : pos)[i];
  }
};

std::map<int32_t, uint64_t> Expand(const NativeBuckets& b) {
  std::map<int32_t, uint64_t> m;
  int32_t i = 0;
  size_t k = 0;
  for (size_t s = 0; s < b.spans.size(); ++s) {
    i += b.spans[s].offset;
    for (uint32_t n = 0; n < b.spans[s].length; ++n, ++i) m[i] = b.counts[k++];
  }
  EXPECT_EQ(k, b.counts.size());
  return m;
}

void ExpectMatches(const Oracle& o, const HistogramSample& h) {
  EXPECT_EQ(h.native, o.config.native);
  EXPECT_EQ(h.count, o.count);
  if (std::isnan(o.sum)) {
    EXPECT_TRUE(std::isnan(h.sum));
  } else if (std::isinf(o.sum)) {
    EXPECT_EQ(h.sum, o.sum);
  } else {
    EXPECT_NEAR(h.sum, o.sum, 1e-9 * std::max(1.0, std::fabs(o.sum)));
  }
  std::vector<uint64_t> cum(o.classic.size());
  uint64_t run = 0;
  for (size_t c = 0; c < cum.size(); ++c) cum[c] = run += o.classic[c];
  EXPECT_THAT(h.cumulative, ElementsAreArray(cum));
  EXPECT_EQ(h.zero_count, o.zero);
  EXPECT_EQ(Expand(h.positive), o.pos);
  EXPECT_EQ(Expand(h.negative), o.neg);
}

// Feeds `values` to a fresh histogram and to the oracle, then compares the snapshot.
void CheckAgainstOracle(const HistogramConfig& config, const std::vector<double>& values) {
  Registry r;
  auto f = r.AddHistogram({.name = "h", .help = "h"}, config);
  ASSERT_TRUE(f.ok()) << f.status();
  Histogram h = *f->Bind({});
  Oracle o(f->desc().histogram->config());
  for (double v : values) {
    h.Observe(v);
    o.Observe(v);
  }
  Snapshot s = r.Collect();
  ASSERT_EQ(s.families.size(), 1u);
  ASSERT_EQ(s.families[0].histograms.size(), 1u);
  ExpectMatches(o, s.families[0].histograms[0]);
}

std::vector<double> LogUniform(int n, double lo, double hi, uint64_t seed, bool with_negatives) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(std::log2(lo), std::log2(hi));
  std::vector<double> v(n);
  for (double& x : v) {
    x = std::exp2(u(rng));
    if (with_negatives && (rng() & 1)) x = -x;
  }
  return v;
}

// Values on and next to every native boundary in a few octaves, and on and next to every classic
// boundary.
std::vector<double> Boundaries(const HistogramConfig& c) {
  std::vector<double> v;
  const int n = 1 << std::max(c.schema, 0);
  for (int e = -3; e <= 3; ++e) {
    for (int j = 0; j <= n; ++j) {
      double b = std::ldexp(j == 0 ? 1.0 : j == n ? 2.0 : std::exp2(double(j) / n), e);
      for (double x : {b, std::nextafter(b, 0.0), std::nextafter(b, kInf)}) {
        v.push_back(x);
        v.push_back(-x);
      }
    }
  }
  for (double b : c.buckets) {
    v.push_back(b);
    v.push_back(std::nextafter(b, -kInf));
    v.push_back(std::nextafter(b, kInf));
  }
  return v;
}

TEST(HistogramLayoutTest, WorkedExample) {
  // The example in engine/internal/histogram_layout.h: 3.0 at schema 3 is in bucket 13 = (2^(12/8),
  // 2^(13/8)].
  auto layout = *internal::HistogramLayout::Create(HistogramConfig{});
  const auto& slot = layout->slots()[layout->Slot(3.0)];
  EXPECT_EQ(slot.sign, 1);
  EXPECT_EQ(slot.native_index, 13);
  EXPECT_LT(std::exp2(12.0 / 8), 3.0);
  EXPECT_LE(3.0, std::exp2(13.0 / 8));
  // Powers of two sit on the upper edge of their bucket: 2^1 is bucket 8 = (2^(7/8), 2^1].
  EXPECT_EQ(layout->slots()[layout->Slot(2.0)].native_index, 8);
  EXPECT_EQ(layout->slots()[layout->Slot(std::nextafter(2.0, 3.0))].native_index, 9);
  EXPECT_EQ(layout->slots()[layout->Slot(1.0)].native_index, 0);
  EXPECT_EQ(layout->slots()[layout->Slot(-3.0)].sign, -1);
  EXPECT_EQ(layout->slots()[layout->Slot(-3.0)].native_index, 13);
  // The default range is derived from the default buckets .005 (binade -8) .. 10 (binade 3): 4
  // binades either side, 2^-12 .. 2^8, so 161 buckets per sign + zero, 11 classic splits, NaN:
  // 335 slots, 670 cells (a fixed 2^-30 .. 2^40 took 2,270).
  EXPECT_EQ(layout->config().min_exponent, -12);
  EXPECT_EQ(layout->config().max_exponent, 8);
  EXPECT_EQ(layout->num_slots(), 2 * 161 + 1 + 11 + 1u);
  EXPECT_EQ(layout->num_cells(), 670u);
}

TEST(HistogramLayoutTest, FastPathAgreesWithSlowReferenceEverywhereInRange) {
  for (int schema = -4; schema <= 8; ++schema) {
    HistogramConfig c;
    c.schema = schema;
    c.min_exponent = -30;  // explicit: the values below must all be inside the native range
    c.max_exponent = 40;
    auto layout = *internal::HistogramLayout::Create(c);
    std::vector<double> values = LogUniform(20000, 0x1p-29, 0x1p39, 7 + schema, false);
    std::vector<double> edges = Boundaries(c);
    values.insert(values.end(), edges.begin(), edges.end());
    for (double v : values) {
      const auto& slot = layout->slots()[layout->Slot(v)];
      ASSERT_EQ(slot.native_index, layout->NativeIndexSlow(std::fabs(v)))
          << "schema " << schema << " v " << v;
    }
  }
}

TEST(HistogramLayoutTest, TableAgreesWithSlowPathForDenseClassicBuckets) {
  HistogramConfig c;
  c.buckets = *LinearBuckets(0.001, 0.0001, 200);  // several boundaries per key: slow entries
  c.buckets.push_back(3.0);
  c.buckets.push_back(3.0001);
  auto layout = *internal::HistogramLayout::Create(c);
  std::vector<double> values = LogUniform(20000, 1e-4, 100, 3, false);
  for (double b : c.buckets) {
    values.push_back(b);
    values.push_back(std::nextafter(b, 0.0));
    values.push_back(std::nextafter(b, kInf));
  }
  for (double v : values) ASSERT_EQ(layout->Slot(v), layout->SlowSlot(v)) << v;
}

TEST(HistogramTest, MatchesOracleOnLogUniformValuesEveryValidSchema) {
  for (int schema = -4; schema <= 8; ++schema) {
    SCOPED_TRACE(schema);
    HistogramConfig c;
    c.schema = schema;
    CheckAgainstOracle(c, LogUniform(20000, 1e-7, 10, 100 + schema, true));
  }
}

TEST(HistogramTest, MatchesOracleOnExactBoundaries) {
  for (int schema : {-4, -1, 0, 1, 3, 8}) {
    SCOPED_TRACE(schema);
    HistogramConfig c;
    c.schema = schema;
    CheckAgainstOracle(c, Boundaries(c));
  }
}

TEST(HistogramTest, MatchesOracleWithDenseAndNegativeClassicBuckets) {
  HistogramConfig c;
  // Several classic boundaries inside one native bucket, zero and negative boundaries.
  c.buckets = {-10, -1, -0.5, 0, 1e-40, 0.001, 1000, 1000.001, 1000.002, 1000.003, 1e12, 1e13};
  std::vector<double> values = LogUniform(20000, 1e-9, 1e14, 5, true);
  std::vector<double> edges = Boundaries(c);
  values.insert(values.end(), edges.begin(), edges.end());
  CheckAgainstOracle(c, values);
}

TEST(HistogramTest, SpecialValues) {
  HistogramConfig c;  // default buckets .005 .. 10, zero threshold 2^-128
  std::vector<double> specials = {0.0,      -0.0,     5e-324, -5e-324, 0x1p-1022, 0x1p-129,
                                  0x1p-128, 0x1p-127, kInf,   -kInf,   1e300,     -1e300,
                                  0x1p-40,  0x1p40,   0x1p41, 0.005,   10};
  CheckAgainstOracle(c, specials);

  Registry r;
  auto f = *r.AddHistogram({.name = "h", .help = "h"});
  Histogram h = *f.Bind({});
  h.Observe(kNaN);
  h.Observe(1);
  h.Observe(-kInf);
  Snapshot s = r.Collect();
  const HistogramSample& x = s.families[0].histograms[0];
  EXPECT_EQ(x.count, 3u);
  EXPECT_TRUE(std::isnan(x.sum));                        // NaN poisons the sum, as in client_golang
  EXPECT_EQ(x.cumulative.front(), 1u);                   // -Inf <= 0.005
  EXPECT_EQ(x.cumulative[x.cumulative.size() - 2], 2u);  // NaN is only in +Inf
  EXPECT_EQ(x.cumulative.back(), 3u);
  EXPECT_EQ(x.zero_count, 1u);  // NaN, client_golang's rule
  EXPECT_EQ(Expand(x.negative),
            (std::map<int32_t, uint64_t>{{64, 1}}));  // -Inf: outermost bucket, 2^8 (derived)
}

TEST(HistogramTest, EmptyHistogramAndNoClassicBuckets) {
  Registry r;
  HistogramConfig c;
  c.buckets = {};
  auto f = *r.AddHistogram({.name = "h", .help = "h", .label_names = {"k"}}, c);
  Histogram h = *f.Bind({"a"});
  (void)f.Bind({"b"});
  h.Observe(0.5);
  Snapshot s = r.Collect();
  ASSERT_EQ(s.families[0].histograms.size(), 2u);
  EXPECT_THAT(s.families[0].histograms[0].cumulative, ElementsAre(1u));
  EXPECT_THAT(s.families[0].histograms[1].cumulative, ElementsAre(0u));
  EXPECT_EQ(s.families[0].histograms[1].count, 0u);
  EXPECT_TRUE(s.families[0].histograms[1].positive.spans.empty());
}

TEST(HistogramTest, SpansAreRunsOfNonEmptyBuckets) {
  Registry r;
  HistogramConfig c;
  c.schema = 0;
  auto f = *r.AddHistogram({.name = "h", .help = "h"}, c);
  Histogram h = *f.Bind({});
  for (double v : {1.0, 2.0, 2.0, 4.0, 64.0, 128.0}) h.Observe(v);  // buckets 0, 1, 1, 2, 6, 7
  const Snapshot snap = r.Collect();
  const HistogramSample& x = snap.families[0].histograms[0];
  ASSERT_EQ(x.positive.spans.size(), 2u);
  EXPECT_EQ(x.positive.spans[0].offset, 0);
  EXPECT_EQ(x.positive.spans[0].length, 3u);
  EXPECT_EQ(x.positive.spans[1].offset, 3);  // gap of buckets 3, 4, 5
  EXPECT_EQ(x.positive.spans[1].length, 2u);
  EXPECT_THAT(x.positive.counts, ElementsAre(1u, 2u, 1u, 1u, 1u));
}

TEST(HistogramTest, RegistrationErrors) {
  Registry r;
  auto bad = [&](HistogramConfig c) {
    return r.AddHistogram({.name = "h", .help = "h"}, c).status();
  };
  HistogramConfig c;
  c.buckets = {1, 0.5};
  EXPECT_THAT(bad(c).message(), HasSubstr("strictly increasing"));
  c.buckets = {1, 1};
  EXPECT_THAT(bad(c).message(), HasSubstr("strictly increasing"));
  c.buckets = {1, kNaN};
  EXPECT_THAT(bad(c).message(), HasSubstr("finite"));
  c.buckets = {-kInf, 1};
  EXPECT_THAT(bad(c).message(), HasSubstr("finite"));
  c = {};
  c.schema = 9;
  EXPECT_THAT(bad(c).message(), HasSubstr("schema 9"));
  c.schema = -5;
  EXPECT_THAT(bad(c).message(), HasSubstr("schema -5"));
  c = {};
  c.zero_threshold = -1;
  EXPECT_THAT(bad(c).message(), HasSubstr("zero_threshold"));
  c = {};
  c.min_exponent = 5;
  c.max_exponent = 5;
  EXPECT_THAT(bad(c).message(), HasSubstr("exponent range"));
  EXPECT_EQ(bad(c).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.AddHistogram({.name = "h", .help = "h", .label_names = {"le"}}).status().message(),
              HasSubstr("\"le\" is reserved"));
  // A written-out trailing +Inf is accepted and implied.
  c = {};
  c.buckets = {1, 2, kInf};
  auto ok = r.AddHistogram({.name = "h", .help = "h"}, c);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->desc().histogram->boundaries().size(), 2u);
  // Same name, other buckets: a conflicting definition.
  c.buckets = {1, 3};
  EXPECT_THAT(bad(c).message(), HasSubstr("buckets"));
}

TEST(HistogramTest, HugeRangesStayBoundedAndCellExhaustionIsAnError) {
  HistogramConfig c;
  c.schema = 8;
  c.min_exponent = -1022;
  c.max_exponent = 1024;
  c.zero_threshold = 0;
  auto layout = *internal::HistogramLayout::Create(c);
  EXPECT_LE(layout->table_bytes(), size_t{2} << 20);
  for (double v : {1e-300, 1e-10, 1.0, 3.5, 1e10, 1e300, 1.7e308}) {
    EXPECT_EQ(layout->Slot(v), layout->SlowSlot(v)) << v;
    EXPECT_EQ(layout->slots()[layout->Slot(v)].native_index, layout->NativeIndexSlow(v)) << v;
  }
  // ~2.1 million cells per series: the 64 Mi-cell space runs out after a few dozen series.
  Registry r;
  auto f = r.AddHistogram({.name = "huge", .help = "h", .label_names = {"k"}}, c);
  ASSERT_TRUE(f.ok()) << f.status();
  absl::Status last;
  std::vector<Histogram> keep;
  for (int i = 0; i < 100 && last.ok(); ++i) {
    auto h = f->Bind({std::to_string(i)});
    if (h.ok()) {
      keep.push_back(*h);
    } else {
      last = h.status();
    }
  }
  EXPECT_EQ(last.code(), absl::StatusCode::kResourceExhausted);
  // Diverted, not a crash: with no cells left even for the overflow series (made on the first
  // diversion) the write goes to the sink, and the label set is still counted.
  f->WithLabelValues("diverted").Observe(1);
  EXPECT_GE(f->diverted(), 1u);
  keep.clear();
  EXPECT_TRUE(r.Remove("huge").ok());
}

// Classic-only layouts: exactly buckets.size() + 1 slots, and the slot of every value is the
// first boundary b with v <= b (brute force), NaN and +Inf the +Inf bucket.
uint32_t ClassicOracleSlot(const std::vector<double>& b, double v) {
  if (std::isnan(v)) return static_cast<uint32_t>(b.size());
  uint32_t i = 0;
  while (i < b.size() && !(v <= b[i])) ++i;
  return i;
}

std::vector<std::vector<double>> ClassicLists() {
  return {
      DefaultBuckets(),
      {},
      {1.0},
      {0.0},
      {-5, -1, 0, 1e-300, 1e-10, 1, 1e10, 1e300},
      *LinearBuckets(0.001, 0.0001, 200),  // dense: needs mantissa bits in the key
      *ExponentialBuckets(1e-6, 2, 40),    // exactly one per binade
      *ExponentialBuckets(1, 1.0001, 50),  // dense beyond the finest key: slow entries
      {5e-324, 1e-310, 0x1p-1022, 1.7e308},
      {1, 1.5, 2, 3, 4, 6, 8},  // boundaries on key edges
  };
}

TEST(HistogramClassicOnlyTest, SlotOfEveryBoundaryNeighbourMatchesTheOracle) {
  for (const std::vector<double>& b : ClassicLists()) {
    SCOPED_TRACE(::testing::PrintToString(b));
    HistogramConfig c;
    c.native = false;
    c.buckets = b;
    auto layout = internal::HistogramLayout::Create(c);
    ASSERT_TRUE(layout.ok()) << layout.status();
    const internal::HistogramLayout& l = **layout;
    ASSERT_EQ(l.num_slots(), b.size() + 1);
    ASSERT_EQ(l.num_cells(), 2 * (b.size() + 1));
    std::vector<double> values = {0.0,   -0.0,   5e-324, -5e-324,   0x1p-1022, 1e-300, -1e-300,
                                  1e300, -1e300, kInf,   -kInf,     kNaN,      -kNaN,  1.7e308,
                                  1.0,   -1.0,   0.5,    0x1p-1000, 0x1p1000};
    for (double x : b) {
      for (double y : {x, std::nextafter(x, -kInf), std::nextafter(x, kInf),
                       std::nextafter(std::nextafter(x, -kInf), -kInf),
                       std::nextafter(std::nextafter(x, kInf), kInf)}) {
        values.push_back(y);
        values.push_back(-y);
      }
    }
    std::vector<double> random = LogUniform(20000, 1e-12, 1e12, 11, true);
    values.insert(values.end(), random.begin(), random.end());
    for (double v : values) {
      const uint32_t want = ClassicOracleSlot(b, v);
      ASSERT_EQ(l.SlowSlot(v), want) << v;
      ASSERT_EQ(l.Slot(v), want) << v;
      const uint64_t fast = l.FastSlot(v);
      if (fast != internal::HistogramLayout::kNoFastSlot) {
        ASSERT_EQ(fast, want) << v;
      }
      ASSERT_EQ(l.slots()[want].classic, want);
    }
  }
}

TEST(HistogramClassicOnlyTest, DefaultBucketsCost192BytesAndTakeTheFastPath) {
  HistogramConfig c;
  c.native = false;
  auto layout = *internal::HistogramLayout::Create(c);
  EXPECT_EQ(layout->num_slots(), 12u);
  EXPECT_EQ(layout->num_cells() * sizeof(uint64_t), 192u);
  EXPECT_FALSE(layout->native());
  // Latencies 100 ns .. 100 s, far below and above the boundaries, resolve from the table.
  for (double v : LogUniform(20000, 100e-9, 100, 4, false)) {
    ASSERT_NE(layout->FastSlot(v), internal::HistogramLayout::kNoFastSlot) << v;
  }
  // Ignored native fields are normalised: equal layouts compare equal.
  HistogramConfig d = c;
  d.schema = 0;
  d.min_exponent = -3;
  EXPECT_EQ((*internal::HistogramLayout::Create(d))->config(), layout->config());
}

TEST(HistogramClassicOnlyTest, CollectMatchesOracleAndHasNoNativePart) {
  for (const std::vector<double>& b : ClassicLists()) {
    SCOPED_TRACE(::testing::PrintToString(b));
    HistogramConfig c;
    c.native = false;
    c.buckets = b;
    std::vector<double> values = LogUniform(5000, 1e-9, 1e9, 21, true);
    for (double x : b) {
      values.push_back(x);
      values.push_back(std::nextafter(x, kInf));
    }
    for (double x : {0.0, -0.0, kInf, -kInf, 5e-324}) values.push_back(x);
    CheckAgainstOracle(c, values);  // native part empty: zero_count 0, no spans
  }
}

TEST(HistogramClassicOnlyTest, SpecialValues) {
  Registry r;
  HistogramConfig c;
  c.native = false;
  auto f = *r.AddHistogram({.name = "h", .help = "h"}, c);
  Histogram h = *f.Bind({});
  for (double v : {kNaN, 1.0, -kInf, kInf, 0.0, -1.0}) h.Observe(v);
  Snapshot s = r.Collect();
  const HistogramSample& x = s.families[0].histograms[0];
  EXPECT_FALSE(x.native);
  EXPECT_EQ(x.count, 6u);
  EXPECT_TRUE(std::isnan(x.sum));
  EXPECT_EQ(x.cumulative.front(), 3u);                   // -Inf, 0, -1 <= 0.005
  EXPECT_EQ(x.cumulative[x.cumulative.size() - 2], 4u);  // + 1.0; NaN and +Inf only in +Inf
  EXPECT_EQ(x.cumulative.back(), 6u);
  EXPECT_EQ(x.zero_count, 0u);
  EXPECT_EQ(x.schema, 0);
  EXPECT_TRUE(x.positive.spans.empty());
  EXPECT_TRUE(x.negative.spans.empty());
}

TEST(HistogramLayoutTest, DefaultNativeRangeFollowsTheClassicBoundaries) {
  auto range = [](HistogramConfig c) {
    auto l = internal::HistogramLayout::Create(c);
    EXPECT_TRUE(l.ok()) << l.status();
    return std::pair<int, int>(*(*l)->config().min_exponent, *(*l)->config().max_exponent);
  };
  HistogramConfig c;
  EXPECT_EQ(range(c), std::pair(-12, 8));  // .005 .. 10
  c.buckets = {1, 2, 3};                   // binades 0 .. 1
  EXPECT_EQ(range(c), std::pair(-4, 6));
  c.buckets = {};  // nothing to go by: the old fixed range
  EXPECT_EQ(range(c), std::pair(-30, 40));
  c.buckets = {-1, 0};
  EXPECT_EQ(range(c), std::pair(-30, 40));
  c = {};
  c.min_exponent = -30;  // explicit ends are kept; the other one is derived
  EXPECT_EQ(range(c), std::pair(-30, 8));
  c.max_exponent = 40;
  EXPECT_EQ(range(c), std::pair(-30, 40));
  c = {};
  c.max_exponent = -20;  // below the derived min: the derived end makes room
  EXPECT_EQ(range(c), std::pair(-21, -20));
  // Values far outside the derived range still take the fast path (clamped table entries).
  auto layout = *internal::HistogramLayout::Create(HistogramConfig{});
  for (double v : LogUniform(20000, 100e-9, 100, 9, false)) {
    ASSERT_NE(layout->FastSlot(v), internal::HistogramLayout::kNoFastSlot) << v;
    ASSERT_EQ(layout->Slot(v), layout->SlowSlot(v)) << v;
  }
}

// A labelled family costs no cells until a label set is used; the overflow series is made by the
// first diversion, which lands in it and is counted.
TEST(HistogramTest, LabelledFamilyCellsGrowOnlyWithUsedLabelSets) {
  for (bool native : {true, false}) {
    SCOPED_TRACE(native);
    HistogramConfig c;
    c.native = native;
    Registry r;
    // A lookup first: this thread drops its cached handles of families removed earlier (the
    // previous round's), which would otherwise give their cells back in the middle of the counts.
    r.AddCounter({.name = "warm_total", .help = "h", .label_names = {"k"}})
        ->WithLabelValues("x")
        .Inc();
    const uint64_t base = internal::CellAllocator::CellsInUse();
    auto f = *r.AddHistogram(
        {.name = "h_seconds", .help = "h", .label_names = {"k"}, .max_series = 2}, c);
    const uint64_t per_series = f.desc().histogram->num_cells();
    EXPECT_EQ(internal::CellAllocator::CellsInUse(), base);  // nothing reserved up front
    EXPECT_EQ(r.Collect().families[0].histograms.size(), 0u);
    f.WithLabelValues("a").Observe(0.5);
    EXPECT_EQ(internal::CellAllocator::CellsInUse(), base + per_series);
    f.WithLabelValues("a").Observe(0.5);  // a used label set again: no growth
    Histogram b = *f.Bind({"b"});
    EXPECT_EQ(internal::CellAllocator::CellsInUse(), base + 2 * per_series);
    EXPECT_EQ(f.diverted(), 0u);
    // Past max_series: the first diversion makes the overflow series and lands in it.
    f.WithLabelValues("c").Observe(2.0);
    EXPECT_EQ(internal::CellAllocator::CellsInUse(), base + 3 * per_series);
    EXPECT_EQ(f.diverted(), 1u);
    f.WithLabelValues("d").Observe(3.0);  // later diversions reuse it
    EXPECT_EQ(internal::CellAllocator::CellsInUse(), base + 3 * per_series);
    EXPECT_EQ(f.diverted(), 2u);
    Snapshot s = r.Collect();
    const FamilySnapshot* fam = nullptr;
    uint64_t overflow_total = 0;
    for (const FamilySnapshot& x : s.families) {
      if (x.desc->name == "h_seconds") fam = &x;
      if (x.desc->name == "metrics_cardinality_overflow_total") {
        for (const SeriesSample& y : x.samples) overflow_total += y.int_value;
      }
    }
    ASSERT_NE(fam, nullptr);
    ASSERT_EQ(fam->samples.size(), 3u);  // __overflow__, a, b in label order
    EXPECT_EQ((*fam->samples[0].label_values)[0], "__overflow__");
    EXPECT_EQ(fam->histograms[0].count, 2u);
    EXPECT_EQ(fam->histograms[0].sum, 5.0);
    EXPECT_EQ(fam->histograms[1].count, 2u);
    EXPECT_EQ(fam->histograms[2].count, 0u);
    EXPECT_EQ(overflow_total, 2u);
  }
}

TEST(HistogramTest, BucketHelpers) {
  EXPECT_THAT(*LinearBuckets(1, 2, 3), ElementsAre(1, 3, 5));
  EXPECT_THAT(*ExponentialBuckets(1, 10, 3), ElementsAre(1, 10, 100));
  EXPECT_FALSE(LinearBuckets(0, 0, 3).ok());
  EXPECT_FALSE(LinearBuckets(0, 1, 0).ok());
  EXPECT_FALSE(ExponentialBuckets(0, 2, 3).ok());
  EXPECT_FALSE(ExponentialBuckets(1, 1, 3).ok());
  EXPECT_FALSE(ExponentialBuckets(1, 1e300, 3).ok());
}

TEST(HistogramTest, DefaultHandleWritesToTheSink) {
  Histogram h;
  for (double v : {0.0, 1.0, -1.0, kInf, kNaN, 1e300}) h.Observe(v);
}

}  // namespace
}  // namespace metrics
