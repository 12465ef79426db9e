// The event store: what its instrumentation costs per stored event, and durable throughput.
//
// BM_Store_Append_NoMetrics and BM_Store_Append_Metrics run the same loop against an in-memory
// store (StoreOptions::registry null vs. a registry): single-event appends of a 100-byte payload,
// rotating over four streams and four event types, kAny, from one thread. The difference of the two
// per-iteration times, from one run, is the metrics overhead per stored event (budget: <= 25 ns;
// see store/README.md for what that covers). Each iteration is a full round trip through the
// writer thread (~2.5-3 us on the 2-vCPU dev VM), so both figures are dominated by that hand-off
// and two identical runs differ by up to ~300 ns there: compare them, not their size, and read
// BM_Store_Append_InstrumentationOnly for the overhead itself.
//
// BM_Store_Append_Durable appends to a store in a scratch directory with FsyncPolicy::kEveryBatch
// from 1 and 2 threads (each thread its own stream): items_per_second is acknowledged, fsynced
// events per second; with 2 threads group commit puts both threads' events into one fsync.
#include <malloc.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "engine/registry.h"
#include "store/event_store.h"
#include "store/internal/store_metrics.h"

namespace {

using metrics::store::EventStore;
using metrics::store::ExpectedVersion;
using metrics::store::FsyncPolicy;
using metrics::store::NewEvent;
using metrics::store::StoreOptions;
using metrics::store::internal::StoreMetrics;

constexpr const char* kStreams[] = {"team-red", "team-blue", "team-green", "team-gold"};
constexpr const char* kTypes[] = {"team.registered", "status.updated", "score.changed",
                                  "match.started"};

void AppendLoop(benchmark::State& state, EventStore& store, const char* const* streams,
                size_t num_streams) {
  const std::string payload(100, 'x');
  size_t i = 0;
  for (auto _ : state) {
    std::vector<NewEvent> events;
    events.push_back({kTypes[i & 3], payload});
    auto r = store.Append(streams[i % num_streams], ExpectedVersion::kAny, std::move(events));
    if (!r.ok()) {
      state.SkipWithError(std::string(r.status().message()).c_str());
      break;
    }
    ++i;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

// Run once, untimed, before the in-memory and instrumentation benchmarks, so that neither of the
// A/B pair starts in a state the other does not:
// * The in-memory store keeps every event, so a run grows the heap, and page faults are expensive
//   on a paravirtualized VM. Left alone, whichever run found the heap already grown was faster: a
//   bias of several hundred ns per append by benchmark order. So the heap is grown beforehand by a
//   throwaway store holding more events than either run appends (batched appends: ~0.2 s), and
//   glibc is told not to give that memory back (M_TRIM_THRESHOLD only: heap-in-use figures of the
//   memory benchmarks are unaffected).
// * absl's clock (event timestamps, the processing histogram) calibrates itself for ~0.5 s after
//   its first read in a process, at ~57 ns per read instead of ~11.6 ns: wait that out.
void WarmUpOnce() {
  static const bool done = [] {
    const auto start = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(StoreMetrics::Now());
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    auto store = EventStore::Open({});
    if (!store.ok()) return false;
    const std::string payload(100, 'x');
    for (int b = 0; b < 400; ++b) {
      std::vector<NewEvent> events;
      for (int i = 0; i < 1000; ++i) events.push_back({kTypes[i & 3], payload});
      (void)(*store)->Append(kStreams[b & 3], ExpectedVersion::kAny, std::move(events));
    }
    store->reset();
    while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(700)) {
      benchmark::DoNotOptimize(StoreMetrics::Now());
    }
    return true;
  }();
  (void)done;
}

void RunInMemory(benchmark::State& state, metrics::Registry* registry) {
  WarmUpOnce();
  auto store = EventStore::Open({.registry = registry});
  if (!store.ok()) {
    state.SkipWithError("open failed");
    return;
  }
  AppendLoop(state, **store, kStreams, 4);
}

void BM_Store_Append_NoMetrics(benchmark::State& state) { RunInMemory(state, nullptr); }
BENCHMARK(BM_Store_Append_NoMetrics)->MinTime(0.3);

void BM_Store_Append_Metrics(benchmark::State& state) {
  metrics::Registry registry;
  RunInMemory(state, &registry);
}
BENCHMARK(BM_Store_Append_Metrics)->MinTime(0.3);

// The instrumentation alone: exactly the calls the writer makes (store/internal/store_metrics.h)
// for a batch of kBatch single-event requests, per event: CountEvent (per-type counter,
// the type rotating over four), then per batch BatchStored (payload bytes, size gauge) and one
// clock read, and per request Released (histogram). <1> is the worst case, a lone appender whose
// every batch holds one event; <8> is what concurrent appenders share under group commit. This is
// the store's metrics cost per stored event without the thread hand-off's noise;
// BM_Store_Append_Metrics minus BM_Store_Append_NoMetrics measures the same cost end to end.
// The _EveryBatch variants leave out the clock read: under FsyncPolicy::kEveryBatch the writer
// reads the clock after each fsync anyway (to size its group-commit window) and the histogram
// takes that read, so it is not the metrics' overhead there.
template <int kBatch, bool kOwnClockRead>
void InstrumentationLoop(benchmark::State& state) {
  WarmUpOnce();
  metrics::Registry registry;
  auto m = StoreMetrics::Create(registry, 1000);
  if (!m.ok()) {
    state.SkipWithError("metrics registration failed");
    return;
  }
  StoreMetrics& sm = **m;
  // Sized views, as the writer has (NewEvent::type is a std::string): no strlen in the loop.
  const std::string_view types[] = {kTypes[0], kTypes[1], kTypes[2], kTypes[3]};
  int64_t accept[kBatch];
  uint64_t size = 0;
  size_t i = 0;
  int64_t now = StoreMetrics::Now();
  for (auto _ : state) {
    for (int r = 0; r < kBatch; ++r) {
      accept[r] = now - 3000 - r;  // the callers' clock reads (event timestamps): not overhead
      sm.CountEvent(types[i++ & 3]);
    }
    sm.BatchStored(100 * kBatch, size += 143 * kBatch);
    if constexpr (kOwnClockRead) {
      now = StoreMetrics::Now();
    } else {
      now += 1000 + static_cast<int64_t>(i & 1023);  // the writer's post-fsync read stands in
      benchmark::DoNotOptimize(now);
    }
    for (int r = 0; r < kBatch; ++r) sm.Released(now, accept[r], i);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * kBatch);
  state.counters["ns_per_event"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * kBatch,
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
template <int kBatch>
void BM_Store_Append_InstrumentationOnly(benchmark::State& state) {
  InstrumentationLoop<kBatch, true>(state);
}
template <int kBatch>
void BM_Store_Append_InstrumentationOnly_EveryBatch(benchmark::State& state) {
  InstrumentationLoop<kBatch, false>(state);
}
BENCHMARK_TEMPLATE(BM_Store_Append_InstrumentationOnly, 1);
BENCHMARK_TEMPLATE(BM_Store_Append_InstrumentationOnly, 8);
BENCHMARK_TEMPLATE(BM_Store_Append_InstrumentationOnly_EveryBatch, 1);
BENCHMARK_TEMPLATE(BM_Store_Append_InstrumentationOnly_EveryBatch, 8);

// Shared by the threads of one run: opened by thread 0 before the loop, closed after it (the
// benchmark loop starts and ends with a barrier across its threads).
struct DurableFixture {
  std::string dir;
  std::unique_ptr<EventStore> store;
};
DurableFixture* durable = nullptr;

void BM_Store_Append_Durable(benchmark::State& state) {
  if (state.thread_index() == 0) {
    durable = new DurableFixture;
    std::string tmpl = (std::filesystem::temp_directory_path() / "store_bench_XXXXXX").string();
    if (::mkdtemp(tmpl.data()) != nullptr) {
      durable->dir = tmpl;
      auto s = EventStore::Open({.data_dir = durable->dir, .fsync = FsyncPolicy::kEveryBatch});
      if (s.ok()) durable->store = *std::move(s);
    }
  }
  const std::string stream = absl::StrCat("team-", state.thread_index());
  // The loop's start barrier orders thread 0's set-up before every thread's first iteration.
  bool first = true;
  const std::string payload(100, 'x');
  int64_t n = 0;
  for (auto _ : state) {
    if (first) {
      first = false;
      if (durable->store == nullptr) {
        state.SkipWithError("cannot open a store in a scratch directory");
        break;
      }
    }
    std::vector<NewEvent> events;
    events.push_back({kTypes[n & 3], payload});
    auto r = durable->store->Append(stream, ExpectedVersion::kAny, std::move(events));
    if (!r.ok()) {
      state.SkipWithError(std::string(r.status().message()).c_str());
      break;
    }
    ++n;
  }
  state.SetItemsProcessed(n);
  if (state.thread_index() == 0) {
    if (durable->store != nullptr) {
      durable->store.reset();  // closes
      std::error_code ec;
      std::filesystem::remove_all(durable->dir, ec);
    }
    delete durable;
    durable = nullptr;
  }
}
BENCHMARK(BM_Store_Append_Durable)->Threads(1)->Threads(2)->UseRealTime()->MinTime(0.3);

}  // namespace
