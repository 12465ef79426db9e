// The protobuf exposition decoded by libprotobuf (classes protoc generates from
// tests/proto/metrics.proto) and compared field by field with the snapshot; native buckets checked
// against values worked out by hand; negotiation; the handler's protobuf answer.
#include "exposition/protobuf_format.h"

#include <zlib.h>

#include <cmath>
#include <limits>
#include <map>
#include <string>

#include "engine/registry.h"
#include "exposition/metrics_handler.h"
#include "exposition/negotiation.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/field_comparator.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "proto_oracle.h"

namespace metrics::exposition {
namespace {

namespace pb = ::io::prometheus::client;
using ::testing::ElementsAre;
using ::testing::Pair;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Prometheus 2.42 with --enable-feature=native-histograms sends exactly this.
constexpr char kPrometheus242Accept[] =
    "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,"
    "application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

std::vector<pb::MetricFamily> Decode(std::string_view body) {
  std::vector<pb::MetricFamily> out;
  std::string error;
  EXPECT_TRUE(metrics::testing::ParseDelimited(body, &out, &error)) << error;
  return out;
}

// Every field, NaN equal to NaN (a histogram's sum after a NaN observation).
void ExpectSame(const std::vector<pb::MetricFamily>& got,
                const std::vector<pb::MetricFamily>& want) {
  ASSERT_EQ(got.size(), want.size());
  google::protobuf::util::DefaultFieldComparator cmp;
  cmp.set_treat_nan_as_equal(true);
  for (size_t i = 0; i < got.size(); ++i) {
    google::protobuf::util::MessageDifferencer diff;
    diff.set_field_comparator(&cmp);
    std::string report;
    diff.ReportDifferencesToString(&report);
    EXPECT_TRUE(diff.Compare(want[i], got[i])) << want[i].name() << ":\n" << report;
  }
}

// Absolute counts by native bucket index, from spans and deltas as Prometheus reads them.
std::map<int32_t, int64_t> Buckets(const google::protobuf::RepeatedPtrField<pb::BucketSpan>& spans,
                                   const google::protobuf::RepeatedField<int64_t>& deltas) {
  std::map<int32_t, int64_t> out;
  int32_t index = 0;
  int64_t count = 0;
  int d = 0;
  for (int s = 0; s < spans.size(); ++s) {
    index += spans[s].offset();
    for (uint32_t j = 0; j < spans[s].length(); ++j, ++index) {
      count += deltas.Get(d++);
      out[index] = count;
    }
  }
  EXPECT_EQ(d, deltas.size()) << "deltas without a span";
  return out;
}

void Fill(Registry& r) {
  auto c = r.AddCounter({.name = "events_total",
                         .help = "Events with a \\ backslash\nand a \"quote\".",
                         .label_names = {"type"},
                         .const_labels = {{"svc", "store"}}});
  c->WithLabelValues("a\"b\\c\nd").Inc(3);
  c->WithLabelValues("").Add(0.5);
  c->WithLabelValues("caf\xc3\xa9").Inc();
  auto g = r.AddGauge({.name = "temp_celsius", .help = "Gauge.", .label_names = {"probe"}});
  g->WithLabelValues("nan").Set(kNaN);
  g->WithLabelValues("pinf").Set(kInf);
  g->WithLabelValues("ninf").Set(-kInf);
  g->WithLabelValues("small").Set(1.5e-7);
  (void)r.AddInfo({.name = "build", .help = "Build.", .label_names = {"version"}})->Bind({"1.2.3"});
  HistogramConfig hc;
  hc.buckets = {0.25, 1, 2.5};
  auto h =
      r.AddHistogram({.name = "latency_seconds", .help = "Latency.", .label_names = {"op"}}, hc);
  for (double v : {0.25, 2.0, 100.0, 0.0, -3.0, kInf, -kInf, 1e-300}) {
    h->WithLabelValues("read").Observe(v);
  }
  h->WithLabelValues("nan").Observe(kNaN);
  (void)h->Bind({"idle"});  // no observations
  HistogramConfig classic = hc;
  classic.native = false;
  auto hc_only = r.AddHistogram({.name = "classic_seconds", .help = "Classic only."}, classic);
  hc_only->WithLabelValues().Observe(0.5);
}

TEST(ProtobufFormatTest, DecodesToWhatTheSnapshotSays) {
  Registry r;
  Fill(r);
  const Snapshot snap = r.Collect();
  std::string body;
  WriteProtobuf(snap, &body);
  const std::vector<pb::MetricFamily> got = Decode(body);
  ExpectSame(got, metrics::testing::ExpectedFamilies(snap));
  ASSERT_EQ(got.size(), 5u);
  std::map<std::string, const pb::MetricFamily*> by_name;
  for (const auto& f : got) by_name[f.name()] = &f;

  // The oracle mirrors the snapshot; these pin what the snapshot means, by hand.
  const pb::MetricFamily& events = *by_name.at("events_total");
  EXPECT_EQ(events.type(), pb::COUNTER);
  EXPECT_EQ(events.help(), "Events with a \\ backslash\nand a \"quote\".");  // no escaping
  ASSERT_EQ(events.metric_size(), 3);
  EXPECT_EQ(events.metric(0).label(0).name(), "svc");  // constant labels first
  EXPECT_EQ(events.metric(0).label(1).value(), "");
  EXPECT_EQ(events.metric(0).counter().value(), 0.5);
  EXPECT_EQ(events.metric(1).label(1).value(), "a\"b\\c\nd");
  EXPECT_EQ(events.metric(1).counter().value(), 3);

  const pb::MetricFamily& build = *by_name.at("build_info");
  EXPECT_EQ(build.type(), pb::GAUGE);
  EXPECT_EQ(build.metric(0).gauge().value(), 1);

  const pb::MetricFamily& temp = *by_name.at("temp_celsius");
  EXPECT_TRUE(std::isnan(temp.metric(0).gauge().value()));
  EXPECT_EQ(temp.metric(1).gauge().value(), -kInf);
  EXPECT_EQ(temp.metric(2).gauge().value(), kInf);

  const pb::MetricFamily& lat = *by_name.at("latency_seconds");
  EXPECT_EQ(lat.type(), pb::HISTOGRAM);
  ASSERT_EQ(lat.metric_size(), 3);  // idle, nan, read
  const pb::Histogram& idle = lat.metric(0).histogram();
  EXPECT_EQ(idle.sample_count(), 0u);
  EXPECT_EQ(idle.schema(), 3);
  EXPECT_EQ(idle.zero_threshold(), 0x1p-128);  // always sent: 2.42 needs it to see "native"
  EXPECT_TRUE(idle.has_zero_count());
  EXPECT_EQ(idle.positive_span_size() + idle.negative_span_size(), 0);
  ASSERT_EQ(idle.bucket_size(), 3);  // +Inf is implied by sample_count
  EXPECT_EQ(idle.bucket(2).upper_bound(), 2.5);

  const pb::Histogram& nan = lat.metric(1).histogram();
  EXPECT_EQ(nan.sample_count(), 1u);
  EXPECT_TRUE(std::isnan(nan.sample_sum()));
  EXPECT_EQ(nan.zero_count(), 1u);  // NaN counts in the zero bucket, as client_golang does

  const pb::Histogram& read = lat.metric(2).histogram();
  EXPECT_EQ(read.sample_count(), 8u);
  EXPECT_TRUE(std::isnan(read.sample_sum()));  // +Inf + -Inf
  // Classic: 0.25, 0, -3, -Inf, 1e-300 are <= 0.25; 2 <= 2.5; 100 and +Inf above.
  EXPECT_THAT(
      std::vector<uint64_t>({read.bucket(0).cumulative_count(), read.bucket(1).cumulative_count(),
                             read.bucket(2).cumulative_count()}),
      ElementsAre(5, 5, 6));
  EXPECT_EQ(read.zero_count(), 2u);  // 0 and 1e-300 (below 2^-128)
  // Schema 3: bucket i is (2^((i-1)/8), 2^(i/8)]. 0.25 = 2^-2 -> -16; 2 -> 8. The range derived
  // from the buckets ends 4 binades above 2.5's binade [2, 4): at 2^6, index 48, so 100 (index
  // 54) and +Inf clamp to 48.
  EXPECT_THAT(Buckets(read.positive_span(), read.positive_delta()),
              ElementsAre(Pair(-16, 1), Pair(8, 1), Pair(48, 2)));
  // -3: |v| in (2^(12/8), 2^(13/8)] -> 13; -Inf -> the outermost, 48.
  EXPECT_THAT(Buckets(read.negative_span(), read.negative_delta()),
              ElementsAre(Pair(13, 1), Pair(48, 1)));

  const pb::Histogram& classic = by_name.at("classic_seconds")->metric(0).histogram();
  EXPECT_FALSE(classic.has_schema());
  EXPECT_FALSE(classic.has_zero_threshold());
  EXPECT_EQ(classic.sample_count(), 1u);
  EXPECT_EQ(classic.bucket(1).cumulative_count(), 1u);
}

// Families and metrics past 127 and 16383 bytes take multi-byte lengths, written minimal.
TEST(ProtobufFormatTest, LongFamiliesAndLengthPrefixes) {
  Registry r;
  auto c = r.AddCounter({.name = "many_total", .help = "Many.", .label_names = {"id"}});
  for (int i = 0; i < 5000; ++i) c->WithLabelValues(std::to_string(i)).Inc(i);
  auto h = r.AddHistogram({.name = "wide_seconds", .help = "Wide.", .label_names = {"id"}});
  for (int i = 0; i < 50; ++i) {
    for (int k = 0; k < 200; ++k)
      h->WithLabelValues(std::to_string(i)).Observe(0.001 * k * (i + 1));
  }
  auto long_label = r.AddGauge({.name = "long_label", .help = "Long.", .label_names = {"v"}});
  long_label->WithLabelValues(std::string(70000, 'x')).Set(1);
  const Snapshot snap = r.Collect();
  std::string body;
  WriteProtobuf(snap, &body);
  ExpectSame(Decode(body), metrics::testing::ExpectedFamilies(snap));
  // The first prefix is the minimal varint of the first family's length.
  uint64_t len = 0;
  size_t n = 0;
  for (int shift = 0;; shift += 7) {
    const auto b = static_cast<uint8_t>(body[n++]);
    len |= uint64_t{b & 0x7fu} << shift;
    if (b < 0x80) break;
  }
  EXPECT_EQ(n, len < (1u << 14) ? 2u : 3u);
  EXPECT_GT(len, 1u << 14);  // long_label: a 70 KB value
}

TEST(ProtobufFormatTest, ExemplarsOnCountersAndBuckets) {
  Registry r;
  auto c = r.AddCounter({.name = "requests_total", .help = "Requests.", .label_names = {"code"}});
  EXPECT_TRUE(c->WithLabelValues("200").IncWithExemplar({{"trace_id", "abc"}}).ok());
  EXPECT_TRUE(c->WithLabelValues("200").AddWithExemplar(2.5, {{"trace_id", "def"}}).ok());
  c->WithLabelValues("500").Inc();
  HistogramConfig hc;
  hc.buckets = {0.25, 1};
  auto h = r.AddHistogram({.name = "duration_seconds", .help = "D."}, hc);
  Histogram hist = *h->Bind({});
  EXPECT_TRUE(hist.ObserveWithExemplar(0.5, {{"position", "41"}}).ok());
  EXPECT_TRUE(hist.ObserveWithExemplar(0.75, {{"position", "42"}, {"id", "r-7"}}).ok());
  EXPECT_TRUE(hist.ObserveWithExemplar(7, {{"position", "43"}}).ok());  // the +Inf bucket
  hist.Observe(0.1);

  const double before = std::time(nullptr);
  const Snapshot snap = r.Collect();
  std::string body;
  WriteProtobuf(snap, &body);
  const std::vector<pb::MetricFamily> got = Decode(body);
  ExpectSame(got, metrics::testing::ExpectedFamilies(snap));
  ASSERT_EQ(got.size(), 2u);

  const pb::Histogram& d = got[0].metric(0).histogram();
  ASSERT_EQ(d.bucket_size(), 3);  // +Inf appears because it carries an exemplar
  EXPECT_FALSE(d.bucket(0).has_exemplar());
  EXPECT_EQ(d.bucket(1).exemplar().value(), 0.75);  // the latest in its bucket
  ASSERT_EQ(d.bucket(1).exemplar().label_size(), 2);
  EXPECT_EQ(d.bucket(1).exemplar().label(1).value(), "r-7");
  EXPECT_EQ(d.bucket(2).upper_bound(), kInf);
  EXPECT_EQ(d.bucket(2).cumulative_count(), 4u);
  EXPECT_EQ(d.bucket(2).exemplar().label(0).value(), "43");
  EXPECT_NEAR(static_cast<double>(d.bucket(2).exemplar().timestamp().seconds()), before, 5);

  const pb::Counter& ok = got[1].metric(0).counter();
  EXPECT_EQ(ok.value(), 3.5);
  EXPECT_EQ(ok.exemplar().value(), 2.5);
  EXPECT_EQ(ok.exemplar().label(0).value(), "def");
  EXPECT_FALSE(got[1].metric(1).counter().has_exemplar());
}

TEST(ProtobufFormatTest, ExemplarsInOpenMetricsOnlyWherePrometheusAcceptsThem) {
  Registry r;
  auto c = r.AddCounter({.name = "requests_total", .help = "Requests."});
  HistogramConfig hc;
  hc.buckets = {1};
  auto h = r.AddHistogram({.name = "duration_seconds", .help = "D."}, hc);
  ASSERT_TRUE(c->WithLabelValues().IncWithExemplar({{"trace_id", "a\"b"}}).ok());
  ASSERT_TRUE(h->WithLabelValues().ObserveWithExemplar(0.5, {{"trace_id", "t1"}}).ok());
  ASSERT_TRUE(h->WithLabelValues().ObserveWithExemplar(2, {{"trace_id", "t2"}}).ok());
  std::string om, text;
  const Snapshot snap = r.Collect();
  WriteOpenMetrics(snap, &om);
  WriteText(snap, &text);
  EXPECT_EQ(text.find(" # {"), std::string::npos);
  std::vector<std::string> with_exemplar;
  size_t pos = 0;
  while (pos < om.size()) {
    const size_t nl = om.find('\n', pos);
    const std::string line = om.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.find(" # {") != std::string::npos) with_exemplar.push_back(line);
  }
  ASSERT_EQ(with_exemplar.size(), 3u) << om;
  EXPECT_THAT(
      with_exemplar[0],
      ::testing::MatchesRegex(
          R"re(duration_seconds_bucket\{le="1.0"\} 1 # \{trace_id="t1"\} 0.5 [0-9]+\.[0-9]{3})re"));
  EXPECT_THAT(
      with_exemplar[1],
      ::testing::StartsWith(R"(duration_seconds_bucket{le="+Inf"} 2 # {trace_id="t2"} 2.0 )"));
  EXPECT_THAT(with_exemplar[2],
              ::testing::StartsWith(R"(requests_total 1 # {trace_id="a\"b"} 1.0 )"));
}

TEST(ProtobufFormatTest, ExemplarLabelsAreChecked) {
  Registry r;
  auto c = r.AddCounter({.name = "x_total", .help = "X."});
  Counter x = *c->Bind({});
  const std::string v124(124, 'v');  // "id" + 124 = 126 runes: fits
  EXPECT_TRUE(x.IncWithExemplar({{"id", v124}}).ok());
  const std::string v127 = std::string(125, 'v');                    // 127 runes
  EXPECT_FALSE(x.IncWithExemplar({{"id", v127}, {"a", "b"}}).ok());  // 129
  // 128 runes counted as runes, not bytes: 126 two-byte characters + "id".
  std::string euro;
  for (int i = 0; i < 126; ++i) euro += "\xc3\xa9";
  EXPECT_TRUE(x.IncWithExemplar({{"id", euro}}).ok());
  EXPECT_FALSE(x.IncWithExemplar({{"id", euro + "x"}}).ok());
  EXPECT_FALSE(x.IncWithExemplar({{"0bad", "v"}}).ok());
  EXPECT_FALSE(x.IncWithExemplar({{"id", "\xff"}}).ok());
  EXPECT_FALSE(x.AddWithExemplar(-1, {{"id", "v"}}).ok());
  // Every Inc counted, exemplar or not (the negative Add excepted); the kept exemplar is the last
  // valid one.
  const Snapshot snap = r.Collect();
  EXPECT_EQ(snap.families[0].samples[0].Total(), 6);
  ASSERT_EQ(snap.families[0].exemplars.size(), 1u);
  EXPECT_EQ(snap.families[0].exemplars[0].exemplar->labels[0].second, euro);
  // Handles without a series count into the sink and keep nothing, without failing.
  Counter sink;
  EXPECT_TRUE(sink.IncWithExemplar({{"id", "v"}}).ok());
  Histogram hsink;
  EXPECT_TRUE(hsink.ObserveWithExemplar(1, {{"id", "v"}}).ok());
}

TEST(ProtobufFormatTest, NegotiatesProtobufOnlyForDelimitedMetricFamily) {
  EXPECT_EQ(NegotiateFormat(kPrometheus242Accept), Format::kProtobuf);
  EXPECT_EQ(
      NegotiateFormat("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily;"
                      " encoding=delimited"),
      Format::kProtobuf);
  // Other encodings (text, compact-text) and other messages are not ours to offer.
  EXPECT_EQ(
      NegotiateFormat("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
                      "encoding=text,text/plain;q=0.5"),
      Format::kText);
  EXPECT_EQ(
      NegotiateFormat("application/vnd.google.protobuf;proto=other.Message;encoding=delimited"),
      Format::kText);
  EXPECT_EQ(NegotiateFormat("application/vnd.google.protobuf"), Format::kText);
  // Order and q-values as for the text formats.
  EXPECT_EQ(NegotiateFormat("application/openmetrics-text;version=1.0.0,application/"
                            "vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
                            "encoding=delimited;q=0.9"),
            Format::kOpenMetrics);
  EXPECT_EQ(
      NegotiateFormat("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
                      "encoding=delimited;q=0"),
      Format::kText);
  EXPECT_EQ(ContentType(Format::kProtobuf),
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
            "encoding=delimited");
}

std::string Gunzip(std::string_view in) {
  z_stream zs{};
  EXPECT_EQ(inflateInit2(&zs, 15 + 16), Z_OK);
  std::string out;
  char buf[1 << 15];
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof buf;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buf, sizeof buf - zs.avail_out);
  }
  EXPECT_EQ(rc, Z_STREAM_END);
  inflateEnd(&zs);
  return out;
}

TEST(ProtobufFormatTest, HandlerAnswersPrometheus242WithGzippedProtobuf) {
  Registry r;
  Fill(r);
  MetricsHandler handler({&r});
  std::string body;
  handler.Scrape(kPrometheus242Accept, "gzip", [&](const ScrapeResult& res) {
    EXPECT_EQ(res.content_type, kProtobufContentType);
    EXPECT_TRUE(res.gzipped);
    body = Gunzip(res.body);
  });
  const std::vector<pb::MetricFamily> got = Decode(body);
  std::set<std::string> names;
  for (const auto& f : got) names.insert(f.name());
  EXPECT_TRUE(names.count("latency_seconds"));
  EXPECT_TRUE(names.count("process_cpu_seconds_total"));
  EXPECT_TRUE(names.count("metrics_scrapes_total"));
  // The scrape counted itself under format="protobuf".
  handler.Scrape("text/plain", "", [&](const ScrapeResult& res) {
    EXPECT_NE(std::string(res.body).find("metrics_scrapes_total{format=\"protobuf\"} 1"),
              std::string::npos);
  });
}

}  // namespace
}  // namespace metrics::exposition
