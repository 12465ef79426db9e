// Our exposition read by the real peers a user meets: promtool, Python's prometheus_client parser,
// and a Prometheus 2.42 server scraping our HTTP exporter. A peer whose binary is truly absent
// skips its test loudly (GTEST_SKIP with the install hint); tools/install-deps.sh installs all of
// them.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/registry.h"
#include "exposition/http_exporter.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/peers.h"

namespace metrics {
namespace {

using ::testing::HasSubstr;
using namespace ::metrics::test_support;

// A registry with every type, nasty label values and special floats.
void FillRich(Registry& r) {
  auto c = r.AddCounter({.name = "interop_events_total",
                         .help = "Events with a \\ backslash and\na newline.",
                         .label_names = {"type"},
                         .const_labels = {{"instance_role", "primary"}}});
  c->WithLabelValues("team.registered").Inc(42);
  c->WithLabelValues("quote\"back\\slash\nnewline").Inc(7);
  c->WithLabelValues("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80").Inc(3);
  c->WithLabelValues("").Add(0.125);
  auto g = r.AddGauge(
      {.name = "interop_temperature_celsius", .help = "Gauge.", .label_names = {"probe"}});
  g->WithLabelValues("a").Set(-12.5);
  g->WithLabelValues("b").Set(1e-300);
  g->WithLabelValues("c").Set(123456789.125);
  g->WithLabelValues("nan").Set(std::numeric_limits<double>::quiet_NaN());
  g->WithLabelValues("inf").Set(std::numeric_limits<double>::infinity());
  auto h = r.AddHistogram(
      {.name = "interop_latency_seconds", .help = "Latency.", .label_names = {"op"}});
  for (double v : {0.001, 0.02, 0.02, 0.3, 0.7, 4.0, 20.0}) h->WithLabelValues("read").Observe(v);
  (void)h->Bind({"idle"});
  // The scrape-time kinds: an info family, units (OpenMetrics "# UNIT"), gauge and counter funcs.
  (void)r.AddInfo({.name = "interop_build",
                   .help = "Build information.",
                   .const_labels = {{"version", "1.2.3"}, {"revision", "4f2a\"9"}}});
  (void)r.AddInfo({.name = "interop_nic", .help = "Interfaces.", .label_names = {"name"}})
      ->WithLabelValues("eth0");
  r.AddGauge({.name = "interop_heap_bytes", .help = "Heap.", .unit = "bytes"})
      ->WithLabelValues()
      .Set(4096);
  (void)r.AddCounterFunc(
      {.name = "interop_uptime_seconds_total", .help = "Uptime.", .unit = "seconds"},
      [] { return 12.5; });
  (void)r.AddGaugeFunc({.name = "interop_queue_ratio", .help = "Fill.", .unit = "ratio"},
                       [] { return 0.25; });
}

std::string Render(exposition::Format f) {
  Registry r;
  FillRich(r);
  std::string out;
  exposition::Write(f, r.Collect(), &out);
  return out;
}

TEST(InteropTest, PromtoolCheckMetricsPasses) {
  if (!Executable("/usr/bin/promtool")) {
    GTEST_SKIP() << "SKIPPED LOUDLY: /usr/bin/promtool missing (apt-get install prometheus)";
  }
  std::string dir = TempDir("metrics-interop"), out;
  WriteFile(dir + "/m.prom", Render(exposition::Format::kText));
  int rc = RunShell("/usr/bin/promtool check metrics < " + dir + "/m.prom", &out);
  EXPECT_EQ(rc, 0) << out;
  // And the tool in the repo gives the same verdict, on a file and on stdin.
  rc = RunShell(std::string(METRICS_SOURCE_DIR) + "/tools/promlint-check.sh " + dir + "/m.prom",
                &out);
  EXPECT_EQ(rc, 0) << out;
  // A lint problem is reported as such: a counter without _total.
  WriteFile(dir + "/bad.prom", "# HELP x h\n# TYPE x counter\nx 1\n");
  rc = RunShell(
      std::string(METRICS_SOURCE_DIR) + "/tools/promlint-check.sh - < " + dir + "/bad.prom", &out);
  EXPECT_NE(rc, 0);
  EXPECT_THAT(out, HasSubstr("_total"));
}

constexpr char kPythonReader[] = R"PY(
import json, math, sys
fmt = sys.argv[1]
text = open(sys.argv[2]).read()
if fmt == "openmetrics":
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
else:
    from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(text):
    if fam.unit:
        out.append({"name": "UNIT " + fam.name, "labels": {}, "value": fam.unit})
    out.append({"name": "TYPE " + fam.name, "labels": {}, "value": fam.type})
    for s in fam.samples:
        v = s.value
        out.append({"name": s.name, "labels": s.labels,
                    "value": "NaN" if math.isnan(v) else ("+Inf" if v == math.inf else repr(float(v)))})
print(json.dumps(out))
)PY";

// name + sorted labels -> value text (Python's repr of the float, or NaN/+Inf)
std::map<std::string, std::string> ReadWithPython(exposition::Format f, std::string* error) {
  std::map<std::string, std::string> samples;
  std::string dir = TempDir("metrics-interop"), out;
  WriteFile(dir + "/reader.py", kPythonReader);
  WriteFile(dir + "/m.txt", Render(f));
  int rc = RunShell("/usr/bin/python3 " + dir + "/reader.py " +
                        (f == exposition::Format::kOpenMetrics ? "openmetrics" : "text") + " " +
                        dir + "/m.txt",
                    &out);
  if (rc != 0) {
    *error = out;
    return samples;
  }
  for (const auto& s : nlohmann::json::parse(out)) {
    std::string key = s["name"].get<std::string>();
    for (const auto& [k, v] : s["labels"].items()) key += "|" + k + "=" + v.get<std::string>();
    samples[key] = s["value"].get<std::string>();
  }
  return samples;
}

void ExpectRichSamples(const std::map<std::string, std::string>& m) {
  auto at = [&](const std::string& k) {
    auto it = m.find(k);
    return it == m.end() ? std::string("<missing " + k + ">") : it->second;
  };
  EXPECT_EQ(at("interop_events_total|instance_role=primary|type=team.registered"), "42.0");
  EXPECT_EQ(at("interop_events_total|instance_role=primary|type=quote\"back\\slash\nnewline"),
            "7.0");
  EXPECT_EQ(at("interop_events_total|instance_role=primary|type=caf\xc3\xa9 \xe2\x82\xac "
               "\xf0\x9f\x98\x80"),
            "3.0");
  EXPECT_EQ(at("interop_events_total|instance_role=primary|type="), "0.125");
  EXPECT_EQ(at("interop_temperature_celsius|probe=a"), "-12.5");
  EXPECT_EQ(at("interop_temperature_celsius|probe=b"), "1e-300");
  EXPECT_EQ(at("interop_temperature_celsius|probe=c"), "123456789.125");
  EXPECT_EQ(at("interop_temperature_celsius|probe=nan"), "NaN");
  EXPECT_EQ(at("interop_temperature_celsius|probe=inf"), "+Inf");
  EXPECT_EQ(at("interop_latency_seconds_bucket|le=0.025|op=read"), "3.0");
  EXPECT_EQ(at("interop_latency_seconds_bucket|le=+Inf|op=read"), "7.0");
  EXPECT_EQ(at("interop_latency_seconds_count|op=read"), "7.0");
  EXPECT_EQ(at("interop_latency_seconds_sum|op=read"), "25.041");
  EXPECT_EQ(at("interop_latency_seconds_count|op=idle"), "0.0");
  EXPECT_EQ(at("interop_build_info|revision=4f2a\"9|version=1.2.3"), "1.0");
  EXPECT_EQ(at("interop_nic_info|name=eth0"), "1.0");
  EXPECT_EQ(at("interop_heap_bytes"), "4096.0");
  EXPECT_EQ(at("interop_uptime_seconds_total"), "12.5");
  EXPECT_EQ(at("interop_queue_ratio"), "0.25");
}

// What only OpenMetrics carries: the info type and the units.
void ExpectOpenMetricsMetadata(const std::map<std::string, std::string>& m) {
  auto at = [&](const std::string& k) {
    auto it = m.find(k);
    return it == m.end() ? std::string("<missing " + k + ">") : it->second;
  };
  EXPECT_EQ(at("TYPE interop_build"), "info");
  EXPECT_EQ(at("TYPE interop_nic"), "info");
  EXPECT_EQ(at("UNIT interop_heap_bytes"), "bytes");
  EXPECT_EQ(at("TYPE interop_uptime_seconds"), "counter");
  EXPECT_EQ(at("UNIT interop_uptime_seconds"), "seconds");
  EXPECT_EQ(at("UNIT interop_queue_ratio"), "ratio");
  EXPECT_EQ(m.count("UNIT interop_latency_seconds"), 0u);
}

TEST(InteropTest, PythonClientParsesEveryValueExactly) {
  if (!Executable("/usr/bin/python3")) GTEST_SKIP() << "SKIPPED LOUDLY: /usr/bin/python3 missing";
  for (auto f : {exposition::Format::kText, exposition::Format::kOpenMetrics}) {
    SCOPED_TRACE(f == exposition::Format::kText ? "text" : "openmetrics");
    std::string error;
    auto samples = ReadWithPython(f, &error);
    if (error.find("No module named 'prometheus_client'") != std::string::npos) {
      GTEST_SKIP() << "SKIPPED LOUDLY: python3-prometheus-client missing";
    }
    ASSERT_TRUE(error.empty()) << error;
    ExpectRichSamples(samples);
    if (f == exposition::Format::kOpenMetrics) {
      ExpectOpenMetricsMetadata(samples);
    } else {
      EXPECT_EQ(samples["TYPE interop_build_info"], "gauge");  // text 0.0.4 has no info type
    }
  }
}

TEST(InteropTest, RealPrometheusScrapesAndQueries) {
  if (!Executable("/usr/bin/prometheus")) {
    GTEST_SKIP() << "SKIPPED LOUDLY: /usr/bin/prometheus missing (apt-get install prometheus)";
  }
  Registry r;
  FillRich(r);
  auto handler = std::make_shared<exposition::MetricsHandler>(std::vector<const Registry*>{&r});
  auto exporter = exposition::HttpExporter::Start({.host = "127.0.0.1", .port = 0}, handler);
  ASSERT_TRUE(exporter.ok()) << exporter.status();
  PrometheusServer prom(PrometheusServer::ScrapeConfig("interop", (*exporter)->port()));

  auto up = prom.WaitFor("up{job=\"interop\"} == 1", 60);
  ASSERT_FALSE(up.is_null()) << "target never up; prometheus log:\n" << prom.Log();
  auto v = prom.WaitFor("interop_events_total{type=\"team.registered\"}", 30);
  ASSERT_FALSE(v.is_null()) << prom.Log();
  EXPECT_EQ(v[0]["value"][1], "42");
  EXPECT_EQ(v[0]["metric"]["instance_role"], "primary");
  auto odd = prom.Query("interop_events_total{type=\"quote\\\"back\\\\slash\\nnewline\"}");
  ASSERT_TRUE(odd.is_array() && odd.size() == 1) << odd;
  EXPECT_EQ(odd[0]["value"][1], "7");
  // Median of 7 observations (0.001 0.02 0.02 0.3 0.7 4 20) is 0.3: in the (0.25, 0.5] bucket.
  auto q = prom.Query("histogram_quantile(0.5, interop_latency_seconds_bucket{op=\"read\"})");
  ASSERT_TRUE(q.is_array() && q.size() == 1) << q;
  double median = std::stod(q[0]["value"][1].get<std::string>());
  EXPECT_GT(median, 0.25);
  EXPECT_LE(median, 0.5);
  // The info family, and a counter func read at each scrape.
  auto info = prom.Query("interop_build_info{version=\"1.2.3\"}");
  ASSERT_TRUE(info.is_array() && info.size() == 1) << info;
  EXPECT_EQ(info[0]["value"][1], "1");
  EXPECT_EQ(info[0]["metric"]["revision"], "4f2a\"9");
  auto uptime = prom.Query("interop_uptime_seconds_total");
  ASSERT_TRUE(uptime.is_array() && uptime.size() == 1) << uptime;
  EXPECT_EQ(uptime[0]["value"][1], "12.5");
  // Values change between scrapes and Prometheus follows.
  r.AddCounter({.name = "interop_events_total",
                .help = "Events with a \\ backslash and\na newline.",
                .label_names = {"type"},
                .const_labels = {{"instance_role", "primary"}}})
      ->WithLabelValues("team.registered")
      .Inc(8);
  auto later = prom.WaitFor("interop_events_total{type=\"team.registered\"} == 50", 30);
  EXPECT_FALSE(later.is_null()) << prom.Log();
}

}  // namespace
}  // namespace metrics
