// Renders a registry snapshot (engine/snapshot.h) in Prometheus' protobuf exposition format: a
// sequence of io.prometheus.client.MetricFamily messages (prometheus/client_model's metrics.proto),
// each preceded by its length as a varint. The only format that carries native histograms.
//
// A streaming wire encoder of our own rather than libprotobuf's generated classes: it writes each
// field straight from the snapshot into the output buffer, with no message objects to build and
// free per series (bench/scrape_bench.cc measures both; tests decode every body with libprotobuf).
#pragma once

#include <string>

#include "engine/snapshot.h"

namespace metrics::exposition {

// Appends the whole snapshot to *out, one MetricFamily per family in snapshot order.
//
// Mapping: counters are COUNTER with Counter.value = the total, named as in text 0.0.4 (with their
// "_total"); gauges GAUGE; info families a GAUGE named <name>_info whose metrics are 1; histograms
// HISTOGRAM with sample_count, sample_sum and one Bucket per classic boundary (cumulative counts;
// the +Inf bucket, implied by sample_count, only when it carries an exemplar) and, unless the
// layout is classic-only, the native part: schema, zero_threshold (always sent, so that
// Prometheus 2.42 recognises the histogram as native even when it is empty), zero_count, and
// per side the spans and the count deltas (the first bucket's delta is its count). Constant
// labels precede variable ones. Exemplars go to Counter.exemplar and Bucket.exemplar, with their
// timestamp. The OpenMetrics unit is not carried (client_model 0.3 has no field for it).
void WriteProtobuf(const Snapshot& snapshot, std::string* out);

}  // namespace metrics::exposition
