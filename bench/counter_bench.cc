// Counter increments side by side: plain baselines, our handles, and prometheus-cpp, in one binary
// so every figure can be quoted as a ratio from the same run. Shared objects are function statics;
// ->Threads(2) runs the same loop on two threads at once.
#include <malloc.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "engine/registry.h"

#ifdef METRICS_HAVE_PROMETHEUS_CPP
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/registry.h"
#endif

namespace {

// The floor: a plain add to a thread_local, kept in memory so the compiler can't fold the loop.
thread_local uint64_t tls_counter = 0;
void BM_Baseline_ThreadLocalAdd(benchmark::State& state) {
  for (auto _ : state) {
    tls_counter = tls_counter + 1;
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(tls_counter);
}
BENCHMARK(BM_Baseline_ThreadLocalAdd)->Threads(1)->Threads(2)->UseRealTime();

// What a naive shared counter costs: one relaxed fetch_add on a line both threads write.
std::atomic<uint64_t> shared_counter{0};
void BM_Baseline_SharedFetchAdd(benchmark::State& state) {
  for (auto _ : state) {
    shared_counter.fetch_add(1, std::memory_order_relaxed);
  }
}
BENCHMARK(BM_Baseline_SharedFetchAdd)->Threads(1)->Threads(2)->UseRealTime();

metrics::Registry& Reg() {
  static metrics::Registry* r = new metrics::Registry();
  return *r;
}

metrics::CounterFamily& EventsFamily() {
  static metrics::CounterFamily* f = new metrics::CounterFamily(*Reg().AddCounter(
      {.name = "events_stored_total", .help = "Events stored.", .label_names = {"event_type"}}));
  return *f;
}

void BM_Counter_Inc(benchmark::State& state) {
  static metrics::Counter* shared = new metrics::Counter(*EventsFamily().Bind({"team.registered"}));
  metrics::Counter& c = *shared;  // one handle shared by every benchmark thread
  for (auto _ : state) {
    c.Inc();
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_Counter_Inc)->Threads(1)->Threads(2)->UseRealTime();

void BM_Counter_WithLabelValues_Inc(benchmark::State& state) {
  metrics::CounterFamily& f = EventsFamily();
  const std::string type = "status.updated";
  for (auto _ : state) {
    f.WithLabelValues(type).Inc();
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_Counter_WithLabelValues_Inc)->Threads(1)->Threads(2)->UseRealTime();

#ifdef METRICS_HAVE_PROMETHEUS_CPP
prometheus::Family<prometheus::Counter>& PromFamily() {
  static auto* registry = new prometheus::Registry();
  static auto* family = &prometheus::BuildCounter()
                             .Name("events_stored_total")
                             .Help("Events stored.")
                             .Register(*registry);
  return *family;
}

void BM_PromCpp_Counter_Increment(benchmark::State& state) {
  static prometheus::Counter* shared = &PromFamily().Add({{"event_type", "team.registered"}});
  for (auto _ : state) {
    shared->Increment();
  }
}
BENCHMARK(BM_PromCpp_Counter_Increment)->Threads(1)->Threads(2)->UseRealTime();

void BM_PromCpp_Family_Add_Increment(benchmark::State& state) {
  auto& f = PromFamily();
  const std::string type = "status.updated";
  for (auto _ : state) {
    f.Add({{"event_type", type}}).Increment();
  }
}
BENCHMARK(BM_PromCpp_Family_Add_Increment)->Threads(1)->Threads(2)->UseRealTime();
#endif

}  // namespace

namespace {

// The lookup path when a thread rotates through several label sets (no memo hits: hash + probe
// every time).
void BM_Counter_WithLabelValues_Rotating8_Inc(benchmark::State& state) {
  metrics::CounterFamily& f = EventsFamily();
  const std::string types[8] = {"team.registered", "status.updated", "member.joined",
                                "member.left",     "team.renamed",   "team.archived",
                                "score.posted",    "match.played"};
  size_t i = 0;
  for (auto _ : state) {
    f.WithLabelValues(types[i++ & 7]).Inc();
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_Counter_WithLabelValues_Rotating8_Inc)->Threads(1)->Threads(2)->UseRealTime();

size_t HeapInUse() { return mallinfo2().uordblks; }

// Heap bytes per counter series, fixed part: what registering one more labelled series costs, with
// label values of realistic length ("tenant-000123"). The per-thread part is Counter::kCells * 8
// bytes in each shard that writes the series, committed a page at a time (engine/internal/cells.h).
void BM_Memory_CounterSeries(benchmark::State& state) {
  const int n = 10000;
  for (auto _ : state) {
    metrics::Registry r;
    auto f = *r.AddCounter(
        {.name = "mem_total", .help = "h", .label_names = {"tenant"}, .max_series = n});
    std::vector<metrics::Counter> handles;
    handles.reserve(n);
    char buf[32];
    size_t before = HeapInUse();
    for (int i = 0; i < n; ++i) {
      std::snprintf(buf, sizeof(buf), "tenant-%06d", i);
      handles.push_back(*f.Bind({buf}));
      handles.back().Inc();
    }
    r.Collect();  // builds the sorted series list a scrape keeps
    state.counters["bytes_per_series"] = double(HeapInUse() - before) / n;
  }
  state.counters["shard_bytes_per_series_per_thread"] = metrics::Counter::kCells * sizeof(uint64_t);
}
BENCHMARK(BM_Memory_CounterSeries)->Iterations(1);

#ifdef METRICS_HAVE_PROMETHEUS_CPP
void BM_Memory_PromCpp_CounterSeries(benchmark::State& state) {
  const int n = 10000;
  for (auto _ : state) {
    prometheus::Registry r;
    auto& f = prometheus::BuildCounter().Name("mem_total").Help("h").Register(r);
    char buf[32];
    size_t before = HeapInUse();
    for (int i = 0; i < n; ++i) {
      std::snprintf(buf, sizeof(buf), "tenant-%06d", i);
      f.Add({{"tenant", buf}}).Increment();
    }
    r.Collect();
    state.counters["bytes_per_series"] = double(HeapInUse() - before) / n;
  }
}
BENCHMARK(BM_Memory_PromCpp_CounterSeries)->Iterations(1);
#endif

}  // namespace
