// Renders a registry snapshot (engine/snapshot.h) as Prometheus text exposition format 0.0.4.
#pragma once

#include <string>

#include "engine/snapshot.h"

namespace metrics::exposition {

inline constexpr char kTextContentType[] = "text/plain; version=0.0.4; charset=utf-8";

// Appends the whole snapshot to *out: per family "# HELP", "# TYPE", then its samples, families
// sorted by name and series by label values. HELP escapes backslash and newline; label values also
// escape the double quote. Integral counters print as integers; other values as shortest round-trip
// floats (format_float.h).
void WriteText(const Snapshot& snapshot, std::string* out);

}  // namespace metrics::exposition
