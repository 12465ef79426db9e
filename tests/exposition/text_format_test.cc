#include "exposition/text_format.h"

#include <limits>
#include <string>

#include "engine/registry.h"
#include "gtest/gtest.h"

namespace metrics::exposition {
namespace {

TEST(TextFormatTest, GoldenCountersAndGauges) {
  Registry r;
  auto c = r.AddCounter({.name = "events_total",
                         .help = "Events with a \\ backslash\nand a newline \"quoted\".",
                         .label_names = {"type"},
                         .const_labels = {{"svc", "store"}}});
  auto g = r.AddGauge({.name = "temp", .help = "Gauge."});
  c->WithLabelValues("a\"b\\c\nd").Inc(3);
  c->WithLabelValues("").Add(0.5);
  c->WithLabelValues("caf\xc3\xa9").Inc();
  g->WithLabelValues().Set(std::numeric_limits<double>::quiet_NaN());
  std::string out;
  WriteText(r.Collect(), &out);
  EXPECT_EQ(out, R"(# HELP events_total Events with a \\ backslash\nand a newline "quoted".
# TYPE events_total counter
events_total{svc="store",type=""} 0.5
events_total{svc="store",type="a\"b\\c\nd"} 3
events_total{svc="store",type="café"} 1
# HELP temp Gauge.
# TYPE temp gauge
temp NaN
)");
}

}  // namespace
}  // namespace metrics::exposition
