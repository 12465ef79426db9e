// Feeds the server's projections from a backend without a projector thread of its own
// (PostgreSQL): polls ReadAll from the last position applied, applies every event to every
// projection in position order. The embedded store keeps its projector (EventStore::AddProjection,
// with retries and projection_* metrics); this is the plain version for --pg-url: no retries (a
// failed event is skipped for that projection and logged, the first 10 a line each, then counted
// in a summary line on Stop), no metrics, lag up to one poll interval.
//
// Threads: Start() runs one polling thread; Stop() joins it. Projections are applied on that
// thread only, so they need no more thread safety than their readers ask for.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "store/event_backend.h"
#include "store/event_store.h"

namespace eventstore {

class ProjectionPoller {
 public:
  using Projection = std::pair<std::string, metrics::store::ProjectionFn>;

  ProjectionPoller(metrics::store::EventBackend& store, std::vector<Projection> projections,
                   std::chrono::milliseconds interval = std::chrono::milliseconds(100))
      : store_(store), projections_(std::move(projections)), interval_(interval) {}
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
  uint64_t errors_ = 0;  // poller thread, then Stop()
  std::thread thread_;
};

}  // namespace eventstore
