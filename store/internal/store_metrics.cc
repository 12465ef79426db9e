#include "store/internal/store_metrics.h"

#include <charconv>

#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "engine/internal/strings.h"

namespace metrics::store::internal {
namespace {

using ::metrics::internal::AV;

// Classic buckets of event_processing_duration_seconds: 10 us (in-memory round trips) to 10 s
// (a stalled disk); the native buckets give the fine resolution.
std::vector<double> DurationBuckets() {
  return {1e-5,   2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2,
          2.5e-2, 5e-2,   0.1,  0.25, 0.5,    1,    2.5,  5,      10};
}

}  // namespace

// absl's clock: realtime, read from the cycle counter and rescaled (cheaper than clock_gettime or
// steady_clock).
int64_t StoreMetrics::Now() { return absl::GetCurrentTimeNanos(); }

absl::StatusOr<std::unique_ptr<StoreMetrics>> StoreMetrics::Create(Registry& r,
                                                                   size_t max_event_types) {
  auto stored = r.AddCounter({.name = "events_stored_total",
                              .help = "Events stored (durable per the fsync policy), by type.",
                              .label_names = {"event_type"},
                              .max_series = max_event_types});
  if (!stored.ok()) return stored.status();
  auto bytes = r.AddCounter(
      {.name = "events_stored_bytes_total", .help = "Payload bytes of the events stored."});
  if (!bytes.ok()) return bytes.status();
  auto size = r.AddGauge(
      {.name = "event_store_size_bytes", .help = "Bytes of all segment files of the event store."});
  if (!size.ok()) return size.status();
  HistogramConfig config;
  config.buckets = DurationBuckets();
  auto duration = r.AddHistogram(
      {.name = "event_processing_duration_seconds",
       .help = "Time from Append() accepting a request to its batch being durable and the caller "
               "released."},
      config);
  if (!duration.ok()) return duration.status();
  auto truncated = r.AddCounter({.name = "event_store_recovery_truncated_bytes_total",
                                 .help = "Bytes of torn log tail cut off by recovery."});
  if (!truncated.ok()) return truncated.status();
  auto updates = r.AddCounter({.name = "projection_updates_total",
                               .help = "Events applied by a projection.",
                               .label_names = {"projection"}});
  if (!updates.ok()) return updates.status();
  auto errors = r.AddCounter({.name = "projection_errors_total",
                              .help = "Events a projection skipped after its retries failed.",
                              .label_names = {"projection"}});
  if (!errors.ok()) return errors.status();
  auto lag =
      r.AddGauge({.name = "projection_lag_seconds",
                  .help = "Now minus the stored timestamp of the event a projection applied last.",
                  .label_names = {"projection"}});
  if (!lag.ok()) return lag.status();

  auto b = bytes->Bind({});
  if (!b.ok()) return b.status();
  auto s = size->Bind({});
  if (!s.ok()) return s.status();
  auto d = duration->Bind({});
  if (!d.ok()) return d.status();
  auto t = truncated->Bind({});
  if (!t.ok()) return t.status();

  return std::unique_ptr<StoreMetrics>(new StoreMetrics(*stored, *updates, *errors, *lag,
                                                        *std::move(b), *std::move(s), *std::move(d),
                                                        *std::move(t), max_event_types));
}

Counter& StoreMetrics::TypeCounterSlow(std::string_view type, CacheEntry& entry) {
  auto it = types_.find(AV(type));
  if (it == types_.end()) {
    if (types_.size() < max_types_) {
      if (absl::StatusOr<Counter> c = stored_.Bind({type}); c.ok()) {
        it = types_.emplace(std::string(type), *std::move(c)).first;
      }
    }
    if (it == types_.end()) {  // past the cap: the engine diverts and counts it
      return stored_.WithLabelValues(type);
    }
  }
  entry.key = MakeKey(type);
  entry.type.assign(type);
  entry.counter = &it->second;
  return it->second;
}

StoreMetrics::ProjectionHandles StoreMetrics::BindProjection(std::string_view name) {
  return {.updates = updates_.WithLabelValues(name),
          .errors = errors_.WithLabelValues(name),
          .lag = lag_.WithLabelValues(name)};
}

void StoreMetrics::ObserveWithExemplar(double seconds, int64_t end_ns, uint64_t first_position) {
  last_exemplar_ns_ = end_ns;
  char digits[24];
  const char* end = std::to_chars(digits, digits + sizeof digits, first_position).ptr;
  (void)duration_.ObserveWithExemplar(
      seconds, {{"position", std::string_view(digits, static_cast<size_t>(end - digits))}});
}

}  // namespace metrics::store::internal
