// Resident memory of histogram series, ours beside prometheus-cpp, and of a process holding a
// million counter series and 100,000 classic-only histogram series. Prints one key=value line per
// case. A benchmark (RSS from /proc/self/statm), not a timed test:
//
//   build/bench/memory_bench [series=10000]
//
// Each case runs in its own forked child, so that no case inherits pages another one committed
// (shards are never unmapped, and a freed series' cells are zeroed, not returned to the kernel).
//
// Per histogram case: `series` series with the default buckets (.005 .. 10) are registered (heap:
// label values, series bookkeeping), then one new thread observes the same 16 log-uniform values
// (100 ns .. 10 s) into every series. heap_bytes_per_series is the RSS growth while registering,
// shard_bytes_per_series_per_thread the RSS growth while that thread observes (the pages of its
// shard it commits: what every further writing thread costs again), reserved_bytes_per_series the
// address space a series spans in each shard. prometheus-cpp keeps one shared object per series:
// its whole cost is heap, whatever the number of threads.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "engine/internal/cells.h"
#include "engine/registry.h"

#ifdef METRICS_HAVE_PROMETHEUS_CPP
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#endif

namespace {

long RssBytes() {
  long pages_total = 0, pages_rss = 0;
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  if (std::fscanf(f, "%ld %ld", &pages_total, &pages_rss) != 2) pages_rss = 0;
  std::fclose(f);
  return pages_rss * sysconf(_SC_PAGESIZE);
}

// 16 log-uniform values, 100 ns .. 10 s.
std::vector<double> Values() {
  std::vector<double> v(16);
  for (size_t i = 0; i < v.size(); ++i) v[i] = 100e-9 * std::pow(1e8, (i + 0.5) / v.size());
  return v;
}

std::string Label(int i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "tenant-%07d", i);
  return buf;
}

void OursHistogram(const char* name, bool native, int n) {
  metrics::Registry r;
  metrics::HistogramConfig config;
  config.native = native;
  auto f = *r.AddHistogram(
      {.name = "mem_seconds", .help = "h", .label_names = {"tenant"}, .max_series = size_t(n)},
      config);
  std::vector<metrics::Histogram> handles;
  handles.reserve(n);
  const long before_heap = RssBytes();
  for (int i = 0; i < n; ++i) handles.push_back(*f.Bind({Label(i)}));
  const long heap = RssBytes() - before_heap;
  long shard = 0;
  std::thread t([&] {
    metrics::internal::ThreadCells();  // lease this thread's shard before measuring
    const std::vector<double> values = Values();
    const long before = RssBytes();
    for (metrics::Histogram& h : handles) {
      for (double v : values) h.Observe(v);
    }
    shard = RssBytes() - before;
  });
  t.join();
  const double reserved = double(f.desc().histogram->num_cells()) * sizeof(uint64_t);
  std::printf(
      "case=%s series=%d cells_per_series=%u reserved_bytes_per_series=%.0f "
      "heap_bytes_per_series=%.0f shard_bytes_per_series_per_thread=%.0f "
      "total_bytes_per_series_one_thread=%.0f table_bytes_per_family=%zu\n",
      name, n, f.desc().histogram->num_cells(), reserved, double(heap) / n, double(shard) / n,
      double(heap + shard) / n, f.desc().histogram->table_bytes());
}

#ifdef METRICS_HAVE_PROMETHEUS_CPP
void PromHistogram(int n) {
  prometheus::Registry r;
  auto& f = prometheus::BuildHistogram().Name("mem_seconds").Help("h").Register(r);
  std::vector<prometheus::Histogram*> handles;
  handles.reserve(n);
  const long before_heap = RssBytes();
  for (int i = 0; i < n; ++i) {
    handles.push_back(&f.Add(
        {{"tenant", Label(i)}},
        prometheus::Histogram::BucketBoundaries{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}));
  }
  const long heap = RssBytes() - before_heap;
  long observed = 0;
  std::thread t([&] {
    const std::vector<double> values = Values();
    const long before = RssBytes();
    for (prometheus::Histogram* h : handles) {
      for (double v : values) h->Observe(v);
    }
    observed = RssBytes() - before;
  });
  t.join();
  std::printf(
      "case=prometheus_cpp_histogram series=%d heap_bytes_per_series=%.0f "
      "observe_bytes_per_series_per_thread=%.0f total_bytes_per_series_one_thread=%.0f\n",
      n, double(heap) / n, double(observed) / n, double(heap + observed) / n);
}
#endif

// 1,000,000 counter series and 100,000 classic-only histogram series, each written once from one
// thread; handles are dropped after the write (the series stay in their families).
void BigProcess() {
  constexpr int kCounters = 1'000'000, kHistograms = 100'000;
  const long start = RssBytes();
  const auto t0 = std::chrono::steady_clock::now();
  metrics::Registry r;
  auto counters = *r.AddCounter(
      {.name = "big_total", .help = "h", .label_names = {"k"}, .max_series = kCounters});
  metrics::HistogramConfig classic;
  classic.native = false;
  auto histograms = *r.AddHistogram(
      {.name = "big_seconds", .help = "h", .label_names = {"k"}, .max_series = kHistograms},
      classic);
  const std::vector<double> values = Values();
  int failures = 0;
  for (int i = 0; i < kCounters; ++i) {
    auto c = counters.Bind({Label(i)});
    if (!c.ok()) {
      ++failures;
      continue;
    }
    c->Inc();
  }
  for (int i = 0; i < kHistograms; ++i) {
    auto h = histograms.Bind({Label(i)});
    if (!h.ok()) {
      ++failures;
      continue;
    }
    h->Observe(values[i % values.size()]);
  }
  const long held = RssBytes() - start;
  const double build_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto t1 = std::chrono::steady_clock::now();
  metrics::Snapshot snap = r.Collect();
  const double collect_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count();
  size_t samples = 0;
  for (const auto& fam : snap.families) samples += fam.samples.size();
  std::printf(
      "case=process_1M_counters_100k_classic_histograms counters=%d histograms=%d failures=%d "
      "rss_bytes=%ld rss_bytes_per_series=%.0f cells_in_use=%llu build_s=%.2f collect_ms=%.0f "
      "collected_series=%zu rss_after_collect_bytes=%ld\n",
      kCounters, kHistograms, failures, held, double(held) / (kCounters + kHistograms),
      static_cast<unsigned long long>(metrics::internal::CellAllocator::CellsInUse()), build_s,
      collect_ms, samples, RssBytes() - start);
}

// Runs fn in a forked child (a fresh address space for each case).
template <typename Fn>
int InChild(Fn fn) {
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid < 0) return 1;
  if (pid == 0) {
    fn();
    std::fflush(stdout);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 10'000;
  if (n <= 0) {
    std::fprintf(stderr, "usage: %s [series=10000]\n", argv[0]);
    return 2;
  }
  int failed = 0;
  failed |= InChild([&] { OursHistogram("ours_classic_only", false, n); });
  failed |= InChild([&] { OursHistogram("ours_default", true, n); });
#ifdef METRICS_HAVE_PROMETHEUS_CPP
  failed |= InChild([&] { PromHistogram(n); });
#else
  std::printf("case=prometheus_cpp_histogram skipped=not_built_with_prometheus_cpp\n");
#endif
  failed |= InChild([] { BigProcess(); });
  return failed;
}
