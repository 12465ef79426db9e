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
void Fill(Registry& r) {
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

TEST(TextFormatTest, EmptySnapshot) {
  std::string out;
  WriteText(Snapshot{}, &out);
  EXPECT_EQ(out, "");
  WriteOpenMetrics(Snapshot{}, &out);
  EXPECT_EQ(out, "# EOF\n");
}

}  // namespace
}  // namespace metrics::exposition
