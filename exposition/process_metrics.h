// Process metrics with client_golang's names, read from /proc at scrape time:
// process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
// process_open_fds, process_max_fds, process_start_time_seconds.
#pragma once

#include <memory>
#include <vector>

#include "engine/registry.h"
#include "engine/snapshot.h"

namespace metrics::exposition {

// The process families as a Collector (engine/registry.h): register it on a registry to expose
// them with that registry (MetricsHandler does so on its own registry unless
// Options::process_metrics is false). A value that cannot be read (no /proc) is left out of that
// scrape, family and all; nothing fails. Thread-safe; Collect reads /proc, so it costs a few
// system calls per scrape.
class ProcessCollector final : public Collector {
 public:
  ProcessCollector();
  std::vector<FamilyDesc> Describe() const override;
  void Collect(std::vector<FamilySnapshot>& out) const override;

 private:
  std::shared_ptr<const FamilyDesc> cpu_, virtual_, resident_, start_, open_fds_, max_fds_;
};

// Appends the process families to `snapshot` and keeps its families sorted by name (for callers
// that hold a snapshot rather than a registry).
void AppendProcessMetrics(Snapshot* snapshot);

// Merges `from` into `into`, keeping families sorted by name. A family whose name `into` already
// has is dropped (the exposition would be invalid with both); returns how many were dropped.
size_t MergeSnapshot(Snapshot&& from, Snapshot* into);

}  // namespace metrics::exposition
