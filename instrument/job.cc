#include "instrument/job.h"

#include <chrono>
#include <string>

namespace metrics::instrument {

absl::StatusOr<std::unique_ptr<JobMetrics>> JobMetrics::Create(Registry& registry) {
  auto runs = registry.AddCounter({.name = "job_runs_total",
                                   .help = "Job runs finished, whatever their outcome.",
                                   .label_names = {"job"}});
  if (!runs.ok()) return runs.status();
  auto failures = registry.AddCounter({.name = "job_failures_total",
                                       .help = "Job runs that returned an error or threw.",
                                       .label_names = {"job"}});
  if (!failures.ok()) return failures.status();
  auto duration = registry.AddHistogram({.name = "job_duration_seconds",
                                         .help = "Wall time of each job run.",
                                         .label_names = {"job"}},
                                        {.buckets = {.001, .01, .1, .5, 1, 5, 10, 30, 60, 300, 900},
                                         .schema = 0,
                                         .min_exponent = -20,
                                         .max_exponent = 14});
  if (!duration.ok()) return duration.status();
  auto last = registry.AddGauge({.name = "job_last_success_timestamp_seconds",
                                 .help = "Unix time at which the job's last successful run ended.",
                                 .label_names = {"job"}});
  if (!last.ok()) return last.status();
  return std::unique_ptr<JobMetrics>(new JobMetrics(*std::move(runs), *std::move(failures),
                                                    *std::move(duration), *std::move(last)));
}

absl::Status JobMetrics::Run(std::string_view job, const std::function<absl::Status()>& fn) {
  const std::string name(job);
  const auto start = std::chrono::steady_clock::now();
  auto finish = [&](bool ok) {
    duration_.WithLabelValues(name).Observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    runs_.WithLabelValues(name).Inc();
    if (!ok) {
      failures_.WithLabelValues(name).Inc();
      return;
    }
    last_success_.WithLabelValues(name).Set(
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  };
  absl::Status s;
  try {
    s = fn();
  } catch (...) {
    finish(false);
    throw;
  }
  finish(s.ok());
  return s;
}

}  // namespace metrics::instrument
