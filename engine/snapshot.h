// An immutable, point-in-time view of a registry, made by Registry::Collect() for exposition/ to
// render.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/internal/histogram_layout.h"
#include "engine/internal/series.h"

namespace metrics {

// kInfo: OpenMetrics' info type, a family whose series carry information in their labels and always
// report 1 (text 0.0.4 exposes it as a gauge named <name>_info).
enum class MetricType { kCounter, kGauge, kHistogram, kInfo };

// What a family is: fixed at registration.
struct FamilyDesc {
  std::string name;
  std::string help;
  MetricType type = MetricType::kCounter;
  std::vector<std::string> label_names;
  std::vector<std::pair<std::string, std::string>>
      const_labels;  // rendered before the variable labels
  std::shared_ptr<const internal::HistogramLayout> histogram;  // histograms only: buckets, schema
  // OpenMetrics unit ("seconds", "bytes"), empty for none: the OpenMetrics family name ends with
  // "_<unit>" (checked at registration); only OpenMetrics prints it, as "# UNIT".
  std::string unit;
};

// Native buckets of one sign as Prometheus' protobuf wants them: spans of consecutive bucket
// indices (the first span's offset is its first index; each later offset is the gap after the
// previous span) and one absolute count per bucket in the spans, in index order.
struct BucketSpan {
  int32_t offset = 0;
  uint32_t length = 0;
};
struct NativeBuckets {
  std::vector<BucketSpan> spans;
  std::vector<uint64_t> counts;
};

struct HistogramSample {
  uint64_t count = 0;
  double sum = 0;
  // Cumulative classic counts, one per boundary of desc->histogram->boundaries(), then +Inf. Taken
  // from one read of each cell, so the +Inf entry equals count and the list never decreases, also
  // while writers run.
  std::vector<uint64_t> cumulative;
  // False for a classic-only layout (HistogramConfig::native false): no native part at all;
  // schema, zero_threshold and zero_count are 0 and the spans empty.
  bool native = true;
  int schema = 0;
  double zero_threshold = 0;
  uint64_t zero_count = 0;  // includes NaN observations, as client_golang does
  NativeBuckets positive;
  NativeBuckets negative;
};

// An exemplar (OpenMetrics): one observation or increment with labels that lead elsewhere, usually
// to a trace or a request. Recorded by Counter::IncWithExemplar and Histogram::ObserveWithExemplar.
struct Exemplar {
  std::vector<std::pair<std::string, std::string>> labels;  // in the order given
  double value = 0;
  double timestamp = 0;  // seconds since the Unix epoch, when it was recorded
};

// The latest exemplar of one counter series or one classic bucket of one histogram series.
struct ExemplarSample {
  uint32_t sample = 0;  // index into FamilySnapshot::samples
  // Histograms: the classic bucket the exemplar's value falls in, an index into
  // desc->histogram->boundaries(), whose size() stands for +Inf. Counters: 0.
  uint32_t bucket = 0;
  std::shared_ptr<const Exemplar> exemplar;  // never null; immutable, shared with the series
};

// One series' values at collect time.
struct SeriesSample {
  const std::vector<std::string>* label_values =
      nullptr;  // in label_names order; owned by the snapshot
  // Counter: integer part of the count (Inc) in int_value, sum of fractional increments (Add) in
  // value; the
  //          counter's value is Total(). Gauge: value.
  uint64_t int_value = 0;
  double value = 0;

  double Total() const { return static_cast<double>(int_value) + value; }
  bool IsInteger() const { return value == 0; }
};

struct FamilySnapshot {
  std::shared_ptr<const FamilyDesc> desc;
  std::vector<SeriesSample> samples;        // sorted by label values
  std::vector<HistogramSample> histograms;  // histograms: one per sample, same order
  // Sorted by (sample, bucket); empty unless a series of the family has recorded an exemplar.
  std::vector<ExemplarSample> exemplars;
  // Keeps the label values that samples point to alive.
  std::shared_ptr<const std::vector<internal::SeriesPtr>> series;
  std::vector<std::shared_ptr<const std::vector<std::string>>>
      owned_labels;  // for synthesized families
};

struct Snapshot {
  std::vector<FamilySnapshot> families;  // sorted by name
};

// For collectors (engine/registry.h): appends a family with no samples yet.
inline FamilySnapshot& AppendFamily(std::vector<FamilySnapshot>& out,
                                    std::shared_ptr<const FamilyDesc> desc) {
  FamilySnapshot& f = out.emplace_back();
  f.desc = std::move(desc);
  return f;
}

// For collectors: appends a counter or gauge sample whose label values (in label_names order) the
// family snapshot keeps alive. A counter's value goes to `value` (printed as a float).
inline SeriesSample& AppendSample(FamilySnapshot& f, std::vector<std::string> label_values,
                                  double value) {
  auto owned = std::make_shared<const std::vector<std::string>>(std::move(label_values));
  SeriesSample& s = f.samples.emplace_back();
  s.label_values = owned.get();
  s.value = value;
  f.owned_labels.push_back(std::move(owned));
  return s;
}

}  // namespace metrics
