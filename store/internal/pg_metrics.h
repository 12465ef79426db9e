// The PostgreSQL backend's own metrics, beside the store's metric set (store_metrics.h):
//   pg_pool_connections{state="idle"|"in_use"}  the read pool's connections (the writers' own
//                                               connections, PostgresOptions::writers, are not in
//                                               it)
//   pg_pool_wait_seconds                        time Acquire() waited for a pooled connection
//   pg_errors_total{class}                      database errors by SQLSTATE class ("08", "40", ...;
//                                               "connection" when libpq gave none)
//
// Threads: every method is thread-safe (handles are lock-free; SetConnections is called under the
// pool's mutex, so its two gauges move together).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/histogram.h"
#include "engine/metric.h"
#include "engine/registry.h"

namespace metrics::store::internal {

class PgMetrics {
 public:
  // Registers (or finds, when identical) the families in `registry`.
  static absl::StatusOr<std::unique_ptr<PgMetrics>> Create(Registry& registry);

  void SetConnections(size_t idle, size_t in_use) {
    idle_.Set(static_cast<double>(idle));
    in_use_.Set(static_cast<double>(in_use));
  }
  void Waited(double seconds) { wait_.Observe(seconds); }
  // Counts `s` (not OK) under its SQLSTATE class, read from the message PgStatus wrote.
  void CountError(const absl::Status& s);
  // "08" from "... SQLSTATE 08006: ...", else "connection".
  static std::string ErrorClass(std::string_view message);

 private:
  PgMetrics(CounterFamily errors, Gauge idle, Gauge in_use, Histogram wait)
      : errors_(std::move(errors)),
        idle_(std::move(idle)),
        in_use_(std::move(in_use)),
        wait_(std::move(wait)) {}

  CounterFamily errors_;
  Gauge idle_, in_use_;
  Histogram wait_;
};

}  // namespace metrics::store::internal
