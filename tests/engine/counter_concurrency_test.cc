// Counters under threads: exact totals, short-lived threads, a concurrent scraper that must never
// see a counter go down, and removal while writers run. Run under ThreadSanitizer in CI (label
// "concurrency").
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "engine/internal/cells.h"
#include "engine/registry.h"
#include "gtest/gtest.h"

namespace metrics {
namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int kScale =
    10;  // sanitizers are 5-20x slower; keep the same shape with fewer iterations
#else
constexpr int kScale = 1;
#endif

double Total(const Snapshot& s, std::string_view family, const std::vector<std::string>& labels) {
  for (const FamilySnapshot& f : s.families) {
    if (f.desc->name != family) continue;
    for (const SeriesSample& x : f.samples) {
      if (*x.label_values == labels) return x.Total();
    }
  }
  return -1;
}

TEST(CounterConcurrencyTest, ThreadsTimesIncrementsIsExact) {
  Registry r;
  auto f = r.AddCounter({.name = "x_total", .help = "h"});
  Counter c = *f->Bind({});
  const int kThreads = 8;
  const int kIncs = 200000 / kScale;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < kIncs; ++i) c.Inc();
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(Total(r.Collect(), "x_total", {}), double{kThreads} * kIncs);
}

TEST(CounterConcurrencyTest, FiveThousandShortLivedThreadsAddUpAndReuseShards) {
  Registry r;
  auto f = r.AddCounter({.name = "x_total", .help = "h", .label_names = {"k"}});
  Counter bound = *f->Bind({"bound"});
  const size_t shards_before = internal::ShardCount();
  const int kThreads = 5000;
  const int kConcurrent = 4;
  for (int done = 0; done < kThreads; done += kConcurrent) {
    std::vector<std::thread> batch;
    for (int i = 0; i < kConcurrent; ++i) {
      batch.emplace_back([&] {
        bound.Inc();
        f->WithLabelValues("lookup").Inc();
      });
    }
    for (auto& t : batch) t.join();
  }
  Snapshot s = r.Collect();
  EXPECT_EQ(Total(s, "x_total", {"bound"}), kThreads);
  EXPECT_EQ(Total(s, "x_total", {"lookup"}), kThreads);
  // Exited threads park their shards for the next ones: shards track peak live threads, not all
  // threads.
  EXPECT_LE(internal::ShardCount(), shards_before + kConcurrent);
}

TEST(CounterConcurrencyTest, BoundHandlesAndLookupsMixed) {
  Registry r;
  auto f = r.AddCounter({.name = "x_total", .help = "h", .label_names = {"type"}});
  const char* types[] = {"a", "b", "c"};
  const int kThreads = 4;
  const int kIters = 60000 / kScale;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      Counter mine = *f->Bind({types[t % 3]});
      for (int i = 0; i < kIters; ++i) {
        if (i % 2 == 0) {
          mine.Inc();
        } else {
          f->WithLabelValues(types[t % 3]).Inc();
        }
        if (i % 1000 == 0) f->WithLabelValues("c").Add(0.5);
      }
    });
  }
  for (auto& t : ts) t.join();
  Snapshot s = r.Collect();
  EXPECT_EQ(Total(s, "x_total", {"a"}), 2.0 * kIters);
  EXPECT_EQ(Total(s, "x_total", {"b"}), 1.0 * kIters);
  EXPECT_EQ(Total(s, "x_total", {"c"}), 1.0 * kIters + kThreads * (kIters / 1000) * 0.5);
}

TEST(CounterConcurrencyTest, ScraperNeverSeesACounterGoDown) {
  Registry r;
  auto f = r.AddCounter({.name = "x_total", .help = "h", .label_names = {"k"}});
  const std::vector<std::string> keys = {"k0", "k1", "k2", "k3"};
  std::atomic<bool> stop{false};
  std::atomic<long> violations{0};
  std::atomic<long> scrapes{0};
  std::thread scraper([&] {
    std::vector<double> last(keys.size(), 0);
    while (!stop.load()) {
      Snapshot s = r.Collect();
      for (size_t i = 0; i < keys.size(); ++i) {
        double v = Total(s, "x_total", {keys[i]});
        if (v < 0) continue;  // not created yet
        if (v < last[i]) violations.fetch_add(1);
        last[i] = v;
      }
      scrapes.fetch_add(1);
    }
  });
  // Writers come and go (short-lived threads adopting parked shards) while the scraper runs.
  const int kRounds = 200 / kScale;
  const int kPerThread = 2000;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<std::thread> ts;
    for (int t = 0; t < 3; ++t) {
      ts.emplace_back([&, t] {
        Counter c = *f->Bind({keys[t]});
        for (int i = 0; i < kPerThread; ++i) {
          c.Inc();
          f->WithLabelValues(keys[3]).Add(0.25);
        }
      });
    }
    for (auto& t : ts) t.join();
  }
  stop.store(true);
  scraper.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_GT(scrapes.load(), 0);
  Snapshot s = r.Collect();
  for (int k = 0; k < 3; ++k)
    EXPECT_EQ(Total(s, "x_total", {keys[k]}), double{kRounds} * kPerThread);
  EXPECT_EQ(Total(s, "x_total", {keys[3]}), 3.0 * kRounds * kPerThread * 0.25);
}

TEST(CounterConcurrencyTest, RemovalWhileWritersRunNeverCorruptsOtherSeries) {
  Registry r;
  auto f = r.AddCounter({.name = "x_total", .help = "h", .label_names = {"k"}});
  std::atomic<bool> stop{false};
  // Churn: a thread removes and recreates series "churn-N" while others write to them and to a
  // stable series.
  std::thread churn([&] {
    for (int i = 0; !stop.load(); ++i) {
      std::string key = "churn-" + std::to_string(i % 8);
      f->WithLabelValues(key).Inc();
      (void)f->Remove({key});
      r.Collect();
    }
  });
  const int kIters = 40000 / kScale;
  std::vector<std::thread> ts;
  for (int t = 0; t < 2; ++t) {
    ts.emplace_back([&, t] {
      Counter stable = *f->Bind({"stable"});
      for (int i = 0; i < kIters; ++i) {
        stable.Inc();
        f->WithLabelValues("churn-" + std::to_string((i + t) % 8)).Inc();
      }
    });
  }
  for (auto& t : ts) t.join();
  stop.store(true);
  churn.join();
  // Every write to a churned series went either to a live one or to a detached one; none leaked
  // into "stable".
  EXPECT_EQ(Total(r.Collect(), "x_total", {"stable"}), 2.0 * kIters);
}

}  // namespace
}  // namespace metrics
