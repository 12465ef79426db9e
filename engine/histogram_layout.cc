#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "engine/internal/histogram_layout.h"

namespace metrics {

std::vector<double> DefaultBuckets() { return {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}; }

absl::StatusOr<std::vector<double>> LinearBuckets(double start, double width, int count) {
  if (count < 1)
    return absl::InvalidArgumentError(absl::StrCat("LinearBuckets: count ", count, " < 1"));
  if (!(width > 0) || !std::isfinite(width) || !std::isfinite(start)) {
    return absl::InvalidArgumentError(
        absl::StrCat("LinearBuckets: need finite start and width > 0, got ", start, ", ", width));
  }
  std::vector<double> b(count);
  for (int i = 0; i < count; ++i) b[i] = start + i * width;
  return b;
}

absl::StatusOr<std::vector<double>> ExponentialBuckets(double start, double factor, int count) {
  if (count < 1)
    return absl::InvalidArgumentError(absl::StrCat("ExponentialBuckets: count ", count, " < 1"));
  if (!(start > 0) || !(factor > 1) || !std::isfinite(start) || !std::isfinite(factor)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ExponentialBuckets: need start > 0 and factor > 1, got ", start, ", ", factor));
  }
  std::vector<double> b(count);
  double v = start;
  for (int i = 0; i < count; ++i, v *= factor) b[i] = v;
  if (!std::isfinite(b.back()))
    return absl::InvalidArgumentError("ExponentialBuckets: overflows to +Inf");
  return b;
}

namespace internal {
namespace {

uint64_t MantissaOf(double b) {  // b in [1, 2]; 2 maps to 2^52, past every mantissa
  if (b >= 2) return uint64_t{1} << 52;
  return __builtin_bit_cast(uint64_t, b) & ((uint64_t{1} << 52) - 1);
}

int32_t CeilDiv(int32_t a, int32_t n) { return a >= 0 ? (a + n - 1) / n : -((-a) / n); }

}  // namespace

absl::StatusOr<std::shared_ptr<const HistogramLayout>> HistogramLayout::Create(
    const HistogramConfig& config) {
  std::shared_ptr<HistogramLayout> layout(new HistogramLayout(config));
  if (absl::Status s = layout->Build(); !s.ok()) return s;
  return std::shared_ptr<const HistogramLayout>(std::move(layout));
}

absl::Status HistogramLayout::Build() {
  HistogramConfig& c = config_;
  if (c.schema < -4 || c.schema > 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("histogram schema ", c.schema, " is outside [-4, 8]"));
  }
  if (c.min_exponent < -1022 || c.max_exponent > 1024 || c.min_exponent >= c.max_exponent) {
    return absl::InvalidArgumentError(absl::StrCat("histogram exponent range [", c.min_exponent,
                                                   ", ", c.max_exponent,
                                                   "] is empty or outside [-1022, 1024]"));
  }
  if (!(c.zero_threshold >= 0) || !(c.zero_threshold < std::ldexp(1.0, c.min_exponent))) {
    return absl::InvalidArgumentError(absl::StrCat("histogram zero_threshold ", c.zero_threshold,
                                                   " must be >= 0 and below 2^min_exponent"));
  }
  // A trailing +Inf is implied; accept it written out, as client_golang does.
  if (!c.buckets.empty() && c.buckets.back() == std::numeric_limits<double>::infinity())
    c.buckets.pop_back();
  for (size_t i = 0; i < c.buckets.size(); ++i) {
    double b = c.buckets[i];
    if (!std::isfinite(b)) {
      return absl::InvalidArgumentError(absl::StrCat("histogram bucket ", i, " is ", b,
                                                     "; boundaries must be finite"
                                                     " (+Inf is implied at the end)"));
    }
    if (i > 0 && !(c.buckets[i - 1] < b)) {
      return absl::InvalidArgumentError(
          absl::StrCat("histogram buckets must be strictly increasing: bucket ", i - 1, " = ",
                       c.buckets[i - 1], ", bucket ", i, " = ", b));
    }
  }

  // Native boundaries B_j and the mantissa table (header comment).
  const int s0 = std::max(c.schema, 0);
  const int per_octave = 1 << s0;
  bounds_.resize(per_octave + 1);
  for (int j = 0; j <= per_octave; ++j) {
    bounds_[j] = j == 0            ? 1.0
                 : j == per_octave ? 2.0
                                   : std::exp2(static_cast<double>(j) / per_octave);
  }
  const int k = s0 + 1;
  mantissa_shift_ = 52 - k;
  table_.resize(size_t{1} << k);
  for (uint32_t p = 0; p < table_.size(); ++p) {
    if (p == 0) {
      table_[p] = {0, 0,
                   0};  // m == 0 is an exact power of two (j = 0); every other m here is <= B_1
      continue;
    }
    uint64_t start = uint64_t{p} << mantissa_shift_;
    uint32_t t = 1;
    while (MantissaOf(bounds_[t]) < start) ++t;
    table_[p] = {MantissaOf(bounds_[t]), t, 0};
  }

  // Native index range and the fast-path exponent window.
  if (c.schema >= 0) {
    mult_ = per_octave;
    base_e_ = static_cast<uint32_t>(c.min_exponent + 1023);
    i_lo_ = c.min_exponent * per_octave;
    i_hi_ = c.max_exponent * per_octave;
  } else {
    neg_shift_ = static_cast<uint32_t>(-c.schema);
    mult_ = 1;
    base_e_ = 0;
    schema0_offset_ = -1023;
    const int32_t n = 1 << neg_shift_;
    i_lo_ = CeilDiv(c.min_exponent, n);
    i_hi_ = CeilDiv(c.max_exponent, n);
  }
  int fast_lo = c.min_exponent;
  if (c.zero_threshold > 0) {
    int e;
    std::frexp(c.zero_threshold, &e);  // zero_threshold < 2^e
    fast_lo = std::max(fast_lo, e);    // every value with exponent >= e is above the threshold
  }
  fast_e_lo_ = static_cast<uint32_t>(fast_lo + 1023);
  fast_e_span_ = fast_lo < c.max_exponent ? static_cast<uint32_t>(c.max_exponent - fast_lo) : 0;

  // Main slots in value order: negative buckets outermost first, zero, positive buckets innermost
  // first.
  const uint32_t n_buckets = static_cast<uint32_t>(i_hi_ - i_lo_ + 1);
  neg_origin_ = n_buckets - 1;
  zero_slot_ = n_buckets;
  pos_origin_ = n_buckets + 1;
  slots_.resize(2 * n_buckets + 1);
  for (uint32_t r = 0; r < n_buckets; ++r) {
    slots_[neg_origin_ - r] = {-1, i_lo_ + static_cast<int32_t>(r), 0};
    slots_[pos_origin_ + r] = {+1, i_lo_ + static_cast<int32_t>(r), 0};
  }
  slots_[zero_slot_] = {0, 0, 0};
  const double inf = std::numeric_limits<double>::infinity();
  splits_.assign(slots_.size(), Split{inf, 0, 0});

  // Split the slot holding each classic boundary. Ascending order means the slot found is the last
  // of its chain.
  for (double b : c.buckets) {
    uint32_t at = Slot(b);
    uint32_t alt = static_cast<uint32_t>(slots_.size());
    slots_.push_back(slots_[at]);
    splits_.push_back(Split{inf, 0, 0});
    splits_[at] = Split{b, alt, 0};
  }
  // Classic bucket of every slot: walk slots in value order, stepping to the next bucket at each
  // split.
  uint32_t classic = 0;
  for (uint32_t main = 0; main < 2 * n_buckets + 1; ++main) {
    for (uint32_t s = main;; s = splits_[s].alt) {
      slots_[s].classic = classic;
      if (splits_[s].upper == inf) break;
      ++classic;
    }
  }
  nan_slot_ = static_cast<uint32_t>(slots_.size());
  slots_.push_back({0, 0, static_cast<uint32_t>(c.buckets.size())});
  splits_.push_back(Split{inf, 0, 0});
  return absl::OkStatus();
}

int32_t HistogramLayout::NativeIndexSlow(double abs_v) const {
  int exp;
  double frac = std::frexp(abs_v, &exp);  // abs_v = frac * 2^exp, frac in [0.5, 1)
  double x = 2 * frac;                    // abs_v = x * 2^(exp - 1), x in [1, 2)
  if (config_.schema >= 0) {
    int j = 0;
    while (x > bounds_[j]) ++j;
    return (exp - 1) * (1 << config_.schema) + j;
  }
  int32_t i0 = (exp - 1) + (x > 1 ? 1 : 0);
  return CeilDiv(i0, 1 << -config_.schema);
}

uint32_t HistogramLayout::SlowSlot(double v) const {
  if (std::isnan(v)) return nan_slot_;
  const double a = std::fabs(v);
  uint32_t slot;
  if (a <= config_.zero_threshold) {
    slot = zero_slot_;
  } else {
    const int32_t last = i_hi_ - i_lo_;
    int32_t rel;
    if (a >= std::ldexp(1.0, config_.max_exponent)) {
      rel = last;  // includes +-Inf
    } else if (a <= std::ldexp(1.0, config_.min_exponent)) {
      rel = 0;
    } else {
      rel = std::clamp(NativeIndexSlow(a) - i_lo_, 0, last);
    }
    slot =
        v < 0 ? neg_origin_ - static_cast<uint32_t>(rel) : pos_origin_ + static_cast<uint32_t>(rel);
  }
  return Refine(slot, v);
}

}  // namespace internal
}  // namespace metrics
