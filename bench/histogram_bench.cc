// Histogram observations side by side with prometheus-cpp, on log-uniform values from 100 ns to 10
// s (the shape of request latencies). Values come from a precomputed ring so the generator is not
// measured.
#include <cmath>
#include <random>
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
