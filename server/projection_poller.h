// Feeds the server's projections from a backend without a projector thread of its own
// (PostgreSQL): polls ReadAll from the last position applied, applies every event to every
// projection in position order. The embedded store keeps its projector (EventStore::AddProjection,
// with retries and projection_* metrics); this is the plain version for --pg-url: no retries (a
// failed event is skipped for that projection and logged, the first 10 a line each, then counted
// in a summary line on Stop), lag up to one poll interval. With a registry it keeps the same
// projection_updates_total, projection_errors_total and projection_lag_seconds series.
//
// Threads: Start() runs one polling thread; Stop() joins it. Projections are applied on that
// thread only, so they need no more thread safety than their readers ask for.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/registry.h"
#include "store/event_backend.h"
#include "store/event_store.h"
#include "store/internal/store_metrics.h"

namespace eventstore {

class ProjectionPoller {
 public:
  using Projection = std::pair<std::string, metrics::store::ProjectionFn>;

  // `registry` may be null (no metrics); else it must outlive the poller.
  ProjectionPoller(metrics::store::EventBackend& store, std::vector<Projection> projections,
                   metrics::Registry* registry = nullptr,
                   std::chrono::milliseconds interval = std::chrono::milliseconds(100));
  ~ProjectionPoller() { Stop(); }
  ProjectionPoller(const ProjectionPoller&) = delete;
  ProjectionPoller& operator=(const ProjectionPoller&) = delete;

  void Start();
  // Idempotent.
  void Stop();
  // Every position <= this has been applied (or skipped).
  uint64_t applied_through() const { return applied_.load(std::memory_order_acquire); }

 private:
  void Loop();

  metrics::store::EventBackend& store_;
  const std::vector<Projection> projections_;
  const std::chrono::milliseconds interval_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> applied_{0};
  uint64_t errors_ = 0;                                              // poller thread, then Stop()
  std::unique_ptr<metrics::store::internal::StoreMetrics> metrics_;  // null: no registry
  std::vector<metrics::store::internal::StoreMetrics::ProjectionHandles> handles_;  // [projection]
  std::thread thread_;
};

}  // namespace eventstore
