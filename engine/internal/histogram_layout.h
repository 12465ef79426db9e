// Where an observation lands: the slot of a histogram series (two cells: count, sum) for a double,
// computed from the double's bits, and what each slot means for the native (sparse, log-bucket)
// and classic (`le`) views.
//
// Native geometry (Prometheus native histograms, schema s in [-4, 8]): bucket i covers
// (2^((i-1)/2^s), 2^(i/2^s)]; a negative v goes to the mirrored negative bucket of |v|;
// |v| <= zero_threshold goes to the zero bucket. The boundaries B_j = 2^(j/2^s), j in [0, 2^s],
// are the doubles glibc's exp2 gives.
//
// Slots are numbered in the order of the values they hold: negative buckets (outermost first),
// zero, positive buckets (innermost first), and every bucket that holds a classic boundary b is
// split into a slot for values <= b followed by one for values > b. So each slot lies inside one
// native and one classic bucket, one observation updates one slot, and crossing a boundary (native
// or classic) always means "next slot".
//
// Fast path, positive v = 2^E * (1 + m/2^52) with E the exponent, m the 52-bit mantissa: the key
// (E, top k = s+1 mantissa bits) indexes a table. Native boundaries are more than 2^-(s+1) apart
// in [1, 2), so a key's mantissa interval holds at most one of them; with at most one classic
// boundary too, the entry has two thresholds and
//   slot = first + (m > t1) + (m > t2)
// a shift, a range check, one table load and two compares. A key with more thresholds (a dense
// classic list), negative values and everything outside the range take the slow path: the native
// index from frexp and a search over B_j, then a walk over the split slots.
//
//   Worked example (schema 3, pinned by HistogramLayoutTest.WorkedExample): v = 3.0 = 2^1 * 1.5:
//   E = 1, m/2^52 = 0.5, top 4 mantissa bits 1000, so the key's interval is [3.0, 3.125).
//   B_5 * 2 = 2^(13/8) = 3.084 lies inside it (and no classic default boundary does), so the
//   entry is {first: slot of bucket 13, t1: mantissa of 3.084/2, t2: none}. m = 0.5 * 2^52 is not
//   above t1: slot of bucket 13, which covers (2^(12/8), 2^(13/8)] = (2.828, 3.084].
//
// Range: native buckets from 2^min_exponent to 2^max_exponent. Unless the config sets them, the
// range is derived from the classic boundaries: from 4 binades below the binade of the smallest
// positive boundary to 4 above the largest (default buckets .005 .. 10: 2^-12 .. 2^8, 161 buckets
// per sign, 670 cells per series instead of the 2,270 a fixed 2^-30 .. 2^40 costs); without a
// positive boundary, 2^-30 .. 2^40. A value with zero_threshold < |v| < 2^min_exponent lands in the
// innermost bucket, |v| > 2^max_exponent (and +-Inf) in the outermost one: counts, sum and classic
// buckets stay exact, only the native bucket is clamped (so native quantiles outside the range
// read as its edge; set the exponents when the native view must resolve a wider range). The fast
// table reaches a few dozen binades past the native range, so clamped values cost the same.
//
// Classic-only (native = false): no native buckets at all. A series has exactly
// buckets.size() + 1 slots, one per classic bucket (+Inf last): 11 default buckets -> 12 slots ->
// 24 cells = 192 bytes per series per writing thread. The same table serves it: keys over the
// binades the positive boundaries span (and a margin either side), with as few mantissa bits
// (k >= 0) as keep every key interval at <= 2 boundaries, each entry {first slot, <= 2
// thresholds}. Zero, negatives, NaN, +-Inf and values beyond the margins take the slow path, a
// binary search over the boundaries: -Inf and anything <= the first boundary -> slot 0; +Inf and
// NaN -> the +Inf slot (NaN makes the sum NaN, as below); schema, zero_threshold and the exponents
// are ignored, and Collect reports no native part (HistogramSample::native false).
//
// Special values (as client_golang): NaN is counted (count, classic +Inf bucket, native zero
// bucket) and makes the sum NaN; +Inf goes to the +Inf classic bucket and the outermost positive
// native bucket; -Inf to the first classic bucket and the outermost negative native bucket; -0.0,
// 0 and subnormals to the zero bucket (when zero_threshold >= them, as the default 2^-128 is).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
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
  std::vector<double> buckets = DefaultBuckets();  // classic `le` bounds, increasing; +Inf implied
  int schema = 3;                                  // native resolution, -4 .. 8
  double zero_threshold = 0x1p-128;                // |v| <= this: zero bucket (client_golang's)
  // Native buckets span 2^min_exponent .. 2^max_exponent; unset: derived from `buckets` (see
  // "Range" above).
  std::optional<int> min_exponent;
  std::optional<int> max_exponent;
  bool native = true;  // false: classic buckets only, buckets.size() + 1 slots (see above)

  bool operator==(const HistogramConfig&) const = default;
};

namespace internal {

class HistogramLayout {
 public:
  // Validates the config (naming the bad input), resolves its defaults (config() has both exponents
  // set when native) and builds the tables.
  static absl::StatusOr<std::shared_ptr<const HistogramLayout>> Create(
      const HistogramConfig& config);

  // The slot of v. Never fails: every double, NaN included, has one.
  uint32_t Slot(double v) const {
    const uint64_t s = FastSlot(v);
    return ABSL_PREDICT_TRUE(s != kNoFastSlot) ? static_cast<uint32_t>(s) : SlowSlot(v);
  }

  // The slot of v when the table resolves it (every positive in-range value unless a table
  // interval holds more than two classic boundaries), else kNoFastSlot. For callers that keep the
  // slow path out of line, so that the fast path saves no registers around a call.
  static constexpr uint64_t kNoFastSlot = ~uint64_t{0};
  uint64_t FastSlot(double v) const {
    const uint64_t bits = __builtin_bit_cast(uint64_t, v);
    // Sign, exponent and top mantissa bits; negatives, zero, subnormals, out-of-range magnitudes,
    // Inf and NaN all fall outside [0, key_span_).
    const uint64_t key = (bits >> key_shift_) - key_lo_;
    if (ABSL_PREDICT_FALSE(key >= key_span_)) return kNoFastSlot;
    const Entry& t = table_[key];
    if (ABSL_PREDICT_FALSE(t.first == kSlowEntry)) return kNoFastSlot;
    const uint64_t m = bits & kMantissaMask;
    return uint64_t{t.first} + (m > t.t1) + (m > t.t2);
  }

  uint32_t num_slots() const { return static_cast<uint32_t>(slots_.size()); }
  uint32_t num_cells() const { return 2 * num_slots(); }  // per slot: [count, sum as double bits]

  // What a slot stands for, for Collect().
  struct SlotInfo {
    int8_t sign;           // -1 negative native bucket, 0 zero bucket (and NaN), +1 positive
    int32_t native_index;  // bucket index i (of |v|) when sign != 0
    uint32_t classic;      // index into boundaries(), or boundaries().size() for +Inf
  };
  const std::vector<SlotInfo>& slots() const { return slots_; }
  const std::vector<double>& boundaries() const { return config_.buckets; }
  const HistogramConfig& config() const { return config_; }
  bool native() const { return config_.native; }
  int schema() const { return config_.schema; }
  double zero_threshold() const { return config_.zero_threshold; }
  size_t table_bytes() const { return table_.size() * sizeof(Entry); }

  // The slow path on its own (frexp, search, split walk): the reference the table is built from
  // and tested against.
  uint32_t SlowSlot(double v) const;
  // Native bucket index of |v| > 0 by frexp and a search over B_j, not clamped. Native layouts
  // only.
  int32_t NativeIndexSlow(double abs_v) const;

 private:
  static constexpr uint64_t kMantissaMask = (uint64_t{1} << 52) - 1;
  static constexpr uint64_t kNoThreshold = uint64_t{1} << 52;  // above every mantissa
  static constexpr uint32_t kSlowEntry = ~0u;
  static constexpr uint64_t kMaxTableEntries = uint64_t{1} << 16;

  struct Entry {
    uint64_t t1, t2;  // mantissas of the thresholds inside the key's interval, ascending
    uint32_t first;   // slot of the interval's lowest value, or kSlowEntry
  };

  explicit HistogramLayout(const HistogramConfig& config) : config_(config) {}
  absl::Status Build();
  absl::Status BuildNative();
  void BuildClassicOnly();
  // Fills table_ for positive values with exponents in [fast_lo, fast_hi), k mantissa bits per key
  // (at most kMaxTableEntries, cut from the top).
  void BuildTable(int k, int fast_lo, int fast_hi);
  // Value-order id of the (unsplit) bucket holding v (not NaN): 0 .. 2N.
  uint32_t BucketId(double v) const;

  HistogramConfig config_;
  int min_e_ = 0, max_e_ = 0;    // resolved exponent range (native layouts)
  int32_t i_lo_ = 0, i_hi_ = 0;  // native index range [i_lo_, i_hi_], N = i_hi_ - i_lo_ + 1
  uint32_t nan_slot_ = 0;
  uint32_t key_shift_ = 0;  // 52 - k: k = s+1 (native), chosen per boundary list (classic-only)
  uint64_t key_lo_ = 0, key_span_ = 0;
  std::vector<Entry> table_;
  std::vector<double> bounds_;         // B_j
  std::vector<uint32_t> bucket_slot_;  // BucketId -> its first slot
  std::vector<double> upper_;          // per slot: values above go to the next slot (+Inf: none)
  std::vector<SlotInfo> slots_;
};

}  // namespace internal
}  // namespace metrics
