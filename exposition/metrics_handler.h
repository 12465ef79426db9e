// The transport-independent half of a /metrics endpoint: collect one or more registries, add
// process metrics, render in the negotiated format, gzip when allowed, and count its own scrapes.
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "engine/registry.h"
#include "exposition/text_format.h"

namespace metrics::exposition {

struct ScrapeResult {
  std::string_view body;          // valid until the next Scrape on the same handler
  std::string_view content_type;  // versioned, e.g. "text/plain; version=0.0.4; charset=utf-8"
  bool gzipped = false;           // answer with Content-Encoding: gzip
};

// Thread-safe. Scrapes are serialized (one at a time) and reuse the handler's buffers; writers are
// never blocked (Registry::Collect only reads their cells).
//
// Its own metrics, exposed with the rest: metrics_scrapes_total{format} and
// metrics_scrape_duration_seconds (collect + render + compress); and, always (0 included),
// the engine's metrics_shard_allocation_failures_total (engine/registry.h).
class MetricsHandler {
 public:
  struct Options {
    // Expose process_* metrics (exposition/process_metrics.h's ProcessCollector, on a registry of
    // the handler's own, merged after the given registries).
    bool process_metrics = true;
  };
  // The registries must outlive the handler.
  explicit MetricsHandler(std::vector<const Registry*> registries);
  MetricsHandler(std::vector<const Registry*> registries, Options options);

  // Holds the handler's lock until the caller is done with the body: call `use` with the result.
  template <typename F>
  void Scrape(std::string_view accept, std::string_view accept_encoding, F&& use) {
    std::lock_guard<std::mutex> lock(mu_);
    use(ScrapeLocked(accept, accept_encoding));
  }

  // The merged snapshot a scrape renders (for tests and the text-file writer).
  Snapshot Collect() const;

 private:
  ScrapeResult ScrapeLocked(std::string_view accept, std::string_view accept_encoding);

  std::vector<const Registry*> registries_;
  Options options_;
  Registry self_;
  Registry process_;  // holds the ProcessCollector when options_.process_metrics
  CounterFamily scrapes_;
  Histogram duration_;
  std::mutex mu_;
  std::string text_, gzipped_;
};

// Writes the snapshot in text format 0.0.4 to `path` atomically, for node_exporter's textfile
// collector: a temporary file in the same directory, fsync, then rename over `path`.
absl::Status WriteTextFile(const Snapshot& snapshot, const std::string& path);

}  // namespace metrics::exposition
