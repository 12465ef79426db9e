// The projector: one thread that applies every published event to every projection, exactly
// once and in position order, reading the events from the Index in chunks. It tells transient
// failures (retried with backoff) from permanent ones (skipped at once), logs skips
// rate-limited, and stops at the next event boundary when asked, whatever the backlog
// (projections live in memory and are rebuilt by replay).
//
// Threads.
//   - Add(), WaitFor(), Stats(): any thread, under mu_.
//   - Wake(): the writer thread, after each published batch; takes mu_ only when the projector
//     sleeps.
//   - Start(), Stop(): the thread that opens / closes the store.
//   - The projection functions, the skip logs and the chunk buffer: the projector thread only.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/event_store.h"
#include "store/internal/index.h"
#include "store/internal/mutex.h"
#include "store/internal/store_metrics.h"

namespace metrics::store::internal {

class Projector {
 public:
  struct Options {
    int retries = 3;
    std::chrono::milliseconds backoff{1};
  };
  // metrics: may be null.
  Projector(Options options, const Index& index, StoreMetrics* metrics)
      : options_(options), index_(index), metrics_(metrics) {}
  ~Projector() { Stop(); }
  Projector(const Projector&) = delete;
  Projector& operator=(const Projector&) = delete;

  void Start();
  // Stops the thread at its next event boundary (also out of a retry backoff) and joins it.
  // Idempotent; Add fails afterwards.
  void Stop();

  absl::Status Add(std::string name, ProjectionFn apply);
  absl::Status WaitFor(uint64_t position, std::chrono::nanoseconds timeout) const;
  absl::StatusOr<ProjectionStats> Stats(std::string_view name) const;
  // New events were published.
  void Wake();

 private:
  struct Projection;
  enum class Applied { kOk, kSkipped, kStopped };

  void Loop();
  // True when a projection has not handled everything published; *last: the last position.
  bool Behind(uint64_t* last) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RunChunk(Projection& p, uint64_t last);
  // Applies e, retrying transient failures with backoff; kStopped when Stop() interrupted it.
  Applied ApplyWithRetries(Projection& p, const Event& e);
  void LogSkip(Projection& p, const Event& e, const absl::Status& s, int attempts);
  // Sleeps for `d` or until Stop(); true when stopped.
  bool SleepUnlessStopped(std::chrono::milliseconds d);

  const Options options_;
  const Index& index_;
  StoreMetrics* const metrics_;

  mutable Mutex mu_;
  std::condition_variable cv_;                   // the projector waits for work or a stop
  mutable std::condition_variable progress_cv_;  // WaitFor
  std::vector<std::shared_ptr<Projection>> projections_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> have_projections_{false};
  std::atomic<bool> waiting_{false};
  std::atomic<bool> stop_hint_{false};  // stopping_, for the per-event check
  std::thread thread_;
  std::vector<Event> chunk_;  // projector thread
};

}  // namespace metrics::store::internal
