// Renders a registry snapshot (engine/snapshot.h) as Prometheus text format 0.0.4 or
// OpenMetrics 1.0 (and, through Write, protobuf: exposition/protobuf_format.h).
#pragma once

#include <string>
#include <string_view>

#include "engine/snapshot.h"

namespace metrics::exposition {

// kProtobuf: varint-delimited io.prometheus.client.MetricFamily messages
// (exposition/protobuf_format.h).
enum class Format { kText, kOpenMetrics, kProtobuf };

inline constexpr char kTextContentType[] = "text/plain; version=0.0.4; charset=utf-8";
inline constexpr char kOpenMetricsContentType[] =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
inline constexpr char kProtobufContentType[] =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

std::string_view ContentType(Format format);

// Appends the whole snapshot to *out, one family's lines together: "# HELP", "# TYPE", then its
// samples; families in snapshot order (sorted by name), series sorted by label values, constant
// labels before variable ones and `le` last.
//
// Escaping: label values escape \ " and newline in both formats; HELP escapes \ and newline in
// text 0.0.4, and also " in OpenMetrics. Numbers: integral counters and bucket counts print as
// integers; other values as shortest round-trip floats laid out like Go's %g (format_float.h),
// NaN, +Inf, -Inf; in OpenMetrics an integral float keeps a ".0" ("1.0", le="1.0"), as
// client_golang writes it.
//
// OpenMetrics specifics: a counter's family name drops a "_total" suffix in HELP/TYPE and its
// sample is <family>_total; "# UNIT <family> <unit>" follows "# TYPE" when the family has a unit
// (text 0.0.4 never prints it); the output ends with "# EOF".
//
// Exemplars (FamilySnapshot::exemplars): OpenMetrics only, as " # {labels} value timestamp" after
// a counter's _total sample and a histogram's _bucket samples, the only places Prometheus 2.42's
// parser accepts them; the timestamp in seconds with millisecond digits. Text 0.0.4 has none.
//
// Info families: "# TYPE <name> info" and samples <name>_info{...} 1 in OpenMetrics; in text 0.0.4
// a gauge named <name>_info with the same samples.
void WriteText(const Snapshot& snapshot, std::string* out);
void WriteOpenMetrics(const Snapshot& snapshot, std::string* out);
// Any format, protobuf included.
void Write(Format format, const Snapshot& snapshot, std::string* out);

}  // namespace metrics::exposition
