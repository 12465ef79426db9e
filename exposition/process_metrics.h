// Process metrics with client_golang's names, read from /proc at scrape time:
// process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
// process_open_fds, process_max_fds, process_start_time_seconds.
#pragma once

#include "engine/snapshot.h"

namespace metrics::exposition {

// Appends the process families to `snapshot` and keeps its families sorted by name. A value that
// cannot be read (no /proc) is left out, family and all; nothing fails.
void AppendProcessMetrics(Snapshot* snapshot);

// Merges `from` into `into`, keeping families sorted by name. A family whose name `into` already
// has is dropped (the exposition would be invalid with both); returns how many were dropped.
size_t MergeSnapshot(Snapshot&& from, Snapshot* into);

}  // namespace metrics::exposition
