// Histogram observations side by side with prometheus-cpp, on log-uniform values from 100 ns to 10
// s (the shape of request latencies). Values come from a precomputed ring so the generator is not
// measured.
#include <malloc.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "benchmark/benchmark.h"
#include "engine/registry.h"

#ifdef METRICS_HAVE_PROMETHEUS_CPP
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#endif

namespace {

constexpr size_t kRing = 4096;  // power of two

const std::vector<double>& LatencyValues() {
  static const std::vector<double>* v = [] {
    auto* out = new std::vector<double>(kRing);
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> u(std::log(100e-9), std::log(10.0));
    for (double& x : *out) x = std::exp(u(rng));
    return out;
  }();
  return *v;
}

void BM_Histogram_Observe(benchmark::State& state) {
  static metrics::Registry* reg = new metrics::Registry();
  static metrics::Histogram* shared = new metrics::Histogram(
      *reg->AddHistogram({.name = "event_processing_duration_seconds", .help = "Processing time."})
           ->Bind({}));
  metrics::Histogram& h = *shared;  // default classic buckets (.005 .. 10) + native schema 3
  const double* values = LatencyValues().data();
  size_t i = state.thread_index() * 97;
  for (auto _ : state) {
    h.Observe(values[i++ & (kRing - 1)]);
  }
}
BENCHMARK(BM_Histogram_Observe)->Threads(1)->Threads(2)->UseRealTime();

#ifdef METRICS_HAVE_PROMETHEUS_CPP
prometheus::Histogram& PromHistogram(int buckets) {
  static auto* registry = new prometheus::Registry();
  static auto* family = &prometheus::BuildHistogram()
                             .Name("event_processing_duration_seconds")
                             .Help("h")
                             .Register(*registry);
  if (buckets == 10) {
    static auto* h = &family->Add({{"b", "10"}}, prometheus::Histogram::BucketBoundaries{
                                                     .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5});
    return *h;
  }
  static auto* h = [] {
    prometheus::Histogram::BucketBoundaries b;
    for (int k = 0; k < 40; ++k)
      b.push_back(100e-9 * std::pow(10.0, k * 8.0 / 39));  // 100 ns .. 10 s
    return &family->Add({{"b", "40"}}, b);
  }();
  return *h;
}

void BM_PromCpp_Histogram_Observe(benchmark::State& state) {
  prometheus::Histogram& h = PromHistogram(static_cast<int>(state.range(0)));
  const double* values = LatencyValues().data();
  size_t i = state.thread_index() * 97;
  for (auto _ : state) {
    h.Observe(values[i++ & (kRing - 1)]);
  }
}
BENCHMARK(BM_PromCpp_Histogram_Observe)->Arg(10)->Arg(40)->Threads(1)->Threads(2)->UseRealTime();
#endif

}  // namespace

namespace {

long RssBytes() {
  long pages_total = 0, pages_rss = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  if (std::fscanf(f, "%ld %ld", &pages_total, &pages_rss) != 2) pages_rss = 0;
  std::fclose(f);
  return pages_rss * 4096;
}

// Memory per histogram series: the heap part (series bookkeeping), the address space a live
// thread's shard reserves for it, and what one thread actually commits when it observes log-uniform
// latencies (100 ns .. 10 s) into 1,000 series: only the pages of the buckets it hits.
void BM_Memory_HistogramSeries(benchmark::State& state) {
  const int n = 1000;
  for (auto _ : state) {
    metrics::Registry r;
    auto f = *r.AddHistogram({.name = "mem_seconds", .help = "h", .label_names = {"tenant"}});
    std::vector<metrics::Histogram> handles;
    handles.reserve(n);
    char buf[32];
    size_t heap_before = mallinfo2().uordblks;
    for (int i = 0; i < n; ++i) {
      std::snprintf(buf, sizeof(buf), "tenant-%06d", i);
      handles.push_back(*f.Bind({buf}));
    }
    state.counters["heap_bytes_per_series"] = double(mallinfo2().uordblks - heap_before) / n;
    long committed = 0;
    std::thread t([&] {
      handles[0].Observe(1.0);  // lease the shard first
      long before = RssBytes();
      const std::vector<double>& values = LatencyValues();
      for (int i = 0; i < n; ++i) {
        for (double v : values) handles[i].Observe(v);
      }
      committed = RssBytes() - before;
    });
    t.join();
    state.counters["committed_bytes_per_series_per_thread"] = double(committed) / n;
    state.counters["reserved_bytes_per_series_per_thread"] =
        double(f.desc().histogram->num_cells() * sizeof(uint64_t));
    state.counters["layout_table_bytes_per_family"] = double(f.desc().histogram->table_bytes());
  }
}
BENCHMARK(BM_Memory_HistogramSeries)->Iterations(1);

#ifdef METRICS_HAVE_PROMETHEUS_CPP
void BM_Memory_PromCpp_HistogramSeries(benchmark::State& state) {
  const int n = 1000;
  for (auto _ : state) {
    prometheus::Registry r;
    auto& f = prometheus::BuildHistogram().Name("mem_seconds").Help("h").Register(r);
    char buf[32];
    size_t before = mallinfo2().uordblks;
    for (int i = 0; i < n; ++i) {
      std::snprintf(buf, sizeof(buf), "tenant-%06d", i);
      f.Add({{"tenant", buf}}, prometheus::Histogram::BucketBoundaries{.005, .01, .025, .05, .1,
                                                                       .25, .5, 1, 2.5, 5, 10});
    }
    state.counters["heap_bytes_per_series"] = double(mallinfo2().uordblks - before) / n;
  }
}
BENCHMARK(BM_Memory_PromCpp_HistogramSeries)->Iterations(1);
#endif

}  // namespace
