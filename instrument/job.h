// Instrumented jobs — the ADR's "scheduler: scheduling health" — for any service's periodic or
// one-off work:
//
//   job_runs_total{job}                        counter: runs finished, whatever their outcome
//   job_failures_total{job}                    counter: runs that returned an error or threw
//   job_duration_seconds{job}                  histogram: each run's wall time
//   job_last_success_timestamp_seconds{job}    gauge: when the last successful run ended (Unix
//                                              time; alert on time() - it)
//
//   auto jobs = *JobMetrics::Create(registry);
//   absl::Status s = jobs->Run("compact", [&] { return store.Compact(); });
//
// `job` is a name the program chooses (one per kind of work), not per run: keep it bounded.
// Thread contract: Run may be called from any number of threads at once.
#pragma once

#include <functional>
#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/registry.h"

namespace metrics::instrument {

class JobMetrics {
 public:
  static absl::StatusOr<std::unique_ptr<JobMetrics>> Create(Registry& registry);

  // Runs `fn`, timing it and counting its outcome: a non-OK status is a failure and is returned;
  // an exception is a failure and is rethrown.
  absl::Status Run(std::string_view job, const std::function<absl::Status()>& fn);

 private:
  JobMetrics(CounterFamily runs, CounterFamily failures, HistogramFamily duration,
             GaugeFamily last_success)
      : runs_(std::move(runs)),
        failures_(std::move(failures)),
        duration_(std::move(duration)),
        last_success_(std::move(last_success)) {}
  CounterFamily runs_, failures_;
  HistogramFamily duration_;
  GaugeFamily last_success_;
};

}  // namespace metrics::instrument
