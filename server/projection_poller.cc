#include "server/projection_poller.h"

#include <cstdio>
#include <string>

namespace eventstore {

ProjectionPoller::ProjectionPoller(metrics::store::EventBackend& store,
                                   std::vector<Projection> projections, metrics::Registry* registry,
                                   std::chrono::milliseconds interval)
    : store_(store), projections_(std::move(projections)), interval_(interval) {
  if (registry == nullptr) return;
  // The embedded store's families, found again (identical definitions): the same series.
  auto m = metrics::store::internal::StoreMetrics::Create(*registry, /*max_event_types=*/1000);
  if (!m.ok()) {
    std::fprintf(stderr, "projections: no metrics: %s\n",
                 std::string(m.status().message()).c_str());
    return;
  }
  metrics_ = *std::move(m);
  for (const Projection& p : projections_) handles_.push_back(metrics_->BindProjection(p.first));
}

void ProjectionPoller::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void ProjectionPoller::Stop() {
  stop_.store(true);
  if (!thread_.joinable()) return;
  thread_.join();
  if (errors_ > 10) {
    std::fprintf(stderr, "projections: %llu events skipped in all (the first 10 logged)\n",
                 static_cast<unsigned long long>(errors_));
  }
}

void ProjectionPoller::Loop() {
  constexpr size_t kPage = 1000;
  while (!stop_.load()) {
    auto page = store_.ReadAll(applied_.load() + 1, kPage);
    if (!page.ok()) {
      // The database is away: Health() and the API say so; try again next interval.
      std::this_thread::sleep_for(interval_);
      continue;
    }
    for (size_t i = 0; i < page->size(); ++i) {
      const metrics::store::Event& e = (*page)[i];
      // Lag as the projector reports it: now minus the applied event's timestamp, every 16th
      // event and the page's last, at a clock read each.
      const bool report = metrics_ != nullptr && (i % 16 == 15 || i + 1 == page->size());
      const int64_t now = report ? metrics::store::internal::StoreMetrics::Now() : 0;
      for (size_t k = 0; k < projections_.size(); ++k) {
        const Projection& p = projections_[k];
        absl::Status s;
        try {
          s = p.second(e);
        } catch (const std::exception& ex) {
          s = absl::InternalError(ex.what());
        }
        if (metrics_ != nullptr) {
          (s.ok() ? handles_[k].updates : handles_[k].errors).Inc();
          if (report) handles_[k].lag.Set(static_cast<double>(now - e.timestamp_ns) * 1e-9);
        }
        if (!s.ok() && ++errors_ <= 10) {
          std::fprintf(stderr, "projection %s: event at position %llu skipped: %s\n",
                       p.first.c_str(), static_cast<unsigned long long>(e.position),
                       std::string(s.message()).c_str());
        }
      }
      applied_.store(e.position, std::memory_order_release);
      if (stop_.load()) return;
    }
    if (page->size() < kPage) Idle();
  }
}

void ProjectionPoller::Idle() {
  if (!wait_) {
    std::this_thread::sleep_for(interval_);
    return;
  }
  // Woken by the next commit; the interval bounds how long Stop() waits for this thread.
  (void)wait_(applied_.load(std::memory_order_relaxed), interval_);  // this thread wrote it
}

}  // namespace eventstore
