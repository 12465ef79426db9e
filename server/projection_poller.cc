#include "server/projection_poller.h"

#include <cstdio>
#include <string>

namespace eventstore {

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
    for (const metrics::store::Event& e : *page) {
      for (const Projection& p : projections_) {
        absl::Status s;
        try {
          s = p.second(e);
        } catch (const std::exception& ex) {
          s = absl::InternalError(ex.what());
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
    if (page->size() < kPage) std::this_thread::sleep_for(interval_);
  }
}

}  // namespace eventstore
