// Golden exposition, byte for byte, in both formats.
#include "exposition/text_format.h"

#include <limits>
#include <string>

#include "engine/registry.h"
#include "gtest/gtest.h"

namespace metrics::exposition {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Every type, nasty label values (backslash, quote, newline, non-ASCII, empty), special HELP text,
// NaN and infinities, a histogram with and one without observations.
void Fill(Registry& r, bool native = true) {
  auto c = r.AddCounter({.name = "events_total",
                         .help = "Events with a \\ backslash\nand a newline \"quoted\".",
                         .label_names = {"type"},
                         .const_labels = {{"svc", "store"}}});
  c->WithLabelValues("a\"b\\c\nd").Inc(3);
  c->WithLabelValues("").Add(0.5);
  c->WithLabelValues("caf\xc3\xa9 \xe2\x82\xac").Inc();
  auto plain = r.AddCounter({.name = "bytes", .help = "A counter without the _total suffix."});
  plain->WithLabelValues().Inc(1000000);
  auto g = r.AddGauge({.name = "temp_celsius", .help = "Gauge.", .label_names = {"probe"}});
  g->WithLabelValues("nan").Set(kNaN);
  g->WithLabelValues("pinf").Set(kInf);
  g->WithLabelValues("ninf").Set(-kInf);
  g->WithLabelValues("int").Set(3);
  g->WithLabelValues("small").Set(1.5e-7);
  HistogramConfig hc;
  hc.buckets = {0.25, 1, 2.5};
  hc.native = native;
  auto h =
      r.AddHistogram({.name = "latency_seconds", .help = "Latency.", .label_names = {"op"}}, hc);
  h->WithLabelValues("read").Observe(0.25);
  h->WithLabelValues("read").Observe(2);
  h->WithLabelValues("read").Observe(100);
  (void)h->Bind({"idle"});
}

TEST(TextFormatTest, GoldenText004) {
  Registry r;
  Fill(r);
  std::string out;
  WriteText(r.Collect(), &out);
  EXPECT_EQ(out, R"(# HELP bytes A counter without the _total suffix.
# TYPE bytes counter
bytes 1000000
# HELP events_total Events with a \\ backslash\nand a newline "quoted".
# TYPE events_total counter
events_total{svc="store",type=""} 0.5
events_total{svc="store",type="a\"b\\c\nd"} 3
events_total{svc="store",type="café €"} 1
# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{op="idle",le="0.25"} 0
latency_seconds_bucket{op="idle",le="1"} 0
latency_seconds_bucket{op="idle",le="2.5"} 0
latency_seconds_bucket{op="idle",le="+Inf"} 0
latency_seconds_sum{op="idle"} 0
latency_seconds_count{op="idle"} 0
latency_seconds_bucket{op="read",le="0.25"} 1
latency_seconds_bucket{op="read",le="1"} 1
latency_seconds_bucket{op="read",le="2.5"} 2
latency_seconds_bucket{op="read",le="+Inf"} 3
latency_seconds_sum{op="read"} 102.25
latency_seconds_count{op="read"} 3
# HELP temp_celsius Gauge.
# TYPE temp_celsius gauge
temp_celsius{probe="int"} 3
temp_celsius{probe="nan"} NaN
temp_celsius{probe="ninf"} -Inf
temp_celsius{probe="pinf"} +Inf
temp_celsius{probe="small"} 1.5e-07
)");
}

TEST(TextFormatTest, GoldenOpenMetrics) {
  Registry r;
  Fill(r);
  std::string out;
  WriteOpenMetrics(r.Collect(), &out);
  EXPECT_EQ(out, R"(# HELP bytes A counter without the _total suffix.
# TYPE bytes counter
bytes_total 1000000
# HELP events Events with a \\ backslash\nand a newline \"quoted\".
# TYPE events counter
events_total{svc="store",type=""} 0.5
events_total{svc="store",type="a\"b\\c\nd"} 3
events_total{svc="store",type="café €"} 1
# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
latency_seconds_bucket{op="idle",le="0.25"} 0
latency_seconds_bucket{op="idle",le="1.0"} 0
latency_seconds_bucket{op="idle",le="2.5"} 0
latency_seconds_bucket{op="idle",le="+Inf"} 0
latency_seconds_sum{op="idle"} 0.0
latency_seconds_count{op="idle"} 0
latency_seconds_bucket{op="read",le="0.25"} 1
latency_seconds_bucket{op="read",le="1.0"} 1
latency_seconds_bucket{op="read",le="2.5"} 2
latency_seconds_bucket{op="read",le="+Inf"} 3
latency_seconds_sum{op="read"} 102.25
latency_seconds_count{op="read"} 3
# HELP temp_celsius Gauge.
# TYPE temp_celsius gauge
temp_celsius{probe="int"} 3.0
temp_celsius{probe="nan"} NaN
temp_celsius{probe="ninf"} -Inf
temp_celsius{probe="pinf"} +Inf
temp_celsius{probe="small"} 1.5e-07
# EOF
)");
}

// The newer kinds: info (constant labels, and labelled series with escaping), units on every
// sharded type and on a func, gauge and counter funcs, and a collector's family.
class TempCollector : public Collector {
 public:
  std::vector<FamilyDesc> Describe() const override {
    return {{.name = "disk_temp_celsius",
             .help = "Disk temperature.",
             .type = MetricType::kGauge,
             .label_names = {"disk"},
             .unit = "celsius"}};
  }
  void Collect(std::vector<FamilySnapshot>& out) const override {
    FamilySnapshot& f = AppendFamily(
        out, std::make_shared<const FamilyDesc>(FamilyDesc{.name = "disk_temp_celsius"}));
    AppendSample(f, {"sda"}, 31.5);
    AppendSample(f, {"sdb"}, 40);
  }
};

void FillNewKinds(Registry& r) {
  ASSERT_TRUE(r.AddInfo({.name = "eventstore_build",
                         .help = "Build information.",
                         .const_labels = {{"version", "1.2.3"}, {"revision", "4f2a\"9"}}})
                  .ok());
  auto nic = r.AddInfo({.name = "nic", .help = "Interfaces.", .label_names = {"name"}});
  nic->WithLabelValues("eth0");
  auto up = r.AddCounter({.name = "uptime_seconds_total", .help = "Uptime.", .unit = "seconds"});
  up->WithLabelValues().Inc(12);
  auto mem = r.AddGauge({.name = "heap_bytes", .help = "Heap.", .unit = "bytes"});
  mem->WithLabelValues().Set(4096);
  HistogramConfig hc;
  hc.buckets = {1};
  auto h = r.AddHistogram({.name = "op_seconds", .help = "Ops.", .unit = "seconds"}, hc);
  h->WithLabelValues().Observe(0.5);
  ASSERT_TRUE(r.AddGaugeFunc({.name = "queue_ratio", .help = "Fill.", .unit = "ratio"}, [] {
                 return 0.25;
               }).ok());
  ASSERT_TRUE(
      r.AddCounterFunc(
           {.name = "accepted_total", .help = "Accepted.", .const_labels = {{"listener", "api"}}},
           [] { return 3.0; })
          .ok());
  ASSERT_TRUE(r.AddCollector(std::make_shared<TempCollector>()).ok());
}

TEST(TextFormatTest, GoldenNewKindsText004) {
  Registry r;
  FillNewKinds(r);
  std::string out;
  WriteText(r.Collect(), &out);
  EXPECT_EQ(out, R"(# HELP accepted_total Accepted.
# TYPE accepted_total counter
accepted_total{listener="api"} 3
# HELP disk_temp_celsius Disk temperature.
# TYPE disk_temp_celsius gauge
disk_temp_celsius{disk="sda"} 31.5
disk_temp_celsius{disk="sdb"} 40
# HELP eventstore_build_info Build information.
# TYPE eventstore_build_info gauge
eventstore_build_info{version="1.2.3",revision="4f2a\"9"} 1
# HELP heap_bytes Heap.
# TYPE heap_bytes gauge
heap_bytes 4096
# HELP nic_info Interfaces.
# TYPE nic_info gauge
nic_info{name="eth0"} 1
# HELP op_seconds Ops.
# TYPE op_seconds histogram
op_seconds_bucket{le="1"} 1
op_seconds_bucket{le="+Inf"} 1
op_seconds_sum 0.5
op_seconds_count 1
# HELP queue_ratio Fill.
# TYPE queue_ratio gauge
queue_ratio 0.25
# HELP uptime_seconds_total Uptime.
# TYPE uptime_seconds_total counter
uptime_seconds_total 12
)");
}

TEST(TextFormatTest, GoldenNewKindsOpenMetrics) {
  Registry r;
  FillNewKinds(r);
  std::string out;
  WriteOpenMetrics(r.Collect(), &out);
  EXPECT_EQ(out, R"(# HELP accepted Accepted.
# TYPE accepted counter
accepted_total{listener="api"} 3.0
# HELP disk_temp_celsius Disk temperature.
# TYPE disk_temp_celsius gauge
# UNIT disk_temp_celsius celsius
disk_temp_celsius{disk="sda"} 31.5
disk_temp_celsius{disk="sdb"} 40.0
# HELP eventstore_build Build information.
# TYPE eventstore_build info
eventstore_build_info{version="1.2.3",revision="4f2a\"9"} 1
# HELP heap_bytes Heap.
# TYPE heap_bytes gauge
# UNIT heap_bytes bytes
heap_bytes 4096.0
# HELP nic Interfaces.
# TYPE nic info
nic_info{name="eth0"} 1
# HELP op_seconds Ops.
# TYPE op_seconds histogram
# UNIT op_seconds seconds
op_seconds_bucket{le="1.0"} 1
op_seconds_bucket{le="+Inf"} 1
op_seconds_sum 0.5
op_seconds_count 1
# HELP queue_ratio Fill.
# TYPE queue_ratio gauge
# UNIT queue_ratio ratio
queue_ratio 0.25
# HELP uptime_seconds Uptime.
# TYPE uptime_seconds counter
# UNIT uptime_seconds seconds
uptime_seconds_total 12
# EOF
)");
}

// The text formats carry classic buckets only: a classic-only histogram (no native part) renders
// byte for byte as the native one does.
TEST(TextFormatTest, ClassicOnlyHistogramRendersTheSame) {
  Registry native, classic;
  Fill(native);
  Fill(classic, /*native=*/false);
  std::string want, got;
  WriteText(native.Collect(), &want);
  WriteText(classic.Collect(), &got);
  EXPECT_EQ(got, want);
  want.clear();
  got.clear();
  WriteOpenMetrics(native.Collect(), &want);
  WriteOpenMetrics(classic.Collect(), &got);
  EXPECT_EQ(got, want);
}

TEST(TextFormatTest, EmptySnapshot) {
  std::string out;
  WriteText(Snapshot{}, &out);
  EXPECT_EQ(out, "");
  WriteOpenMetrics(Snapshot{}, &out);
  EXPECT_EQ(out, "# EOF\n");
}

}  // namespace
}  // namespace metrics::exposition
