// Feeds the server's projections from a backend without a projector thread of its own
// (PostgreSQL): polls ReadAll from the last position applied, applies every event to every
// projection in position order. The embedded store keeps its projector (EventStore::AddProjection,
// with retries and projection_* metrics); this is the plain version for --pg-url: no retries (a
// failed event is skipped for that projection and logged, the first 10 a line each, then counted
// in a summary line on Stop), lag up to one poll interval, or woken at once with SetWait. With a
// registry it keeps the same projection_updates_total, projection_errors_total and
// projection_lag_seconds series.
//
// Threads: Start() runs one polling thread; Stop() joins it. Projections are applied on that
// thread only, so they need no more thread safety than their readers ask for.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
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

  // Instead of sleeping between polls: `wait(after_position, timeout)` returns when events past
  // after_position may have been committed (PostgresEventStore::WaitForEvents). Before Start().
  using WaitFn = std::function<bool(uint64_t, std::chrono::milliseconds)>;
  void SetWait(WaitFn wait) { wait_ = std::move(wait); }

  void Start();
  // Idempotent.
  void Stop();
  // Every position <= this has been applied (or skipped).
  uint64_t applied_through() const { return applied_.load(std::memory_order_acquire); }

 private:
  void Loop();
  void Idle();  // between polls, when caught up

  metrics::store::EventBackend& store_;
  const std::vector<Projection> projections_;
  const std::chrono::milliseconds interval_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> applied_{0};
  uint64_t errors_ = 0;                                              // poller thread, then Stop()
  std::unique_ptr<metrics::store::internal::StoreMetrics> metrics_;  // null: no registry
  std::vector<metrics::store::internal::StoreMetrics::ProjectionHandles> handles_;  // [projection]
  WaitFn wait_;  // empty: sleep interval_
  std::thread thread_;
};

}  // namespace eventstore
