// Histograms under threads: exact totals, and the snapshot invariants (+Inf == count, cumulative
// buckets never decreasing along le, count never decreasing between scrapes) checked by a scraper
// while writers run.
#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

#include "engine/registry.h"
#include "gtest/gtest.h"

namespace metrics {
namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int kScale = 10;
#else
constexpr int kScale = 1;
#endif

// Native layout (the default) and classic-only (no native part: the native check is skipped).
class HistogramConcurrencyTest : public ::testing::TestWithParam<bool> {};

TEST_P(HistogramConcurrencyTest, ExactTotalsAndSnapshotInvariantsUnderAConcurrentScraper) {
  HistogramConfig config;
  config.native = GetParam();
  Registry r;
  auto f = *r.AddHistogram({.name = "h_seconds", .help = "h", .label_names = {"k"}}, config);
  std::atomic<bool> stop{false};
  std::atomic<long> violations{0}, scrapes{0};
  std::thread scraper([&] {
    uint64_t last_count = 0;
    while (!stop.load()) {
      Snapshot s = r.Collect();
      for (const HistogramSample& h : s.families[0].histograms) {
        if (h.cumulative.back() != h.count) violations.fetch_add(1);
        for (size_t c = 1; c < h.cumulative.size(); ++c) {
          if (h.cumulative[c] < h.cumulative[c - 1]) violations.fetch_add(1);
        }
        uint64_t native = h.zero_count;
        for (uint64_t n : h.positive.counts) native += n;
        for (uint64_t n : h.negative.counts) native += n;
        if (h.native != config.native) violations.fetch_add(1);
        if (h.native && native != h.count) violations.fetch_add(1);
        if (!h.native && native != 0) violations.fetch_add(1);
      }
      if (!s.families[0].histograms.empty()) {
        uint64_t c = s.families[0].histograms[0].count;
        if (c < last_count) violations.fetch_add(1);
        last_count = c;
      }
      scrapes.fetch_add(1);
    }
  });
  const int kThreads = 4;
  const int kObs = 100000 / kScale;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      Histogram mine = *f.Bind({"shared"});
      for (int i = 0; i < kObs; ++i) {
        // Values 1e-7 .. ~10 and a quarter on the classic boundary 0.25; every thread adds the same
        // multiset.
        double v = (i % 4 == 0) ? 0.25 : 1e-7 * std::pow(1.0002, i % 80000);
        if (i % 2 == 0) {
          mine.Observe(v);
        } else {
          f.WithLabelValues("shared").Observe(v);
        }
      }
      (void)t;
    });
  }
  for (auto& t : ts) t.join();
  stop.store(true);
  scraper.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_GT(scrapes.load(), 0);

  // The same values, single-threaded, in a second registry: the totals must agree exactly.
  Registry oracle;
  auto of = *oracle.AddHistogram({.name = "h_seconds", .help = "h", .label_names = {"k"}}, config);
  Histogram o = *of.Bind({"shared"});
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kObs; ++i)
      o.Observe((i % 4 == 0) ? 0.25 : 1e-7 * std::pow(1.0002, i % 80000));
  }
  const Snapshot got_snap = r.Collect();
  const Snapshot want_snap = oracle.Collect();
  const HistogramSample& got = got_snap.families[0].histograms[0];
  const HistogramSample& want = want_snap.families[0].histograms[0];
  EXPECT_EQ(got.count, uint64_t{kThreads} * kObs);
  EXPECT_EQ(got.cumulative, want.cumulative);
  EXPECT_EQ(got.positive.counts, want.positive.counts);
  EXPECT_NEAR(got.sum, want.sum, 1e-9 * want.sum);
}

INSTANTIATE_TEST_SUITE_P(Layouts, HistogramConcurrencyTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "Native" : "ClassicOnly";
                         });

}  // namespace
}  // namespace metrics
