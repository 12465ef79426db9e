// One labelled series of a family: its label values and where its cells live. Shared by the
// family's index, every handle bound to it and every snapshot that reports it; freed (cells zeroed
// and recycled) with the last.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace metrics::internal {

class HistogramLayout;
class ExemplarSlots;

struct SeriesCore {
  SeriesCore(std::vector<std::string> values, uint32_t first, uint32_t n,
             std::shared_ptr<const HistogramLayout> histogram_layout = nullptr)
      : label_values(std::move(values)),
        first_cell(first),
        num_cells(n),
        layout(std::move(histogram_layout)) {}
  ~SeriesCore();  // returns the cells to CellAllocator, which zeroes them
  SeriesCore(const SeriesCore&) = delete;
  SeriesCore& operator=(const SeriesCore&) = delete;

  const std::vector<std::string> label_values;
  const uint32_t
      first_cell;  // block in the shards' slot space (engine/internal/cells.h); unused by gauges
  const uint32_t num_cells;
  // Histograms: where each observation lands; kept here so a handle outliving its family stays
  // valid.
  const std::shared_ptr<const HistogramLayout> layout;
  // A gauge's value, as the bits of a double: gauges are one shared cell, not sharded
  // (engine/metric.h).
  std::atomic<uint64_t> gauge_bits{0};
  // Set under the family mutex when the series leaves its family; read by thread caches to drop it.
  std::atomic<bool> removed{false};
  // The series' latest exemplars (engine/internal/exemplar_slots.h): null until the first
  // IncWithExemplar/ObserveWithExemplar installs them, then fixed until the series is freed.
  std::atomic<ExemplarSlots*> exemplars{nullptr};
};

using SeriesPtr = std::shared_ptr<SeriesCore>;

}  // namespace metrics::internal
