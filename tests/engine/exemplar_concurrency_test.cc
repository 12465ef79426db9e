// Exemplars under contention (run under ThreadSanitizer too): writers racing on the same slots
// and on the first-exemplar install while scrapes copy them. Every exemplar a scrape sees is whole
// (its label is the value it was recorded with), counts stay exact, and plain writers are not
// disturbed.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "engine/registry.h"
#include "gtest/gtest.h"

namespace metrics {
namespace {

TEST(ExemplarConcurrencyTest, WholeExemplarsExactCounts) {
  Registry r;
  auto c = r.AddCounter({.name = "c_total", .help = "C.", .label_names = {"k"}});
  HistogramConfig hc;
  hc.buckets = {10, 100, 1000};
  auto h = r.AddHistogram({.name = "h", .help = "H.", .label_names = {"k"}}, hc);
  constexpr int kThreads = 4, kPerThread = 20000;
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::thread scraper([&] {
    while (!done.load()) {
      const Snapshot s = r.Collect();
      for (const FamilySnapshot& f : s.families) {
        for (const ExemplarSample& x : f.exemplars) {
          if (x.exemplar->labels.size() != 1 ||
              x.exemplar->labels[0].second != std::to_string(static_cast<int>(x.exemplar->value))) {
            bad.fetch_add(1);
          }
          if (f.desc->type == MetricType::kHistogram) {
            const std::vector<double>& b = f.desc->histogram->boundaries();
            const double v = x.exemplar->value;
            const bool in_bucket = (x.bucket == b.size() || v <= b[x.bucket]) &&
                                   (x.bucket == 0 || v > b[x.bucket - 1]);
            if (!in_bucket) bad.fetch_add(1);
          }
        }
      }
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      Counter mine = *c->Bind({"shared"});
      Histogram hist = *h->Bind({"shared"});
      for (int i = 0; i < kPerThread; ++i) {
        const int v = (i * kThreads + t) % 2000;
        const std::string label = std::to_string(v);
        if (i % 2 == 0) {
          ASSERT_TRUE(mine.AddWithExemplar(v, {{"v", label}}).ok());
          ASSERT_TRUE(hist.ObserveWithExemplar(v, {{"v", label}}).ok());
        } else {
          mine.Add(v);
          hist.Observe(v);
        }
        // A fresh series per few iterations: first exemplars race to install the slots.
        if (i % 500 == 0) {
          ASSERT_TRUE(c->WithLabelValues(std::to_string(i)).IncWithExemplar({{"v", "1"}}).ok());
        }
      }
    });
  }
  for (auto& w : writers) w.join();
  done.store(true);
  scraper.join();
  EXPECT_EQ(bad.load(), 0);

  const Snapshot s = r.Collect();
  double want = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) want += (i * kThreads + t) % 2000;
  }
  for (const FamilySnapshot& f : s.families) {
    if (f.desc->name == "h") {
      EXPECT_EQ(f.histograms[0].count, uint64_t{kThreads} * kPerThread);
      EXPECT_EQ(f.histograms[0].sum, want);
      EXPECT_EQ(f.exemplars.size(), 4u);  // every classic bucket, +Inf included, got one
    } else {
      for (size_t k = 0; k < f.samples.size(); ++k) {
        if (*f.samples[k].label_values == std::vector<std::string>{"shared"}) {
          EXPECT_EQ(f.samples[k].Total(), want);
        } else {
          EXPECT_EQ(f.samples[k].Total(), kThreads);  // one IncWithExemplar per thread
        }
      }
      EXPECT_EQ(f.exemplars.size(), f.samples.size());
    }
  }
}

}  // namespace
}  // namespace metrics
