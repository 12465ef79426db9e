#include "store/internal/pg_metrics.h"

#include "absl/strings/ascii.h"

namespace metrics::store::internal {

absl::StatusOr<std::unique_ptr<PgMetrics>> PgMetrics::Create(Registry& r) {
  auto connections =
      r.AddGauge({.name = "pg_pool_connections",
                  .help = "Connections of the PostgreSQL read pool, by state (idle, in_use).",
                  .label_names = {"state"}});
  if (!connections.ok()) return connections.status();
  HistogramConfig config;
  config.buckets = {1e-5, 1e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1, 5};
  auto wait = r.AddHistogram(
      {.name = "pg_pool_wait_seconds",
       .help = "Time a read waited for a pooled PostgreSQL connection (connecting included)."},
      config);
  if (!wait.ok()) return wait.status();
  // SQLSTATE classes are two characters from a fixed list (and "connection"): bounded.
  auto errors = r.AddCounter({.name = "pg_errors_total",
                              .help = "PostgreSQL errors by SQLSTATE class ('connection': none).",
                              .label_names = {"class"},
                              .max_series = 64});
  if (!errors.ok()) return errors.status();
  auto idle = connections->Bind({"idle"});
  if (!idle.ok()) return idle.status();
  auto in_use = connections->Bind({"in_use"});
  if (!in_use.ok()) return in_use.status();
  auto w = wait->Bind({});
  if (!w.ok()) return w.status();
  return std::unique_ptr<PgMetrics>(
      new PgMetrics(*errors, *std::move(idle), *std::move(in_use), *std::move(w)));
}

std::string PgMetrics::ErrorClass(std::string_view message) {
  constexpr std::string_view kTag = "SQLSTATE ";
  const size_t at = message.find(kTag);
  if (at == std::string_view::npos || at + kTag.size() + 2 > message.size()) return "connection";
  std::string cls(message.substr(at + kTag.size(), 2));
  for (char c : cls) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c))) return "connection";
  }
  return cls;
}

void PgMetrics::CountError(const absl::Status& s) {
  if (s.ok()) return;
  errors_.WithLabelValues(ErrorClass(std::string(s.message()))).Inc();
}

}  // namespace metrics::store::internal
