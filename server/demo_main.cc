// The main job until the event store exists: registers metrics, runs a multi-threaded synthetic
// workload on them and prints the Prometheus text exposition.
//
//   metrics-demo [--threads N] [--events N]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "engine/registry.h"
#include "exposition/text_format.h"

int main(int argc, char** argv) {
  int threads = 4;
  long events = 1'000'000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--threads") == 0) {
      threads = std::atoi(argv[i + 1]);
    } else if (std::strcmp(argv[i], "--events") == 0) {
      events = std::atol(argv[i + 1]);
    } else {
      std::fprintf(stderr, "usage: %s [--threads N] [--events N]\n", argv[0]);
      return 2;
    }
  }
  if (threads < 1 || events < 0) {
    std::fprintf(stderr, "--threads must be >= 1 and --events >= 0\n");
    return 2;
  }

  metrics::Registry registry;
  auto stored = registry.AddCounter({.name = "events_stored_total",
                                     .help = "Events stored, by event type.",
                                     .label_names = {"event_type"}});
  auto bytes =
      registry.AddCounter({.name = "events_stored_bytes_total", .help = "Payload bytes stored."});
  auto workers = registry.AddGauge({.name = "demo_workers", .help = "Worker threads running."});
  if (!stored.ok() || !bytes.ok() || !workers.ok()) {
    std::fprintf(stderr, "registration failed\n");
    return 1;
  }
  metrics::Counter bytes_total = *bytes->Bind({});
  metrics::Gauge running = *workers->Bind({});

  const char* types[] = {"team.registered", "status.updated", "member.joined", "member.left"};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      running.Inc();
      // Bound handles for the hot loop; WithLabelValues would do the same through the thread's
      // cache.
      std::vector<metrics::Counter> by_type;
      for (const char* type : types) by_type.push_back(*stored->Bind({type}));
      for (long i = t; i < events; i += threads) {
        size_t k = static_cast<size_t>(i * 2654435761u) % 4;
        by_type[k].Inc();
        bytes_total.Inc(64 + static_cast<uint64_t>(i % 64));
      }
      running.Dec();
    });
  }
  for (std::thread& th : pool) th.join();

  std::string text;
  metrics::exposition::WriteText(registry.Collect(), &text);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}
