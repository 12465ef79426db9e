// GET /stats: the ADR's development stats endpoint (its "Option 1" shape: events_count_total,
// events_last_hour, events_by_type, projection_lag_ms) plus store size, ingest rate and latency
// quantiles, computed from the very snapshot /metrics renders (MetricsHandler::Collect), so the
// two never disagree. What a snapshot cannot say (rates, the last hour, quantiles over a window)
// comes from a short history of snapshots a sampler thread keeps: one point every 10 s, an hour's
// worth at most (361 points of a few hundred bytes).
//
// Thread contract: Json() from any number of threads (the HTTP workers); Sample() from the
// sampler thread (StartSampler) or a test. The history ring is guarded by a mutex held only to
// copy or push a point, never across a Collect.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/snapshot.h"
#include "instrument/job.h"

namespace eventstore {

// Native buckets of a histogram family summed over the series that count (durations: the
// positive side and the zero bucket only), for quantiles finer than the classic buckets.
struct NativeDist {
  bool present = false;  // false: a classic-only layout
  int schema = 0;
  double zero = 0;
  std::map<int32_t, double> positive;  // native bucket index -> count
};

// Prometheus' histogram_quantile over native buckets: bucket i holds (2^((i-1)/2^schema),
// 2^(i/2^schema)], linear inside it; 0 when the rank falls in the zero bucket. nullopt when
// there are no observations.
std::optional<double> NativeQuantile(const NativeDist& d, double q);

// The figures /stats reads from one snapshot.
struct StatsFigures {
  double store_events = 0;                // event_store_events: events in the store (all time)
  double stored_since_start = 0;          // sum of events_stored_total
  std::map<std::string, double> by_type;  // events_stored_total by event_type
  std::map<std::string, double> projection_lag_seconds;
  double store_size_bytes = 0;
  double start_time_seconds = 0;  // process_start_time_seconds, 0 when absent
  // Classic cumulative buckets (+Inf last) of event_processing_duration_seconds and of
  // http_request_duration_seconds summed over the API's handlers (not /metrics, /healthz, /stats
  // or the status page): what windowed quantiles are taken from.
  std::vector<double> append_bounds, append_cumulative;
  std::vector<double> api_bounds, api_cumulative;
  NativeDist append_native, api_native;  // the same, native: what the quantiles use when present
  // Webhook subscriptions (webhook_*) and the scheduler (scheduler_*), when they report.
  struct Webhook {
    double position = 0, lag_seconds = 0, delivered = 0, failed = 0;
  };
  std::map<std::string, Webhook> webhooks;
  bool has_scheduler = false;
  double scheduler_pending = 0, scheduler_last_tick = 0;
  std::map<std::string, double> scheduler_outcomes;
};

StatsFigures ExtractFigures(const metrics::Snapshot& snapshot);

// Prometheus' histogram_quantile over classic buckets: the bucket holding rank q * total, linear
// inside it (from 0 for the first bucket); the highest finite bound when the rank falls in +Inf.
// nullopt when there are no observations.
std::optional<double> ClassicQuantile(const std::vector<double>& bounds,
                                      const std::vector<double>& cumulative, double q);

class StatsService {
 public:
  // `collect` returns the snapshot /metrics renders; `now` the wall clock in seconds (tests
  // inject their own).
  explicit StatsService(std::function<metrics::Snapshot()> collect,
                        std::function<double()> now = nullptr);  // null: the wall clock
  ~StatsService();                                               // stops the sampler
  StatsService(const StatsService&) = delete;
  StatsService& operator=(const StatsService&) = delete;

  // Takes a point now and then every `every` on a thread of its own until destruction; with
  // `jobs`, each sample runs as job "stats_sample" (instrument/job.h: its runs, duration and last
  // success time are the sampler's health).
  void StartSampler(std::chrono::milliseconds every = std::chrono::seconds(10),
                    metrics::instrument::JobMetrics* jobs = nullptr);
  // Takes one history point now.
  void Sample();
  // The /stats document (schema in README, "The status page").
  std::string Json();

  static constexpr size_t kMaxPoints = 361;  // an hour at 10 s, plus the point an hour ago

 private:
  struct Point {
    double t = 0;
    double store_events = 0;
    double store_size_bytes = 0;
    std::vector<double> append_cumulative, api_cumulative;
    NativeDist append_native, api_native;
  };
  Point MakePoint(const StatsFigures& f, double t) const;

  std::function<metrics::Snapshot()> collect_;
  std::function<double()> now_;
  std::mutex mu_;
  std::deque<Point> history_;  // guarded by mu_, oldest first
  std::condition_variable stop_cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread sampler_;
};

}  // namespace eventstore
