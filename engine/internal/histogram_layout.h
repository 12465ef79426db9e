// Where an observation lands: the slot of a histogram series (two cells: count, sum) for a double,
// computed from the double's bits, and what each slot means for the native (sparse, log-bucket) and
// classic (`le`) views.
//
// Native geometry (Prometheus native histograms, schema s in [-4, 8]): bucket i covers
// (2^((i-1)/2^s), 2^(i/2^s)]; a negative value v goes to the mirrored negative bucket of |v|; |v|
// <= zero_threshold to the zero bucket.
//
// Index from the bits, schema s >= 0, v = 2^E * (1 + m/2^52) with E the unbiased exponent, m the
// 52-bit mantissa:
//   i = E * 2^s + j, where j is the smallest j in [0, 2^s] with 1 + m/2^52 <= B_j, B_j = 2^(j/2^s).
// The top k = s+1 mantissa bits pick a table entry {bound, base}; B_j are spaced more than 2^-k
// apart, so at most one boundary falls inside an entry's mantissa interval and j = base + (m >
// bound): one load, one compare. Schemas below 0 take the schema-0 index i0 = E + (m > 0) and
// divide: i = ceil(i0 / 2^-s).
//
//   Worked example (schema 3, pinned by HistogramLayoutTest.WorkedExample): v = 3.0 = 2^1 * 1.5, so
//   E = 1, m/2^52 = 0.5 and the top 4 mantissa bits are p = 8 (interval [1.5, 1.5625)). B_4 =
//   2^(4/8) = 1.41421 < 1.5
//   <= B_5 = 2^(5/8) = 1.54221, so entry 8 is {bound: mantissa of B_5, base: 5} and j = 5 + (m >
//   bound) = 5. i = 1 * 8 + 5 = 13: bucket 13 covers (2^(12/8), 2^(13/8)] = (2.828, 3.084], which
//   holds 3.0.
//
// Range: native buckets from 2^min_exponent to 2^max_exponent (default 2^-30 .. 2^40). A value with
// zero_threshold < |v| < 2^min_exponent lands in the innermost bucket, |v| > 2^max_exponent (and
// +-Inf) in the outermost one: counts and the sum stay exact, only the native bucket is clamped.
//
// Classic buckets stay exact: a native slot that contains a classic boundary b is split into a
// sub-slot for values <= b and one for values > b (a chain when a slot holds several boundaries),
// so one observation still updates one slot, and each slot lies inside one classic bucket. This
// needs only that the slot order follows the order of values, which the index does (it is
// monotonic, clamping included).
//
// Special values (as client_golang): NaN is counted (count, classic +Inf bucket, native zero
// bucket) and makes the sum NaN; +Inf goes to the +Inf classic bucket and the outermost positive
// native bucket; -Inf to the first classic bucket and the outermost negative native bucket; -0.0, 0
// and subnormals to the zero bucket (when zero_threshold >= them, as the default 2^-128 is).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/optimization.h"
#include "absl/status/statusor.h"

namespace metrics {

// Prometheus' default classic buckets: .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10.
std::vector<double> DefaultBuckets();
// count boundaries start, start + width, ...; width > 0, count >= 1.
absl::StatusOr<std::vector<double>> LinearBuckets(double start, double width, int count);
// count boundaries start, start * factor, ...; start > 0, factor > 1, count >= 1.
absl::StatusOr<std::vector<double>> ExponentialBuckets(double start, double factor, int count);

struct HistogramConfig {
  std::vector<double> buckets =
      DefaultBuckets();  // classic `le` boundaries, strictly increasing; +Inf implied
  int schema = 3;        // native resolution, -4 .. 8
  double zero_threshold =
      0x1p-128;            // |v| <= this counts in the zero bucket (client_golang default)
  int min_exponent = -30;  // native buckets span 2^min_exponent ..
  int max_exponent = 40;   //   .. 2^max_exponent

  bool operator==(const HistogramConfig&) const = default;
};

namespace internal {

class HistogramLayout {
 public:
  // Validates the config (names the bad input) and builds the tables.
  static absl::StatusOr<std::shared_ptr<const HistogramLayout>> Create(
      const HistogramConfig& config);

  // The slot of v. Never fails: every double, NaN included, has one.
  uint32_t Slot(double v) const {
    const uint64_t bits = __builtin_bit_cast(uint64_t, v);
    const uint32_t e = static_cast<uint32_t>(bits >> 52) & 0x7ff;
    // One unsigned compare sends zero, subnormals, out-of-range magnitudes, Inf and NaN to the slow
    // path.
    if (ABSL_PREDICT_FALSE(e - fast_e_lo_ >= fast_e_span_)) return SlowSlot(v);
    const uint64_t m = bits & kMantissaMask;
    const Entry& t = table_[m >> mantissa_shift_];
    int32_t rel =
        static_cast<int32_t>(e - base_e_) * mult_ + static_cast<int32_t>(t.base + (m > t.bound));
    if (neg_shift_ != 0) rel = CeilShift(rel + schema0_offset_) - i_lo_;
    uint32_t slot = (bits >> 63) ? neg_origin_ - static_cast<uint32_t>(rel)
                                 : pos_origin_ + static_cast<uint32_t>(rel);
    return Refine(slot, v);
  }

  uint32_t num_slots() const { return static_cast<uint32_t>(slots_.size()); }
  uint32_t num_cells() const { return 2 * num_slots(); }  // per slot: [count, sum as double bits]

  // What a slot stands for, for Collect().
  struct SlotInfo {
    int8_t sign;  // -1 negative native bucket, 0 zero bucket (and NaN), +1 positive native bucket
    int32_t native_index;  // bucket index i (of |v|) when sign != 0
    uint32_t classic;      // index into boundaries(), or boundaries().size() for +Inf
  };
  const std::vector<SlotInfo>& slots() const { return slots_; }
  const std::vector<double>& boundaries() const { return config_.buckets; }
  const HistogramConfig& config() const { return config_; }
  int schema() const { return config_.schema; }
  double zero_threshold() const { return config_.zero_threshold; }

  // Reference implementation for tests: the native bucket index of |v| > 0 by frexp and a search
  // over the same boundary doubles (unclamped), and the slot it implies.
  int32_t NativeIndexSlow(double abs_v) const;

 private:
  static constexpr uint64_t kMantissaMask = (uint64_t{1} << 52) - 1;

  struct Entry {
    uint64_t bound;  // mantissa of the first boundary B_base at or above the entry's interval (2^52
                     // for B = 2)
    uint32_t base;
    uint32_t unused;
  };
  struct Split {
    double upper;  // values > upper belong to slot `alt`; +Inf when the slot is not split further
    uint32_t alt;
    uint32_t unused;
  };

  explicit HistogramLayout(const HistogramConfig& config) : config_(config) {}
  absl::Status Build();
  uint32_t SlowSlot(double v) const;
  uint32_t Refine(uint32_t slot, double v) const {
    while (ABSL_PREDICT_FALSE(v > splits_[slot].upper)) slot = splits_[slot].alt;
    return slot;
  }
  int32_t CeilShift(int32_t x) const { return -((-x) >> neg_shift_); }  // ceil(x / 2^neg_shift_)

  HistogramConfig config_;
  // Fast path: biased exponents [fast_e_lo_, fast_e_lo_ + fast_e_span_).
  uint32_t fast_e_lo_ = 0, fast_e_span_ = 0;
  uint32_t base_e_ = 0;  // biased exponent of 2^min_exponent (schema >= 0) or 0 (schema < 0)
  int32_t mult_ = 1;     // 2^schema, or 1 below schema 0
  uint32_t mantissa_shift_ = 0;  // 52 - k
  uint32_t neg_shift_ = 0;       // -schema below schema 0, else 0
  int32_t schema0_offset_ = 0;   // below schema 0: unbiased exponent offset (-1023)
  int32_t i_lo_ = 0, i_hi_ = 0;  // native index range [i_lo_, i_hi_]
  uint32_t neg_origin_ = 0, pos_origin_ = 0, zero_slot_ = 0, nan_slot_ = 0;
  std::vector<double> bounds_;  // B_j, j = 0 .. 2^max(schema, 0)
  std::vector<Entry> table_;
  std::vector<Split> splits_;
  std::vector<SlotInfo> slots_;
};

}  // namespace internal
}  // namespace metrics
