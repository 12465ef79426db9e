// An immutable, point-in-time view of a registry, made by Registry::Collect() for exposition/ to render.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/internal/series.h"

namespace metrics {

enum class MetricType { kCounter, kGauge, kHistogram };

// What a family is: fixed at registration.
struct FamilyDesc {
  std::string name;
  std::string help;
  MetricType type = MetricType::kCounter;
  std::vector<std::string> label_names;
  std::vector<std::pair<std::string, std::string>> const_labels;  // rendered before the variable labels
};

// One series' values at collect time.
struct SeriesSample {
  const std::vector<std::string>* label_values = nullptr;  // in label_names order; owned by the snapshot
  // Counter: integer part of the count (Inc) in int_value, sum of fractional increments (Add) in value; the
  //          counter's value is Total(). Gauge: value.
  uint64_t int_value = 0;
  double value = 0;

  double Total() const { return static_cast<double>(int_value) + value; }
  bool IsInteger() const { return value == 0; }
};

struct FamilySnapshot {
  std::shared_ptr<const FamilyDesc> desc;
  std::vector<SeriesSample> samples;  // sorted by label values
  // Keeps the label values that samples point to alive.
  std::shared_ptr<const std::vector<internal::SeriesPtr>> series;
  std::vector<std::shared_ptr<const std::vector<std::string>>> owned_labels;  // for synthesized families
};

struct Snapshot {
  std::vector<FamilySnapshot> families;  // sorted by name
};

}  // namespace metrics
