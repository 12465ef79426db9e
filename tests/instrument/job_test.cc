// Job metrics: runs, failures (status and exception), duration, last success time.
#include "instrument/job.h"

#include <chrono>
#include <stdexcept>
#include <thread>

#include "gtest/gtest.h"

namespace metrics::instrument {
namespace {

double Value(const Registry& r, const std::string& family, const std::string& job) {
  const Snapshot s = r.Collect();
  for (const FamilySnapshot& f : s.families) {
    if (f.desc->name != family) continue;
    for (size_t k = 0; k < f.samples.size(); ++k) {
      if ((*f.samples[k].label_values)[0] != job) continue;
      if (f.desc->type == MetricType::kHistogram) return f.histograms[k].count;
      return f.desc->type == MetricType::kGauge ? f.samples[k].value : f.samples[k].Total();
    }
  }
  return -1;
}

TEST(JobMetricsTest, CountsRunsFailuresAndTheLastSuccess) {
  Registry r;
  auto jobs = *JobMetrics::Create(r);
  const double before =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_TRUE(jobs->Run("compact", [] { return absl::OkStatus(); }).ok());
  EXPECT_EQ(jobs->Run("compact", [] { return absl::InternalError("disk"); }).code(),
            absl::StatusCode::kInternal);
  EXPECT_THROW(
      (void)jobs->Run("compact", []() -> absl::Status { throw std::runtime_error("boom"); }),
      std::runtime_error);
  EXPECT_TRUE(jobs->Run("sample",
                        [] {
                          std::this_thread::sleep_for(std::chrono::milliseconds(20));
                          return absl::OkStatus();
                        })
                  .ok());
  EXPECT_EQ(Value(r, "job_runs_total", "compact"), 3);
  EXPECT_EQ(Value(r, "job_failures_total", "compact"), 2);
  EXPECT_EQ(Value(r, "job_duration_seconds", "compact"), 3);
  const double last = Value(r, "job_last_success_timestamp_seconds", "compact");
  EXPECT_GE(last, before);
  EXPECT_LT(last, before + 60);
  EXPECT_EQ(Value(r, "job_failures_total", "sample"), -1);  // no failure: no series
  const Snapshot s = r.Collect();
  for (const FamilySnapshot& f : s.families) {
    if (f.desc->name == "job_duration_seconds" && (*f.samples[0].label_values)[0] == "sample") {
      EXPECT_GE(f.histograms[0].sum, 0.02);
    }
  }
}

}  // namespace
}  // namespace metrics::instrument
