// GET /stats' figures: extracted from the snapshot /metrics renders (so the two agree number for
// number), windowed rates and quantiles from the sampled history, Prometheus' classic quantile.
#include "server/stats.h"

#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/registry.h"
#include "exposition/metrics_handler.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace eventstore {
namespace {

using nlohmann::json;

TEST(StatsTest, ClassicQuantileAsPrometheusComputesIt) {
  const std::vector<double> bounds = {1, 2, 4};
  const std::vector<double> cum = {10, 20, 30, 40};
  EXPECT_DOUBLE_EQ(*ClassicQuantile(bounds, cum, 0.25), 1);   // rank 10: top of bucket 0
  EXPECT_DOUBLE_EQ(*ClassicQuantile(bounds, cum, 0.5), 2);    // rank 20: top of (1, 2]
  EXPECT_DOUBLE_EQ(*ClassicQuantile(bounds, cum, 0.625), 3);  // rank 25: half of (2, 4]
  EXPECT_DOUBLE_EQ(*ClassicQuantile(bounds, cum, 0.99), 4);   // in +Inf: the highest bound
  EXPECT_FALSE(ClassicQuantile(bounds, {0, 0, 0, 0}, 0.5).has_value());
  EXPECT_FALSE(ClassicQuantile(bounds, {1, 2}, 0.5).has_value());  // malformed
}

TEST(StatsTest, NativeQuantileAsPrometheusComputesIt) {
  NativeDist d{.present = true, .schema = 0, .zero = 0, .positive = {{1, 10}}};  // (1, 2]
  EXPECT_DOUBLE_EQ(*NativeQuantile(d, 0.5), 1.5);
  d.positive[2] = 10;  // (2, 4]
  EXPECT_DOUBLE_EQ(*NativeQuantile(d, 0.75), 3);
  d.zero = 20;
  EXPECT_DOUBLE_EQ(*NativeQuantile(d, 0.25), 0);  // in the zero bucket
  NativeDist s3{.present = true, .schema = 3, .zero = 0, .positive = {{-10, 4}}};
  const double lo = std::exp2(-11.0 / 8), hi = std::exp2(-10.0 / 8);  // (0.3856, 0.4204]
  EXPECT_DOUBLE_EQ(*NativeQuantile(s3, 0.5), lo + (hi - lo) / 2);
  EXPECT_FALSE(NativeQuantile(NativeDist{.present = true}, 0.5).has_value());
}

struct Fixture {
  metrics::Registry r;
  metrics::CounterFamily stored =
      *r.AddCounter({.name = "events_stored_total", .help = "h", .label_names = {"event_type"}});
  metrics::GaugeFamily lag =
      *r.AddGauge({.name = "projection_lag_seconds", .help = "h", .label_names = {"projection"}});
  metrics::HistogramFamily append =
      *r.AddHistogram({.name = "event_processing_duration_seconds", .help = "h"});
  metrics::HistogramFamily api = *r.AddHistogram(
      {.name = "http_request_duration_seconds", .help = "h", .label_names = {"handler", "method"}});
  double store_events = 0;
  double now = 1000;
  Fixture() {
    (void)r.AddGaugeFunc({.name = "event_store_events", .help = "h"},
                         [this] { return store_events; });
    (void)r.AddGauge({.name = "event_store_size_bytes", .help = "h"})->WithLabelValues().Set(4096);
  }
  void Store(const std::string& type, int n) {
    stored.WithLabelValues(type).Inc(n);
    store_events += n;
  }
};

TEST(StatsTest, WindowsComeFromTheSampledHistory) {
  Fixture f;
  metrics::exposition::MetricsHandler handler({&f.r});
  StatsService stats([&] { return handler.Collect(); }, [&] { return f.now; });

  f.Store("team.registered", 10);
  for (int i = 0; i < 100; ++i) f.append.WithLabelValues().Observe(0.001);
  f.lag.WithLabelValues("teams").Set(0.25);
  stats.Sample();  // t = 1000: 10 events
  f.now = 1050;
  f.Store("status.updated", 30);
  stats.Sample();  // t = 1050: 40 events
  f.now = 1070;
  f.Store("status.updated", 30);
  for (int i = 0; i < 100; ++i) f.append.WithLabelValues().Observe(0.4);
  for (int i = 0; i < 50; ++i)
    f.api.WithLabelValues("/streams/{stream}/events", "POST").Observe(0.002);
  for (int i = 0; i < 50; ++i)
    f.api.WithLabelValues("/metrics", "GET").Observe(3);  // not the API's

  const json j = json::parse(stats.Json());
  EXPECT_EQ(j["events_count_total"], 70);  // an integer in the JSON
  EXPECT_TRUE(j["events_count_total"].is_number_integer());
  EXPECT_EQ(j["events_stored_since_start"], 70);
  EXPECT_EQ(j["events_by_type"], json({{"team.registered", 10}, {"status.updated", 60}}));
  EXPECT_DOUBLE_EQ(j["projection_lag_ms"]["teams"], 250);
  EXPECT_EQ(j["store_size_bytes"], 4096);
  // The newest point at least a minute old is t = 1000: a 70 s window, 60 events in it.
  EXPECT_DOUBLE_EQ(j["window_seconds"], 70);
  EXPECT_DOUBLE_EQ(j["ingest_events_per_second"], 60.0 / 70);
  EXPECT_EQ(j["events_last_hour"], 60);
  EXPECT_DOUBLE_EQ(j["events_last_hour_window_seconds"], 70);
  // Only the window's observations: the 100 at 0.4 s, not the 100 at 1 ms before it.
  EXPECT_EQ(j["append_latency_seconds"]["count"], 100);
  EXPECT_GT(j["append_latency_seconds"]["p50"].get<double>(), 0.25);
  EXPECT_LE(j["append_latency_seconds"]["p99"].get<double>(), 0.5);
  // /metrics scrapes (3 s each) are not API latency.
  EXPECT_EQ(j["api_latency_seconds"]["count"], 50);
  // From the native buckets: 2 ms requests read as ~2 ms, where the classic (0, 5 ms] bucket
  // would say 2.5 ms for the median and 4.95 ms for the p99.
  EXPECT_EQ(j["api_latency_seconds"]["from"], "native buckets");
  EXPECT_NEAR(j["api_latency_seconds"]["p50"].get<double>(), 0.002, 0.0002);
  EXPECT_NEAR(j["api_latency_seconds"]["p99"].get<double>(), 0.002, 0.0002);
  ASSERT_EQ(j["history"].size(), 2u);
  EXPECT_EQ(j["history"][1]["events"], 40);
}

TEST(StatsTest, WebhooksAndSchedulerWhenTheyReport) {
  Fixture f;
  f.Store("a", 10);
  auto pos =
      *f.r.AddGauge({.name = "webhook_position", .help = "h", .label_names = {"subscription"}});
  pos.WithLabelValues("bot").Set(7);
  auto del = *f.r.AddCounter({.name = "webhook_deliveries_total",
                              .help = "h",
                              .label_names = {"subscription", "outcome"}});
  del.WithLabelValues("bot", "delivered").Inc(5);
  del.WithLabelValues("bot", "failed").Inc(2);
  StatsService stats([&] { return f.r.Collect(); }, [&] { return f.now; });
  json j = json::parse(stats.Json());
  EXPECT_EQ(j["webhooks"]["bot"]["position"], 7);
  EXPECT_EQ(j["webhooks"]["bot"]["behind"], 3);
  EXPECT_EQ(j["webhooks"]["bot"]["delivered"], 5);
  EXPECT_EQ(j["webhooks"]["bot"]["failed_attempts"], 2);
  EXPECT_TRUE(j["scheduler"].is_null());  // no scheduler_* families: no scheduler
  (void)f.r.AddGauge({.name = "scheduler_pending", .help = "h"})->WithLabelValues().Set(4);
  (void)f.r.AddGauge({.name = "scheduler_last_tick_timestamp_seconds", .help = "h"})
      ->WithLabelValues()
      .Set(f.now - 0.5);
  j = json::parse(stats.Json());
  EXPECT_EQ(j["scheduler"]["pending"], 4);
  EXPECT_DOUBLE_EQ(j["scheduler"]["last_tick_age_seconds"], 0.5);
}

TEST(StatsTest, NothingYetIsSaidHonestly) {
  Fixture f;
  StatsService stats([&] { return f.r.Collect(); }, [&] { return f.now; });
  const json j = json::parse(stats.Json());
  EXPECT_EQ(j["events_count_total"], 0);
  EXPECT_TRUE(j["events_last_hour"].is_null());  // no sample yet: unknown, not 0
  EXPECT_TRUE(j["ingest_events_per_second"].is_null());
  EXPECT_TRUE(j["append_latency_seconds"]["p99"].is_null());
  EXPECT_EQ(j["append_latency_seconds"]["count"], 0);
  EXPECT_TRUE(j["events_by_type"].empty());
}

// The same snapshot /metrics renders: every per-type count in /stats is the scrape's sample.
TEST(StatsTest, AgreesWithTheMetricsScrape) {
  Fixture f;
  f.Store("a", 3);
  f.Store("b\"quoted", 5);
  auto handler = std::make_shared<metrics::exposition::MetricsHandler>(
      std::vector<const metrics::Registry*>{&f.r});
  StatsService stats([handler] { return handler->Collect(); });
  const json j = json::parse(stats.Json());
  std::string text;
  handler->Scrape("text/plain", "", [&](const metrics::exposition::ScrapeResult& res) {
    text = std::string(res.body);
  });
  EXPECT_THAT(text, ::testing::HasSubstr("events_stored_total{event_type=\"a\"} 3\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("events_stored_total{event_type=\"b\\\"quoted\"} 5\n"));
  EXPECT_EQ(j["events_by_type"]["a"], 3);
  EXPECT_EQ(j["events_by_type"]["b\"quoted"], 5);
  EXPECT_THAT(text, ::testing::HasSubstr("event_store_events 8\n"));
  EXPECT_EQ(j["events_count_total"], 8);
}

TEST(StatsTest, SamplerKeepsAtMostAnHour) {
  Fixture f;
  StatsService stats([&] { return f.r.Collect(); }, [&] { return f.now; });
  for (int i = 0; i < 500; ++i) {
    f.now = 1000 + 10.0 * i;
    f.Store("x", 1);
    stats.Sample();
  }
  const json j = json::parse(stats.Json());
  // 361 points kept: the oldest within the hour is 3,600 s back, 360 events ago.
  EXPECT_EQ(j["events_last_hour"], 360);
  EXPECT_DOUBLE_EQ(j["events_last_hour_window_seconds"], 3600);
  EXPECT_EQ(j["history"].size(), 61u);  // the last ten minutes
}

}  // namespace
}  // namespace eventstore
