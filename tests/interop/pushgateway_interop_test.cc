// Our Pusher against Debian's real prometheus-pushgateway on a free loopback port: what we push is
// what its /metrics shows, with our values and grouping labels (one of them needing base64 in the
// path); POST adds, PUT replaces, DELETE removes; a push it refuses is a clear error.
#include <map>
#include <string>
#include <vector>

#include "engine/histogram.h"
#include "engine/registry.h"
#include "exposition/pushgateway.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto_oracle.h"
#include "tests/support/peers.h"

namespace metrics {
namespace {

using ::testing::HasSubstr;
using namespace ::metrics::test_support;

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  std::string value;
};

// The sample lines of a text-format exposition (label values unescaped).
std::vector<Sample> ParseSamples(const std::string& text) {
  std::vector<Sample> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    size_t i = line.find_first_of("{ ");
    s.name = line.substr(0, i);
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        std::string key = line.substr(i, eq - i);
        std::string value;
        for (i = eq + 2; i < line.size() && line[i] != '"'; ++i) {
          if (line[i] == '\\' && i + 1 < line.size()) {
            ++i;
            value += line[i] == 'n' ? '\n' : line[i];
          } else {
            value += line[i];
          }
        }
        s.labels[key] = value;
        ++i;  // closing quote
        if (i < line.size() && line[i] == ',') ++i;
      }
      ++i;  // '}'
    }
    s.value = line.substr(line.find_first_not_of(' ', i));
    out.push_back(std::move(s));
  }
  return out;
}

// The value of `name` in the group job=`job`, branch=`branch` with the further `labels`; "" if
// absent.
std::string ValueIn(const std::vector<Sample>& samples, const std::string& name,
                    const std::string& job, const std::string& branch,
                    const std::map<std::string, std::string>& labels = {}) {
  for (const auto& s : samples) {
    if (s.name != name) continue;
    auto l = s.labels;
    if (l["job"] != job || l["branch"] != branch) continue;
    bool match = true;
    for (const auto& [k, v] : labels) match = match && l[k] == v;
    if (match) return s.value;
  }
  return "";
}

bool AnyInJob(const std::vector<Sample>& samples, const std::string& job) {
  for (const auto& s : samples) {
    auto it = s.labels.find("job");
    if (it != s.labels.end() && it->second == job) return true;
  }
  return false;
}

TEST(PushgatewayInteropTest, PushAddReplaceDeleteAgainstRealPushgateway) {
  if (!Executable(Pushgateway::kBinary)) {
    GTEST_SKIP() << "SKIPPED LOUDLY: " << Pushgateway::kBinary
                 << " missing (apt-get install prometheus-pushgateway)";
  }
  Pushgateway gw;
  ASSERT_TRUE(gw.WaitReady(30)) << "pushgateway not ready; log:\n" << gw.Log();
  const std::string job = "ci_bench";
  const std::string branch = "feature/push \"quoted\"";  // '/' forces the base64 path form
  auto pusher = exposition::Pusher::Create({.url = "http://127.0.0.1:" + std::to_string(gw.port()),
                                            .job = job,
                                            .grouping = {{"branch", branch}}});
  ASSERT_TRUE(pusher.ok()) << pusher.status();

  Registry r;
  auto runs =
      r.AddCounter({.name = "ci_bench_runs_total", .help = "Runs.", .label_names = {"suite"}});
  runs->WithLabelValues("counter").Inc(3);
  runs->WithLabelValues("histogram").Inc(5);
  r.AddGauge({.name = "ci_bench_ns_per_op", .help = "Cost.", .label_names = {"suite"}})
      ->WithLabelValues("counter")
      .Set(1.25);
  auto h = r.AddHistogram({.name = "ci_bench_wall_seconds", .help = "Wall time."});
  h->WithLabelValues().Observe(0.5);
  h->WithLabelValues().Observe(2);

  // PUT: the group holds our families with our values.
  ASSERT_TRUE(pusher->Push(r.Collect()).ok());
  auto samples = ParseSamples(gw.Scrape());
  EXPECT_EQ(ValueIn(samples, "ci_bench_runs_total", job, branch, {{"suite", "counter"}}), "3");
  EXPECT_EQ(ValueIn(samples, "ci_bench_runs_total", job, branch, {{"suite", "histogram"}}), "5");
  EXPECT_EQ(ValueIn(samples, "ci_bench_ns_per_op", job, branch, {{"suite", "counter"}}), "1.25");
  EXPECT_EQ(ValueIn(samples, "ci_bench_wall_seconds_count", job, branch), "2");
  EXPECT_EQ(ValueIn(samples, "ci_bench_wall_seconds_sum", job, branch), "2.5");
  EXPECT_EQ(ValueIn(samples, "push_failure_time_seconds", job, branch), "0");

  // POST: a new family joins, the others stay (with updated values where re-sent).
  Registry extra;
  extra.AddGauge({.name = "ci_bench_peak_rss_bytes", .help = "Peak RSS."})
      ->WithLabelValues()
      .Set(123456789);
  ASSERT_TRUE(pusher->Add(extra.Collect()).ok());
  samples = ParseSamples(gw.Scrape());
  EXPECT_EQ(ValueIn(samples, "ci_bench_peak_rss_bytes", job, branch), "1.23456789e+08");
  EXPECT_EQ(ValueIn(samples, "ci_bench_runs_total", job, branch, {{"suite", "counter"}}), "3");

  // PUT again with only that family: everything else of the group is gone.
  ASSERT_TRUE(pusher->Push(extra.Collect()).ok());
  samples = ParseSamples(gw.Scrape());
  EXPECT_EQ(ValueIn(samples, "ci_bench_peak_rss_bytes", job, branch), "1.23456789e+08");
  EXPECT_EQ(ValueIn(samples, "ci_bench_runs_total", job, branch, {{"suite", "counter"}}), "");

  // A push the gateway refuses (same name, other type than in an existing group): a clear error.
  auto other = exposition::Pusher::Create(
      {.url = "http://127.0.0.1:" + std::to_string(gw.port()), .job = "other_job"});
  ASSERT_TRUE(other.ok());
  Registry clash;
  clash.AddCounter({.name = "ci_bench_peak_rss_bytes", .help = "Not a gauge."})
      ->WithLabelValues()
      .Inc();
  absl::Status refused = other->Push(clash.Collect());
  EXPECT_FALSE(refused.ok());
  EXPECT_THAT(refused.message(), HasSubstr("answered HTTP 400")) << refused;
  // The gateway keeps nothing of it but the time of the failure.
  samples = ParseSamples(gw.Scrape());
  for (const auto& s : samples) {
    if (s.labels.count("job") != 0 && s.labels.at("job") == "other_job") {
      EXPECT_THAT(s.name, ::testing::AnyOf("push_time_seconds", "push_failure_time_seconds"));
      if (s.name == "push_failure_time_seconds") {
        EXPECT_NE(s.value, "0");
      }
    }
  }

  // DELETE: the group is gone.
  ASSERT_TRUE(pusher->Delete().ok());
  samples = ParseSamples(gw.Scrape());
  EXPECT_FALSE(AnyInJob(samples, job)) << gw.Scrape();
}

}  // namespace
}  // namespace metrics

namespace metrics {
namespace {

// A protobuf push carries the native half of a histogram (and exemplars); the Pushgateway keeps
// it and serves it back in protobuf, where libprotobuf finds the same spans, counts and exemplar.
TEST(PushgatewayInteropTest, ProtobufPushWithNativeHistogramRoundTrips) {
  if (!Executable(Pushgateway::kBinary)) {
    GTEST_SKIP() << "SKIPPED LOUDLY: " << Pushgateway::kBinary
                 << " missing (apt-get install prometheus-pushgateway)";
  }
  Pushgateway gw;
  ASSERT_TRUE(gw.WaitReady(30)) << gw.Log();
  Registry r;
  HistogramConfig hc;
  hc.buckets = {0.1, 1};
  Histogram h = *r.AddHistogram({.name = "nightly_step_seconds", .help = "Steps."}, hc)->Bind({});
  for (double v : {0.05, 0.3, 0.3, 2.0, -1.0, 0.0}) h.Observe(v);
  ASSERT_TRUE(h.ObserveWithExemplar(0.7, {{"run", "r-42"}}).ok());
  Counter c = *r.AddCounter({.name = "nightly_runs_total", .help = "Runs."})->Bind({});
  ASSERT_TRUE(c.IncWithExemplar({{"run", "r-42"}}).ok());
  auto pusher = exposition::Pusher::Create({.url = "http://127.0.0.1:" + std::to_string(gw.port()),
                                            .job = "nightly",
                                            .format = exposition::Format::kProtobuf});
  ASSERT_TRUE(pusher.ok()) << pusher.status();
  const Snapshot pushed = r.Collect();
  ASSERT_TRUE(pusher->Push(pushed).ok()) << gw.Log();

  httplib::Client client("127.0.0.1", gw.port());
  client.set_read_timeout(5);
  auto res = client.Get("/metrics", {{"Accept", std::string("application/vnd.google.protobuf;"
                                                            "proto=io.prometheus.client."
                                                            "MetricFamily;encoding=delimited")}});
  ASSERT_TRUE(res && res->status == 200);
  EXPECT_THAT(res->get_header_value("Content-Type"), HasSubstr("application/vnd.google.protobuf"));
  std::vector<testing::pb::MetricFamily> families;
  std::string error;
  ASSERT_TRUE(testing::ParseDelimited(res->body, &families, &error)) << error;
  const std::vector<testing::pb::MetricFamily> want = testing::ExpectedFamilies(pushed);
  const testing::pb::Histogram* got_h = nullptr;
  const testing::pb::Counter* got_c = nullptr;
  for (const auto& f : families) {
    for (const auto& m : f.metric()) {
      bool ours = false;
      for (const auto& l : m.label()) ours = ours || (l.name() == "job" && l.value() == "nightly");
      if (!ours) continue;
      if (f.name() == "nightly_step_seconds") got_h = &m.histogram();
      if (f.name() == "nightly_runs_total") got_c = &m.counter();
    }
  }
  ASSERT_NE(got_h, nullptr) << res->body.size() << " bytes, no nightly_step_seconds";
  ASSERT_NE(got_c, nullptr);
  const testing::pb::Histogram& w = want[1].metric(0).histogram();
  ASSERT_EQ(want[1].name(), "nightly_step_seconds");
  EXPECT_EQ(got_h->sample_count(), 7u);
  EXPECT_EQ(got_h->schema(), w.schema());
  EXPECT_EQ(got_h->zero_threshold(), w.zero_threshold());
  EXPECT_EQ(got_h->zero_count(), 1u);
  ASSERT_EQ(got_h->positive_span_size(), w.positive_span_size());
  for (int i = 0; i < w.positive_span_size(); ++i) {
    EXPECT_EQ(got_h->positive_span(i).offset(), w.positive_span(i).offset());
    EXPECT_EQ(got_h->positive_span(i).length(), w.positive_span(i).length());
  }
  EXPECT_THAT(got_h->positive_delta(), ::testing::ElementsAreArray(w.positive_delta()));
  EXPECT_THAT(got_h->negative_delta(), ::testing::ElementsAreArray(w.negative_delta()));
  bool exemplar = false;
  for (const auto& b : got_h->bucket()) {
    if (b.has_exemplar()) {
      exemplar = true;
      EXPECT_EQ(b.upper_bound(), 1);
      EXPECT_EQ(b.exemplar().value(), 0.7);
      EXPECT_EQ(b.exemplar().label(0).value(), "r-42");
    }
  }
  EXPECT_TRUE(exemplar) << "the bucket exemplar did not survive the Pushgateway";
  EXPECT_EQ(got_c->value(), 1);
  EXPECT_EQ(got_c->exemplar().label(0).value(), "r-42");
}

TEST(PushgatewayInteropTest, OpenMetricsPushIsRefusedUpFront) {
  auto pusher = exposition::Pusher::Create(
      {.url = "http://127.0.0.1:1", .job = "j", .format = exposition::Format::kOpenMetrics});
  EXPECT_EQ(pusher.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace metrics
