// Runs one hot-path operation N times, for instruction counting under valgrind --tool=callgrind:
// the difference between two runs with different N, divided by the difference in N, is the exact
// instruction cost of one op.
//
//   metrics_callgrind_driver counter_inc|histogram_observe|histogram_observe_classic|
//                            histogram_observe_exemplar|with_label_values_inc|store_event N
//
// histogram_observe_classic is Observe on a classic-only layout (HistogramConfig::native = false,
// default buckets), the same values as histogram_observe.
//
// store_event is the event store's instrumentation per stored event in its worst case, a lone
// appender (one single-event request per batch): the writer's CountEvent (four alternating types),
// BatchStored and Released calls. The batch's one clock read is left out (a fixed ~12 ns vDSO/TSC
// read whose path under valgrind depends on wall time, so its count is not deterministic).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/registry.h"
#ifdef METRICS_HAVE_STORE
#include "store/internal/store_metrics.h"
#endif

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr,
                 "usage: %s counter_inc|histogram_observe|histogram_observe_classic|"
                 "histogram_observe_exemplar|with_label_values_inc|store_event N\n",
                 argv[0]);
    return 2;
  }
  const std::string op = argv[1];
  const long n = std::atol(argv[2]);
  metrics::Registry reg;
  auto counters = *reg.AddCounter({.name = "c_total", .help = "h", .label_names = {"event_type"}});
  auto hist = *reg.AddHistogram({.name = "h_seconds", .help = "h"});
  metrics::Counter c = *counters.Bind({"team.registered"});
  metrics::Histogram h = *hist.Bind({});
  // Log-uniform values 100 ns .. 10 s, made before the measured loop (the same in every run).
  std::vector<double> values(4096);
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = 100e-9 * std::pow(1e8, double((i * 2654435761u) % 4096) / 4096);
  const std::string type = "status.updated";
  c.Inc();
  h.Observe(1);
  counters.WithLabelValues(type)
      .Inc();  // first touches (shard lease, cache fill) happen outside the loop

  if (op == "counter_inc") {
    for (long i = 0; i < n; ++i) c.Inc();
  } else if (op == "histogram_observe") {
    for (long i = 0; i < n; ++i) h.Observe(values[i & 4095]);
  } else if (op == "histogram_observe_classic") {
    // Made here, not above: an extra live handle changes how the other ops' loops compile.
    metrics::HistogramConfig classic_config;
    classic_config.native = false;
    auto classic = *reg.AddHistogram({.name = "hc_seconds", .help = "h"}, classic_config);
    metrics::Histogram hc = *classic.Bind({});
    hc.Observe(1);
    for (long i = 0; i < n; ++i) hc.Observe(values[i & 4095]);
  } else if (op == "histogram_observe_exemplar") {
    // The exemplar path on its own (allocation, label copy, clock read, slot swap): what the
    // sampled observations pay, never a plain Observe.
    for (long i = 0; i < n; ++i) {
      (void)h.ObserveWithExemplar(values[i & 4095], {{"trace_id", "4bf92f3577b34da6"}});
    }
  } else if (op == "with_label_values_inc") {
    for (long i = 0; i < n; ++i) counters.WithLabelValues(type).Inc();
#ifdef METRICS_HAVE_STORE
  } else if (op == "store_event") {
    using metrics::store::internal::StoreMetrics;
    auto sm = StoreMetrics::Create(reg, 1000);
    if (!sm.ok()) return 1;
    const std::string_view types[] = {"team.registered", "status.updated", "score.changed",
                                      "match.started"};
    for (const auto& t : types) (*sm)->CountEvent(t);  // bind the handles outside the loop
    int64_t now = 1'700'000'000'000'000'000;
    uint64_t size = 0;
    for (long i = 0; i < n; ++i) {
      const int64_t accept = now;  // the caller's timestamp read: not instrumentation
      (*sm)->CountEvent(types[i & 3]);
      (*sm)->BatchStored(100, size += 143);
      now += 1000 + (i & 0xFFFF) * 37;  // a spread of durations: 1 us .. 2.4 ms
      (*sm)->Released(now, accept, static_cast<uint64_t>(i) + 1);
    }
#endif
  } else {
    std::fprintf(stderr, "unknown op %s\n", op.c_str());
    return 2;
  }
  return 0;
}
